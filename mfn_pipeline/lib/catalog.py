"""Everything DuckDB: the catalog file users query, and ``mfn sql``'s sandboxed sessions.

The catalog (``mfn.duckdb``) holds one view per table over the current partition files
(:func:`mfn_pipeline.lib.warehouse.view_files`), named relative to the catalog's folder
so a copied or moved data folder reads its own files, and written in a storage version
every DuckDB client from 1.1 on opens. It is rebuilt under a temporary name and
renamed over the old one when its list of files changes, so a user holding it open
never blocks a build; a path holding anything but this product's catalog is refused.

SQL over the warehouse's partitions in a sandbox that can neither write nor read files.

A query runs in an in-memory DuckDB database that holds one view per table: an Arrow
dataset over that table's validated partition files (``storage.view_files``), for a
local folder and a URL warehouse alike. Once the views are registered the connection
loses every file system (``enable_external_access``, ``disabled_filesystems``), the
extension loader and Python's replacement scans, and its configuration is locked. So
no statement form (COPY, EXPLAIN ANALYZE COPY, EXPORT, ATTACH, INSTALL, SET, a table
function, a file name as a table) can write a file or read one outside the views,
whatever its statement type: the guarantee is the connection's, not a list of
statements. The catalog file is never opened, so a client holding it, or a damaged
catalog, cannot stop a query.

Each query also runs under a time limit (interrupted from a timer) and a memory
limit with no spilling to disk; results stream as Arrow record batches.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import re
import stat
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal

import duckdb
import duckdb.sqltypes
import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from filelock import FileLock

from mfn_pipeline.lib.locations import glob_refusal, nesting_refusal
from mfn_pipeline.lib.warehouse import ViewFiles, WarehouseError, file_identity, view_files

if TYPE_CHECKING:
    from mfn_pipeline.lib.settings import Environment

logger = logging.getLogger(__name__)

# The limits of one query, with the flags of `mfn sql` that change them; messages
# name the flag, so each default and flag is spelled here only.
DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_FLAG = "--timeout"
# DuckDB's syntax: a size (2GB, 512MiB) or a share of this machine's memory.
DEFAULT_MEMORY_LIMIT = "25%"
MEMORY_FLAG = "--memory-limit"
# Rows printed to the terminal; a file (--out) gets every row.
DEFAULT_MAX_ROWS = 1000
ROWS_FLAG = "--max-rows"
# Rows per streamed record batch: a few MB at most for scalar tables.
BATCH_ROWS = 2048

# How a result is handed out: DuckDB's own text of every value (table, csv), one JSON
# object per row rendered by DuckDB, or Arrow types that Parquet stores faithfully.
Form = Literal["text", "json", "native"]
# DuckDB types whose Arrow export Parquet stores and reads back unchanged (checked
# with duckdb 2.0 and pyarrow 26): others, e.g. HUGEINT and UHUGEINT (decimal128(38)
# overflows), INTERVAL, UNION, BIT, TIMETZ and BIGNUM, are stored as DuckDB's text.
_NATIVE_TYPES = frozenset(
    {
        "boolean", "tinyint", "smallint", "integer", "bigint", "utinyint", "usmallint",
        "uinteger", "ubigint", "float", "double", "decimal", "varchar", "blob", "date",
        "time", "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns",
        "timestamp with time zone", "uuid", "enum", "null", "list", "struct", "map", "array",
    }
)  # fmt: skip
_NESTED_TYPES = frozenset({"list", "struct", "map", "array"})
# The settings that seal the connection, in order: spilling is switched off before
# external access (which then forbids changing temp_directory), and the lock last.
_SEAL = (
    "SET enable_external_access = false",
    "SET disabled_filesystems = 'LocalFileSystem'",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET python_enable_replacements = false",
    "SET lock_configuration = true",
)
_MISSING_TABLE = re.compile(r"Table with name (\w+) does not exist")
_STREAM_FAILED = re.compile(r"reading the stream registered as '([^']+)' failed")
# DuckDB's JSON writes non-finite doubles as bare tokens that JSON does not have;
# strings are matched first so that text inside them is never touched.
_JSON_NON_FINITE = re.compile(r'("(?:[^"\\]|\\.)*")|-?Infinity|NaN')

# Statement kinds that only read. DESCRIBE, SHOW and SUMMARIZE parse as SELECT, PIVOT
# as MULTI (a type of its pivot values, in memory, then a SELECT). This check only
# words the refusal of other statements; the sandbox is the guarantee.
READ_ONLY_STATEMENTS = frozenset(
    {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.MULTI}
)


class QueryRefusedError(ValueError):
    """The SQL would write, read files outside the views, change settings, or is not one query."""


class QueryFailedError(RuntimeError):
    """A query that DuckDB could not run (unknown column, bad syntax, a limit, ...)."""


class QueryLimitError(QueryFailedError):
    """The query reached its time or memory limit; the message says how to raise it."""


@dataclass(frozen=True)
class Limits:
    """What one query may use: wall-clock seconds and DuckDB's memory limit."""

    timeout_s: float | None = DEFAULT_TIMEOUT_S
    memory_limit: str = DEFAULT_MEMORY_LIMIT


def check_memory_limit(value: str) -> str:
    """``value`` if DuckDB accepts it as a memory limit; else a ValueError saying what is."""
    with duckdb.connect(":memory:") as con:
        try:
            con.execute("SET memory_limit = ?", [value])
        except duckdb.Error as exc:
            raise ValueError(
                f"{value!r} is not a memory size ({_one_line(exc)}); allowed: e.g. 2GB, "
                "512MiB, or 25% of this machine's memory"
            ) from exc
    return value


def check_read_only(sql: str) -> None:
    """Raise QueryRefusedError unless ``sql`` is exactly one read-only statement."""
    with duckdb.connect(":memory:") as con:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryRefusedError(f"cannot parse the query: {_one_line(exc)}") from exc
    if len(statements) != 1:
        raise QueryRefusedError(
            f"got {len(statements)} statements; allowed: exactly one SELECT (no ';'-separated "
            "lists)"
        )
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise QueryRefusedError(
            f"{kind.name} statements are refused: mfn sql only reads; allowed: SELECT, "
            "WITH ... SELECT, DESCRIBE, SHOW, SUMMARIZE, PIVOT, EXPLAIN"
        )


def _one_line(exc: BaseException) -> str:
    """DuckDB's message on one line, without the caret lines that point into the query."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith("LINE ") and set(line) != {"^"}]
    return " ".join(kept)


def _printable(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _filesystem(files: Sequence[str]) -> tuple[pafs.FileSystem, list[str]]:
    """One Arrow file system for a view's files, and their paths on it."""
    if not any("://" in file for file in files):
        return pafs.LocalFileSystem(), list(files)
    fs, _ = fsspec.core.url_to_fs(files[0])
    paths = [fsspec.core.url_to_fs(file)[1] for file in files]
    if isinstance(fs, fsspec.implementations.local.LocalFileSystem):
        return pafs.LocalFileSystem(), paths
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), paths


def _dataset(files: Sequence[str]) -> ds.Dataset:
    """An Arrow dataset over exactly ``files``, with the union of their columns."""
    fs, paths = _filesystem(files)
    first = ds.dataset(paths, format="parquet", filesystem=fs)
    # Files of a table written by different versions may differ in columns: keep all.
    schema = pa.unify_schemas(
        [fragment.physical_schema for fragment in first.get_fragments()],
        promote_options="permissive",
    )
    return ds.dataset(paths, schema=schema, format="parquet", filesystem=fs)


def _is_native(kind: duckdb.sqltypes.DuckDBPyType) -> bool:
    """Whether Parquet stores a column of ``kind`` (and every type nested in it) unchanged."""
    if kind.id not in _NATIVE_TYPES:
        return False
    nested = [child for _, child in kind.children] if kind.id in _NESTED_TYPES else []
    return all(_is_native(c) for c in nested if isinstance(c, duckdb.sqltypes.DuckDBPyType))


def _unique(names: Sequence[str]) -> list[str]:
    """Column names made unique as DuckDB's JSON does (a, a_1): files need distinct names."""
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


class _Deadline:
    """Interrupts a connection's query once ``seconds`` have passed (never, if None)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, seconds: float | None) -> None:
        self.expired = False
        self._con = con
        self._timer = None if seconds is None else threading.Timer(seconds, self._expire)
        if self._timer is not None:
            self._timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        self._con.interrupt()

    def start(self) -> None:
        if self._timer is not None:
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class Session:
    """A sealed in-memory DuckDB connection over named Arrow sources, for one query at a time."""

    def __init__(
        self,
        sources: Mapping[str, ds.Dataset | pa.Table],
        limits: Limits = Limits(),
        files: Mapping[str, tuple[str, ...]] | None = None,
        skipped: tuple[str, ...] = (),
        note: str | None = None,
    ) -> None:
        self.limits = limits
        self.views = tuple(sorted(sources))
        # Files left out of the views, and what is wrong with the catalog file, if
        # anything: warnings for the user, never a reason to refuse a query.
        self.skipped = tuple(_printable(line) for line in skipped)
        self.note = note
        self._files = dict(files or {})
        self._con = duckdb.connect(":memory:")
        try:
            # Spilling would write temporary files: set before access is sealed.
            self._con.execute("SET temp_directory = ''")
            try:
                self._con.execute("SET memory_limit = ?", [limits.memory_limit])
            except duckdb.Error as exc:
                raise QueryFailedError(
                    f"{MEMORY_FLAG} {limits.memory_limit!r} is not a memory size "
                    f"({_one_line(exc)}); allowed: e.g. 2GB, 512MiB or 25%"
                ) from exc
            for name, source in sources.items():
                self._con.register(name, source)
            for statement in _SEAL:
                self._con.execute(statement)
        except BaseException:
            self._con.close()
            raise
        self._deadline = _Deadline(self._con, limits.timeout_s)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._deadline.cancel()
        self._con.close()

    def execute(self, sql: str, params: Sequence[object] | None = None) -> Result:
        """Run ``sql`` as it is: every statement form is safe here, none is filtered."""
        self._deadline.start()
        try:
            relation = self._con.sql(sql, params=list(params) if params else None)
        except (duckdb.Error, RuntimeError) as exc:
            raise self._failure(exc) from exc
        return Result(self, relation)

    def _failure(self, exc: duckdb.Error | RuntimeError) -> Exception:
        """The one-line error a user sees for a DuckDB error while running or fetching."""
        text = _one_line(exc)
        # A Ctrl-C that lands while a result streams surfaces as "Query interrupted".
        if isinstance(exc, duckdb.InterruptException) or (
            isinstance(exc, RuntimeError) and "interrupted" in text.lower()
        ):
            return (
                self._timed_out()
                if self._deadline.expired
                else QueryFailedError("the query was interrupted")
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            first = str(exc).splitlines()[0]
            return QueryLimitError(
                f"the query needs more memory than its limit of {self.limits.memory_limit} "
                f"({first}); raise it with {MEMORY_FLAG} (e.g. {MEMORY_FLAG} 50%), or ask for "
                "less: fewer columns, a LIMIT or an aggregate"
            )
        if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in text:
            return QueryRefusedError(
                f"{text}; mfn sql reads only its views ({self._view_list()}): no statement "
                f"can read or write other files or change settings (limits are set with "
                f"{TIMEOUT_FLAG} and {MEMORY_FLAG})"
            )
        stream = _STREAM_FAILED.search(str(exc))
        damage = self._damaged(stream[1]) if stream else None
        if damage is not None:
            return damage
        views = ""
        if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
            missing = _MISSING_TABLE.search(text)
            if missing and (left_out := self._left_out(missing[1])):
                return left_out
            views = f"; views: {self._view_list()}"
        return QueryFailedError(f"the query failed: {text}{views}")

    def _left_out(self, view: str) -> WarehouseError | None:
        """For a view with no file because every file was left out: the first reason why."""
        from mfn_pipeline.lib.warehouse import WarehouseError  # noqa: PLC0415

        lines = [line for line in self.skipped if f" left out of view {view}: " in line]
        if view in self.views or not lines:
            return None
        more = f" (and {len(lines) - 1} more files)" if len(lines) > 1 else ""
        return WarehouseError(f"view {view} has no readable file{more}: {lines[0]}")

    def _timed_out(self) -> QueryLimitError:
        seconds = self.limits.timeout_s or 0.0
        return QueryLimitError(
            f"the query ran past its time limit of {seconds:g} s and was stopped; raise it "
            f"with {TIMEOUT_FLAG} SECONDS (e.g. {TIMEOUT_FLAG} {seconds * 4:g})"
        )

    def _view_list(self) -> str:
        return ", ".join(self.views) or "none yet: build a preset first (mfn build small)"

    def _damaged(self, view: str) -> WarehouseError | None:
        """The error naming the first file of ``view`` that does not decode, if one does not."""
        from mfn_pipeline.lib.warehouse import RECORD_TABLES, VIEWS, damaged_file_error, repair_hint  # noqa: PLC0415

        files = self._files.get(view, ())
        fs, paths = _filesystem(files) if files else (pafs.LocalFileSystem(), [])
        for file, path in zip(files, paths, strict=True):
            try:
                # Batch by batch, so a large partition is checked in bounded memory.
                for _ in pq.ParquetFile(path, filesystem=fs).iter_batches(BATCH_ROWS):
                    pass
            except (pa.ArrowException, OSError) as exc:
                repair = repair_hint(file, VIEWS[view] in RECORD_TABLES)
                detail = _printable(f"{type(exc).__name__}: {exc}")
                return damaged_file_error(file, detail, repair)
        return None


class Result:
    """The rows of one statement, fetched as a stream of Arrow record batches."""

    def __init__(self, session: Session, relation: duckdb.DuckDBPyRelation) -> None:
        self._session = session
        self._relation = relation
        self.columns = _unique(relation.columns)

    def stream(self, form: Form) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The schema of the rows in ``form`` and their batches, fetched as they are read.

        A limit reached or a damaged file raises while the batches are read.
        """
        session = self._session
        try:
            reader = self._shaped(form).to_arrow_reader(BATCH_ROWS)
        except (duckdb.Error, RuntimeError) as exc:
            raise session._failure(exc) from exc
        names = ["json"] if form == "json" else self.columns
        schema = pa.schema(
            [field.with_name(n) for field, n in zip(reader.schema, names, strict=True)]
        )

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    # An interrupt that lands between two fetches must still stop it.
                    if session._deadline.expired:
                        raise session._timed_out()
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            except (duckdb.Error, RuntimeError) as exc:
                raise session._failure(exc) from exc

        return schema, batches()

    def _shaped(self, form: Form) -> duckdb.DuckDBPyRelation:
        relation = self._relation
        if form == "json":
            # The row as a struct: DuckDB writes each value as JSON, big integers exact.
            rows = relation.query("mfn_result", "SELECT to_json(mfn_result) FROM mfn_result")
            assert rows is not None  # a SELECT always has a relation
            return rows
        varchar = duckdb.sqltype("VARCHAR")
        # Positional references: result names may repeat or hold any character.
        columns = [
            duckdb.SQLExpression(f"#{i}").cast(varchar)
            if form == "text" or not _is_native(kind)
            else duckdb.SQLExpression(f"#{i}")
            for i, kind in enumerate(relation.types, start=1)
        ]
        return relation.project(*columns)


def json_rows(batch: pa.RecordBatch) -> Iterator[str]:
    """The JSON objects of a ``json`` batch; NaN and infinities, which JSON lacks, as null."""
    for text in batch.column(0).to_pylist():
        row = str(text)
        if "NaN" in row or "Infinity" in row:
            row = _JSON_NON_FINITE.sub(lambda m: m[1] or "null", row)
        yield row


def open_warehouse(environment: Environment, limits: Limits = Limits()) -> Session:
    """A session over the warehouse's partitions, one view per table that has any."""
    found = view_files(environment.warehouse)
    return Session(
        {view: _dataset(files) for view, files in found.files.items() if files},
        limits,
        found.files,
        found.skipped,
        catalog_problem(Path(environment.catalog)),
    )


def query(
    environment: Environment, sql: str, params: Sequence[object] | None = None
) -> pl.DataFrame:
    """Run one read-only statement over the warehouse and return its rows."""
    check_read_only(sql)
    with open_warehouse(environment) as session:
        schema, batches = session.execute(sql, params).stream("native")
        return pl.DataFrame(pa.Table.from_batches(list(batches), schema=schema))


# --- the catalog file: what a path holds, and its rebuilds -----------------------------

# A DuckDB database file: an 8-byte checksum, then these bytes.
DUCKDB_MAGIC, DUCKDB_MAGIC_OFFSET = b"DUCK", 8
# The table that marks this product's catalog, and how a user rebuilds one.
MARKER_TABLE = "mfn_catalog_info"
REBUILD = "it is rebuilt by the next build, or now with: mfn catalog"
# DuckDB's words for a file another process holds open read-write, and for one this
# process holds under other settings. Matched exactly: a damaged file's messages
# ("... checksum ... in block ...") must never read as held.
_HELD_ELSEWHERE = "Could not set lock on file"
_HELD_HERE = "with a different configuration"
# A held catalog is recognised by its marker's name in the file; a catalog holds
# views and one marker row, so the name lies well within this many bytes.
_MARKER_SCAN_BYTES = 16 * 1024 * 1024


class CatalogState(enum.Enum):
    """What a catalog path holds."""

    ABSENT = "absent"
    OURS = "ours"  # this product's catalog, healthy
    EMPTY = "empty"  # zero bytes: e.g. a full disk, an interrupted copy
    DAMAGED = "damaged"  # carries DuckDB's magic bytes, does not open
    HELD = "held"  # this product's catalog, open read-write in another process
    HELD_FOREIGN = "held foreign"  # a DuckDB database held by another process, not ours
    FOREIGN_DUCKDB = "foreign duckdb"  # a DuckDB database without the marker table
    NOT_DUCKDB = "not duckdb"  # any other file
    NOT_A_FILE = "not a file"  # a folder, a device, a socket
    UNREADABLE = "unreadable"  # the OS refuses to look at it
    SYMLINK = "symlink"


@dataclass(frozen=True)
class CatalogFile:
    """The state of a catalog path and, for a refusal or a fault, DuckDB's words."""

    path: Path
    state: CatalogState
    detail: str = ""

    def problem(self) -> str | None:
        """One line saying what is wrong with this catalog and how to fix it, or None."""
        path, detail = self.path, self.detail
        match self.state:
            case CatalogState.ABSENT | CatalogState.OURS:
                return None
            case CatalogState.EMPTY:
                return f"{path}: the catalog is empty (0 bytes); {REBUILD}"
            case CatalogState.DAMAGED:
                return f"{path}: the catalog is damaged ({detail}); {REBUILD}"
            case CatalogState.HELD:
                return (
                    f"{path}: another process holds the catalog open read-write ({detail}); "
                    "close that connection and open it with read_only=True "
                    "(duckdb.connect(path, read_only=True), or duckdb -readonly)"
                )
        return self.refusal()

    def refusal(self) -> str | None:
        """Why a rebuild must not replace this file, or None if it may."""
        path = self.path
        where = "point MFN_CATALOG (or catalog: in the environment file) at a file of its own"
        match self.state:
            case CatalogState.SYMLINK:
                return (
                    f"{path}: the catalog path is a symbolic link (to {os.readlink(path)}), "
                    f"which a rebuild would replace by a file; name the real file or {where}"
                )
            case CatalogState.NOT_A_FILE:
                return f"{path}: the catalog path is {self.detail}, not a file; {where}"
            case CatalogState.UNREADABLE:
                return (
                    f"{path}: the catalog path cannot be read ({self.detail}), so it cannot "
                    f"be told to be this product's catalog; fix its permissions or {where}"
                )
            case CatalogState.NOT_DUCKDB:
                return (
                    f"{path}: exists and is not a DuckDB database, so not this product's "
                    f"catalog, and a rebuild would overwrite it; {where}"
                )
            case CatalogState.FOREIGN_DUCKDB | CatalogState.HELD_FOREIGN:
                seen = f" ({self.detail})" if self.detail else ""
                return (
                    f"{path}: a DuckDB database without the table {MARKER_TABLE}{seen}, so "
                    f"not this product's catalog, and a rebuild would overwrite it; {where}"
                )
        return None


def inspect_catalog(path: Path) -> CatalogFile:
    """What the file at ``path`` is, as far as rebuilding the catalog there is concerned."""
    try:
        return _file_state(path) or _database_state(path)
    except OSError as exc:
        return CatalogFile(path, CatalogState.UNREADABLE, exc.strerror or str(exc))


def _file_state(path: Path) -> CatalogFile | None:
    """The state told by the file system and the first bytes, or None for a DuckDB file."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return CatalogFile(path, CatalogState.ABSENT)
    if stat.S_ISLNK(info.st_mode):
        return CatalogFile(path, CatalogState.SYMLINK)
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a special file"
        return CatalogFile(path, CatalogState.NOT_A_FILE, kind)
    if info.st_size == 0:
        return CatalogFile(path, CatalogState.EMPTY)
    with path.open("rb") as handle:
        head = handle.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    if head[DUCKDB_MAGIC_OFFSET:] != DUCKDB_MAGIC:
        return CatalogFile(path, CatalogState.NOT_DUCKDB)
    return None


def _database_state(path: Path) -> CatalogFile:
    """The state of a file that carries DuckDB's magic bytes, told by opening it."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                "AND table_name = ?",
                [MARKER_TABLE],
            ).fetchall()
    except duckdb.Error as exc:
        detail = str(exc).splitlines()[0]
        # Another process's write lock, or this process holding it under another
        # configuration: the file is fine, but who owns it is read from its bytes.
        if _HELD_ELSEWHERE in detail or _HELD_HERE in detail:
            held = CatalogState.HELD if _holds_marker(path) else CatalogState.HELD_FOREIGN
            return CatalogFile(path, held, detail)
        # A database of a newer DuckDB is someone's data, unless it names our marker.
        if "version" in detail.lower() and not _holds_marker(path):
            return CatalogFile(path, CatalogState.FOREIGN_DUCKDB, detail)
        return CatalogFile(path, CatalogState.DAMAGED, detail)
    ours = tables == [(1,)]
    return CatalogFile(path, CatalogState.OURS if ours else CatalogState.FOREIGN_DUCKDB)


def _holds_marker(path: Path) -> bool:
    """Whether the DuckDB file at ``path`` names this product's marker table."""
    marker = MARKER_TABLE.encode()
    with path.open("rb") as handle:
        tail = b""
        for _ in range(_MARKER_SCAN_BYTES // (1 << 20)):
            block = handle.read(1 << 20)
            if not block:
                return False
            if marker in tail + block:
                return True
            tail = block[-len(marker) :]
    return False


# Every DuckDB client from 1.1 on opens a catalog of this storage version; the
# catalog holds views and one marker row, so a newer version would gain nothing.
CATALOG_STORAGE_VERSION = "v1.1.0"
# The catalog records which files its views read in this table (mfn_catalog_info).
_READ_SIGNATURE = f"SELECT signature FROM {MARKER_TABLE}"  # nosec B608 - a constant
# Catalog signature this process last saw, keyed by the catalog file's identity.
_KNOWN_CATALOGS: dict[tuple[str, tuple[int, int, int]], str] = {}


def catalog_files(catalog: Path) -> tuple[Path, Path, Path]:
    """The catalog, DuckDB's write-ahead log beside it, and the lock its rebuilds take."""
    return (
        catalog,
        catalog.with_name(f"{catalog.name}.wal"),
        catalog.with_name(f"{catalog.name}.lock"),
    )


def _catalog_lock(catalog: Path) -> FileLock:
    """Serialises catalog rebuilds across processes (builds of several presets at once)."""
    catalog.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(catalog_files(catalog)[2])


def _catalog_name(file: str, folder: Path) -> str:
    """How the catalog names ``file``: relative to the catalog's own folder, so a copied
    or moved folder of catalog and warehouse reads its own files. URLs stay as they are.
    """
    if "://" in file:
        return file
    name = os.path.relpath(file, folder)
    # A client resolves '..' from the folder it really is in (its working directory or
    # file_search_path): through a symlinked folder the lexical name would miss.
    real = os.path.realpath(folder)
    if os.path.realpath(os.path.join(real, name)) != os.path.realpath(file):
        name = os.path.relpath(os.path.realpath(file), real)
    return name


def _current_signature(catalog: Path) -> str | None:
    """The signature held by ``catalog`` if it is this product's healthy catalog."""
    identity = file_identity(catalog)
    if identity is None:
        return None
    known = _KNOWN_CATALOGS.get((str(catalog), identity))
    if known is not None:
        return known
    try:
        with duckdb.connect(str(catalog), read_only=True) as con:
            row = con.execute(_READ_SIGNATURE).fetchall()
    except duckdb.Error:
        return None  # damaged, held, or from an older layout: rebuild it
    if not row:
        return None
    _KNOWN_CATALOGS[(str(catalog), identity)] = str(row[0][0])
    return str(row[0][0])


def check_catalog_target(root: str, catalog: Path) -> None:
    """Raise WarehouseError if a rebuild must not write ``catalog`` (nothing is written)."""
    identity = file_identity(catalog)
    if identity is not None and (str(catalog), identity) in _KNOWN_CATALOGS:
        return  # this process built or read that very file
    refusal = (
        glob_refusal("warehouse", root)
        or glob_refusal("catalog", str(catalog))
        or inspect_catalog(catalog).refusal()
        or nesting_refusal(root, catalog)
    )
    if refusal:
        raise WarehouseError(f"catalog not rebuilt: {refusal}")


def catalog_problem(catalog: Path) -> str | None:
    """None when the catalog is healthy or absent; else one line saying what is wrong
    (empty, damaged, held read-write by another process, not this product's) and the fix.
    """
    return inspect_catalog(catalog).problem()


_ORPHAN = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{32}\.tmp(\.wal)?")


def _remove_catalog_orphans(catalog: Path) -> None:
    """Delete what killed rebuilds left; called under the catalog lock, so no rebuild is live."""
    if not catalog.parent.is_dir():
        return
    for entry in catalog.parent.iterdir():
        match = _ORPHAN.fullmatch(entry.name)
        if match and match["name"] == catalog.name:
            try:
                entry.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.warning("left %s in place: %s", entry, exc)


def _sql_literal(text: str) -> str:
    # DDL cannot take bound parameters; the paths come from the environment config
    # and the warehouse's listing of files whose names were checked, never from users.
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class CatalogRefresh:
    """What a catalog refresh did: whether the file was rebuilt, and the files it views."""

    rebuilt: bool
    views: ViewFiles


def refresh_catalog(root: str, catalog: Path, force: bool = False) -> CatalogRefresh:
    """Make ``catalog`` hold one view per stored table over exactly its valid files.

    The catalog is rebuilt when the list of files changes (or with ``force``); files
    left out are logged as warnings and returned. A path that is not this product's
    catalog is refused with a WarehouseError before anything is written.
    """
    with _catalog_lock(catalog):
        # No rebuild runs while the lock is held: any temporary file is an orphan.
        _remove_catalog_orphans(catalog)
        views = view_files(root)
        for line in views.skipped:
            logger.warning("%s", line)
        sources = {
            view: tuple(_catalog_name(file, catalog.parent) for file in files)
            for view, files in views.files.items()
        }
        signature = json.dumps(
            {"storage": CATALOG_STORAGE_VERSION, "views": sources}, sort_keys=True
        )
        if not force and _current_signature(catalog) == signature:
            return CatalogRefresh(False, views)
        check_catalog_target(root, catalog)
        _build_catalog(catalog, sources, signature)
        logger.info("catalog %s now has views %s", catalog, ", ".join(sources) or "(none)")
        return CatalogRefresh(True, views)


def _build_catalog(catalog: Path, sources: Mapping[str, tuple[str, ...]], signature: str) -> None:
    """Write the catalog under a temporary name and rename it over the old one."""
    tmp = catalog.with_name(f".{catalog.name}.{uuid.uuid4().hex}.tmp")
    new = "mfn_new_catalog"
    try:
        with duckdb.connect() as con:
            # Relative names bind against the catalog's folder, as they do for users.
            con.execute("SET file_search_path = ?", [str(catalog.parent)])
            con.execute(
                f"ATTACH {_sql_literal(str(tmp))} AS {new} "
                f"(STORAGE_VERSION '{CATALOG_STORAGE_VERSION}')"
            )
            for view, files in sources.items():
                listed = ", ".join(_sql_literal(file) for file in files)
                # View names are the constants of VIEWS; the files are quoted names
                # listed from the warehouse. DDL cannot take bound parameters.
                ddl = (
                    f"CREATE VIEW {new}.{view} AS SELECT * FROM read_parquet("  # nosec B608
                    f"[{listed}], union_by_name = true)"
                )
                con.execute(ddl)
            con.execute(f"CREATE TABLE {new}.{MARKER_TABLE} (signature VARCHAR)")
            con.execute(f"INSERT INTO {new}.{MARKER_TABLE} VALUES (?)", [signature])  # nosec B608
            con.execute(f"DETACH {new}")
        os.replace(tmp, catalog)
        if (identity := file_identity(catalog)) is not None:
            _KNOWN_CATALOGS[(str(catalog), identity)] = signature
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
