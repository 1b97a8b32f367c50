"""The warehouse: a table partition is one immutable Parquet file per generation.

Each write of a partition adds a new generation, TABLE/<preset>/<generation>.parquet,
written under a temporary name and renamed into place; the newest generation is the
partition. No file ever changes content once named: DuckDB opens a file more than once
during one query, so a file replaced in between would be read half old, half new.
A superseded generation stays for SUPERSEDED_KEPT_S, so a reader that listed it (a
DuckDB connection holding the previous catalog) still finds it, then the next write of
that partition deletes it. Which files the catalog's views read is told by
:func:`view_files`; the catalog itself is mfn_pipeline.lib.catalog's.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import fcntl
import itertools
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from mfn_core.columns import described
from mfn_core.contracts import SCHEMAS
from mfn_core.presets import NAME_PATTERN

logger = logging.getLogger(__name__)

SUFFIX = ".parquet"
_IO_ERROR = "(os error"  # how polars quotes an errno it hit
# A write the file system or object store refuses is tried again after these pauses
# (seconds): a hiccup passes here, without redoing the step that computed the frame.
WRITE_RETRY_DELAYS_S = (1.0, 2.0)
# Build records are named by Dagster run ids.
RECORD_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A generation is named by the UTC time it became current (to the nanosecond, so names
# sort in time) and a random suffix, so concurrent writers of one partition never collide.
GENERATION_PATTERN = re.compile(r"(?P<at>\d{8}T\d{6})(?P<ns>\d{9})Z-[0-9a-f]{8}")
_STAMP = "%Y%m%dT%H%M%S"
# How long a superseded generation stays readable after a newer one replaced it.
SUPERSEDED_KEPT_S = 3600

# Fast to write and read; the final fields (random-looking float64) barely compress
# under any codec, so a heavier one only costs build time.
COMPRESSION: Literal["lz4"] = "lz4"
# View name in the catalog -> the table (a folder of the warehouse) whose files it
# reads. Tables hold one current generation per preset; builds hold one file per
# build, so concurrent builds of a preset each add their record and never rewrite
# another's.
VIEWS: dict[str, str] = {
    "runs": "simulation_runs",
    "features": "fractal_features",
    "dataset": "mfn_dataset",
    "preset_summary": "preset_summary",
    "builds": "builds",
}
# Tables of append-only records, TABLE/<preset>/<run id>.parquet. A record is history
# no build rewrites, so one of an older layout (fewer columns) stays in its view.
RECORD_TABLES = frozenset({"builds"})
# Why a local warehouse file stays out of the views (None: it is viewed), keyed by
# its path and identity, so a catalog refresh reads only new or changed footers.
_FILE_VERDICTS: dict[tuple[str, tuple[int, int, int]], str | None] = {}
FILE_VERDICTS_KEPT = 100_000


class WarehouseError(RuntimeError):
    """A stored partition is missing or unreadable; the message names the file and the fix."""


# Writes the whole content of one file to the handle it is given.
FileWriter = Callable[[BinaryIO], None]
# Names a file that is about to appear in the folder it is given.
Namer = Callable[["UPath"], str]


@dataclass
class StreamedWrite:
    """What a streaming write stored: the file, its rows and row groups (filled as it goes)."""

    path: UPath
    rows: int = 0
    row_groups: int = 0
    size_bytes: int = 0


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


@dataclass(frozen=True)
class Warehouse:
    """Where tables live (a folder or fsspec URL), and the catalog file that views them.

    A plain object, bound as a fixed resource: only the environment configuration
    places it, never a run's config.
    """

    root: str
    catalog: str

    def partition_folder(self, table: str, partition: str) -> UPath:
        """Where one partition's files live: its generations, or an append-only table's records."""
        return UPath(self.root) / _checked(table, "table") / _checked(partition)

    def stored_file(self, table: str, partition: str) -> UPath:
        """The current file of a stored partition; a WarehouseError if it is not built."""
        current = _generations(self.partition_folder(table, partition))
        if not current:
            raise WarehouseError(
                f"{self.partition_folder(table, partition)}: partition {partition!r} of "
                f"{table} has not been built; {rebuild_hint(partition)}"
            )
        return current[-1]

    def record_path(self, table: str, partition: str, record: str) -> UPath:
        folder = self.partition_folder(table, partition)
        return folder / f"{_checked(record, 'record', RECORD_PATTERN)}{SUFFIX}"

    def write(self, table: str, partition: str, frame: pl.DataFrame) -> UPath:
        """Replace one partition of ``table`` by a new generation in one atomic step."""
        folder = self.partition_folder(table, partition)
        path = self._store(folder, _next_generation, _parquet_of(frame, table))
        _retire_superseded(folder)
        return path

    def write_batches(
        self, table: str, partition: str, batches: Iterable[pl.DataFrame]
    ) -> StreamedWrite:
        """Replace one partition with ``batches``, one row group each, in one atomic step.

        Only the batch being encoded is in memory. The batches go to a temporary file
        that is renamed into place only after the last one, so an exception raised by
        the iterator (a batch breaking its contract, a sweep past its limit) leaves the
        previous partition byte-identical. All batches must share one schema. A failure
        of the file system before the first batch is read is retried like any write;
        after it, the batches are gone and the write fails at once.
        """
        folder = self.partition_folder(table, partition)
        written = StreamedWrite(folder)
        write = _row_groups(batches, table, written)
        path = self._store(folder, _next_generation, write, retry=lambda: written.row_groups == 0)
        written.path = path
        if _is_local(path):
            written.size_bytes = Path(path.path).stat().st_size
        else:
            written.size_bytes = int(path.stat().st_size)
        _retire_superseded(folder)
        return written

    def free_bytes(self) -> int | None:
        """Free space of the local warehouse's file system; None for an object store."""
        root = UPath(self.root)
        if not _is_local(root):
            return None
        # The folder may not exist before the first build: ask its nearest ancestor.
        folder = Path(root.path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def read_batches(
        self, table: str, partition: str, columns: list[str] | None = None
    ) -> Iterator[pl.DataFrame]:
        """One stored partition, one table per row group (as write_batches wrote them)."""
        return _decoded_batches(
            self.stored_file(table, partition), columns, rebuild_hint(partition)
        )

    def write_record(self, table: str, partition: str, record: str, frame: pl.DataFrame) -> UPath:
        """Add (or replace) one record file of an append-only table such as builds."""
        path = self.record_path(table, partition, record)
        return self._store(path.parent, lambda _: path.name, _parquet_of(frame, table))

    def read_records(self, table: str, partition: str) -> pl.DataFrame | None:
        """Every record file of one partition of an append-only table, or None if none."""
        folder = self.partition_folder(table, partition)
        files = sorted(folder.glob(f"*{SUFFIX}")) if folder.exists() else []
        if not files:
            return None
        frames = [_decoded(path, None, record_hint(path)) for path in files]
        # Records written by an older layout may lack newer columns: keep them all.
        return pl.concat(frames, how="diagonal_relaxed")

    def _store(
        self,
        folder: UPath,
        name: Namer,
        write: FileWriter,
        retry: Callable[[], bool] = lambda: True,
    ) -> UPath:
        """Write the file ``write`` writes into ``folder`` atomically, retrying hiccups.

        ``name(folder)`` names the file once its content is complete, just before it
        appears. ``retry()`` says whether the content can still be written again after
        a failure.
        """
        attempts = len(WRITE_RETRY_DELAYS_S) + 1
        path = folder
        for attempt in range(1, attempts + 1):
            try:
                path = _put(folder, name, write)
                break
            # polars reports the file system's errors (ENOSPC among them) as ComputeError.
            except (OSError, pl.exceptions.ComputeError) as exc:
                if not isinstance(exc, OSError) and _IO_ERROR not in str(exc):
                    raise
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                if not retry():
                    attempts = attempt  # streamed content is consumed: it cannot be replayed
                if attempt < attempts:
                    delay = WRITE_RETRY_DELAYS_S[attempt - 1]
                    logger.warning(
                        "%s: write %d of %d failed (%s); trying again in %g s",
                        folder, attempt, attempts, reason, delay,
                    )  # fmt: skip
                    time.sleep(delay)
                    continue
                # polars keeps only the text of the errno it hit.
                full = getattr(exc, "errno", None) == errno.ENOSPC or (
                    os.strerror(errno.ENOSPC) in reason
                )
                tries = f"in {attempts} attempts" if attempts > 1 else "(a stream is written once)"
                fix = "free space on that file system" if full else "fix the cause"
                raise WarehouseError(
                    f"{folder}: a new file could not be written {tries} ({reason}); the "
                    f"previous version, if any, is untouched; {fix}, then rebuild"
                ) from exc
        return path

    def read(self, table: str, partition: str, columns: list[str] | None = None) -> pl.DataFrame:
        """One stored partition (only ``columns``, if given)."""
        return _decoded(self.stored_file(table, partition), columns, rebuild_hint(partition))

    def read_previous(self, table: str, partition: str) -> pl.DataFrame | None:
        """The stored partition, or None when there is none yet or it is unreadable."""
        current = _generations(self.partition_folder(table, partition))
        if not current:
            return None
        try:
            return _decoded(current[-1], None, rebuild_hint(partition))
        except WarehouseError as exc:
            logger.warning("cannot compare with the previous %s/%s: %s", table, partition, exc)
            return None


def _described(frame: pl.DataFrame, table: str) -> pa.Table:
    """``frame`` as Arrow, each contract column carrying its description and unit, so
    users reading a file with any Parquet tool see what each column means."""
    arrow = frame.to_arrow()
    return arrow.cast(described(arrow.schema, table))


def _parquet_of(frame: pl.DataFrame, table: str) -> FileWriter:
    def write(handle: BinaryIO) -> None:
        pq.write_table(_described(frame, table), handle, compression=COMPRESSION)

    return write


def _row_groups(batches: Iterable[pl.DataFrame], table: str, written: StreamedWrite) -> FileWriter:
    """What writes ``batches`` as one Parquet file, a row group per batch."""

    def write(handle: BinaryIO) -> None:
        writer: pq.ParquetWriter | None = None
        try:
            for batch in batches:
                arrow = _described(batch, table)
                if writer is None:
                    writer = pq.ParquetWriter(handle, arrow.schema, compression=COMPRESSION)
                writer.write_table(arrow, row_group_size=max(1, arrow.num_rows))
                written.rows += arrow.num_rows
                written.row_groups += 1
        except BaseException:
            if writer is not None:
                # The file is discarded; closing only releases the encoder.
                with contextlib.suppress(Exception):
                    writer.close()
            raise
        if writer is None:
            raise ValueError(f"{written.path}: no batches to write; a partition needs a schema")
        writer.close()

    return write


def _put(folder: UPath, name: Namer, write: FileWriter) -> UPath:
    """Write a file into ``folder`` so that readers see it whole or not at all.

    Local files go through one temporary file, locked, synced and renamed. Object
    stores publish a whole object per upload: the content is spooled to a local
    temporary file (bounded memory, however large the stream) and uploaded once, as
    a multipart upload where the store does so for large files; a failure before the
    upload leaves the folder as it was. Either way the file is named only when its
    content is complete.
    """
    if _is_local(folder):
        return folder / _atomic_local_write(Path(folder.path), name, write)
    with tempfile.NamedTemporaryFile(prefix=".mfn-upload-", suffix=".tmp") as spool:
        write(cast(BinaryIO, spool))
        spool.flush()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name(folder)
        path.fs.put_file(spool.name, path.path)
        return path


def _decoded_batches(path: UPath, columns: list[str] | None, repair: str) -> Iterator[pl.DataFrame]:
    """The row groups of one Parquet file, or a WarehouseError naming it and ``repair``."""
    with path.open("rb") as handle:
        try:
            parquet = pq.ParquetFile(handle)
            missing = sorted(set(columns or ()) - set(parquet.schema_arrow.names))
            if missing:
                raise older_layout_error(path, ", ".join(missing), repair)
            # Row group by row group: pyarrow's iter_batches kept every group it had
            # read alive (a 600 MB file took 950 MB), read_row_group frees each one.
            for group in range(parquet.num_row_groups):
                # An Arrow table always converts to a polars table.
                yield cast(pl.DataFrame, pl.from_arrow(parquet.read_row_group(group, columns)))
        # A decoding failure means a damaged file; an OSError may pass, so it stays
        # retryable (ArrowIOError is an OSError).
        except pa.ArrowException as exc:
            if isinstance(exc, OSError):
                raise
            raise damaged_file_error(path, f"{type(exc).__name__}: {exc}", repair) from exc


def _decoded(path: UPath, columns: list[str] | None, repair: str) -> pl.DataFrame:
    """One Parquet file, or a WarehouseError naming it and ``repair``, what fixes it."""
    try:
        if _is_local(path):
            # From a path polars reads only the column chunks asked for; from a file
            # object it first reads the whole file (every stored field) into memory.
            # Opening it first lets the OS's own error (a folder, no permission) surface
            # as itself; glob=False keeps '[', '*' or '?' in the path literal.
            with open(path.path, "rb"):
                pass
            return pl.read_parquet(path.path, columns=columns, glob=False)
        with path.open("rb") as handle:
            return pl.read_parquet(handle, columns=columns)
    except pl.exceptions.ColumnNotFoundError as exc:
        raise older_layout_error(path, str(exc), repair) from exc
    # A decoding failure means a damaged file: say which and how to repair it. A failing
    # file system or object store (OSError, "os error") may pass, so it stays retryable.
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException) as exc:
        if _IO_ERROR in str(exc):
            raise
        raise damaged_file_error(path, f"{type(exc).__name__}: {exc}", repair) from exc


def older_layout_error(path: object, missing: str, repair: str) -> WarehouseError:
    """The error for a stored file that lacks columns a step reads, with what repairs it."""
    return WarehouseError(
        f"{path}: lacks column(s) needed here ({missing}); it was written by an older "
        f"layout: {repair}"
    )


def damaged_file_error(path: object, detail: str, repair: str) -> WarehouseError:
    """The error for a warehouse file that cannot be decoded, with what repairs it."""
    return WarehouseError(f"{path}: not a readable Parquet file ({detail}); {repair}")


def repair_hint(path: object, record: bool) -> str:
    """What repairs a warehouse file: a build record is moved away, a partition rebuilt."""
    return record_hint(path) if record else rebuild_hint(_partition_of(path))


def _partition_of(path: object) -> str:
    """The partition a table file holds: its folder's name for a generation, else its stem."""
    file = PurePosixPath(str(path))
    return file.parent.name if _became_current_ns(file.name) is not None else file.stem


def rebuild_hint(partition: str) -> str:
    """How a user repairs or creates one partition: a full rebuild replaces every file."""
    return (
        f"rebuild the partition: mfn build {partition} "
        f"(or dg launch --assets '*' --partition {partition})"
    )


def record_hint(path: object) -> str:
    """How a user repairs a damaged build record, which no later build rewrites."""
    return (
        f"a build record is history that no rebuild rewrites: move {path} out of the "
        "warehouse and the other records read again"
    )


def _checked(name: str, what: str = "partition", pattern: re.Pattern[str] = NAME_PATTERN) -> str:
    """A path component from a partition key or name: never a separator, '..' or empty."""
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise WarehouseError(
            f"{what} name {name!r} cannot be stored: it must match {pattern.pattern} "
            "(no path separators, no '..'), so no path can leave the warehouse"
        )
    return name


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """A local file's inode, modification time and size (None if absent): it changes on replace."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _generations(folder: UPath) -> list[UPath]:
    """The files of one partition, oldest first: the last is the partition.

    A warehouse of the earlier layout kept a partition as TABLE/<preset>.parquet: that
    file counts as the oldest generation, so it is read until a build replaces it.
    Only files count; a name that is not a real time is no generation.
    """
    earlier = folder.with_name(f"{folder.name}{SUFFIX}")
    found = [earlier] if earlier.is_file() else []
    if folder.is_dir():
        found += sorted(
            (
                entry
                for entry in folder.iterdir()
                if entry.name.endswith(SUFFIX)
                and _became_current_ns(entry.name) is not None
                and entry.is_file()
            ),
            key=lambda entry: entry.name,
        )
    return found


def _became_current_ns(name: str) -> int | None:
    """When the generation file ``name`` became current, in ns since the epoch (None: no
    generation's name)."""
    match = GENERATION_PATTERN.fullmatch(name.removesuffix(SUFFIX))
    if match is None:
        return None
    try:
        seconds = calendar.timegm(time.strptime(match["at"], _STAMP))
    except ValueError:
        return None  # month 13, hour 25: a copied or hand-made name
    return seconds * 1_000_000_000 + int(match["ns"])


def _next_generation(folder: UPath) -> str:
    """The name of a generation that becomes current now, after every one in ``folder``.

    Named from this machine's clock, but always after the newest name already there: a
    clock set back (or another writer's clock ahead) never makes a new write lose to
    an older one.
    """
    latest = max(
        (at for entry in _generations(folder) if (at := _became_current_ns(entry.name))),
        default=0,
    )
    at = max(time.time_ns(), latest + 1)
    stamp = time.strftime(_STAMP, time.gmtime(at // 1_000_000_000))
    return f"{stamp}{at % 1_000_000_000:09d}Z-{uuid.uuid4().hex[:8]}{SUFFIX}"


def _retire_superseded(folder: UPath, kept_s: float = SUPERSEDED_KEPT_S) -> None:
    """Delete the files of a partition that a newer one replaced more than ``kept_s`` ago."""
    generations = _generations(folder)
    now = time.time_ns()
    for old, successor in itertools.pairwise(generations):
        replaced_at = _became_current_ns(successor.name)
        if replaced_at is None or now - replaced_at < kept_s * 1_000_000_000:
            break  # later ones were replaced later still
        try:
            old.unlink()
        except FileNotFoundError:
            continue  # another writer of this partition retired it first
        except OSError as exc:
            # Retiring is housekeeping: a file we may not delete must not fail the write.
            logger.warning("left superseded %s in place: %s", old, exc)


def _atomic_local_write(folder: Path, name: Namer, write: FileWriter) -> str:
    """Write a file into ``folder`` atomically with ``write``; return the name it got.

    If ``write`` raises, the temporary file is removed and nothing new appears.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _remove_orphans(folder)
    # Same folder, so the rename never crosses a file system; the name does not end
    # in .parquet, so a listing never picks up a half-written file.
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    try:
        with _locked_new_file(tmp) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            final = name(UPath(folder))
            os.replace(tmp, folder / final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        _fsync_dir(folder)
    except OSError as exc:
        # The new file is in place; only the durability of its name across a power
        # cut is in doubt, which does not make this write a failure.
        logger.warning("wrote %s, but could not sync its folder: %s", folder / final, exc)
    return final


@contextlib.contextmanager
def _locked_new_file(tmp: Path) -> Iterator[BinaryIO]:
    """Create ``tmp`` and hold an exclusive lock on it until it is closed.

    While the lock is held the file is a live write, whatever process or container
    holds it (_remove_orphans). Between creating and locking, another writer's cleanup
    may take it for an orphan and unlink it: then it is created again.
    """
    while True:
        handle = tmp.open("wb")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            if os.fstat(handle.fileno()).st_nlink > 0:
                break
        except BaseException:
            handle.close()
            raise
        handle.close()
    with handle:
        yield handle


def _remove_orphans(folder: Path) -> None:
    """Delete temporary files in ``folder`` that no live writer holds (e.g. it was killed)."""
    for tmp in folder.glob(".*.tmp"):
        try:
            with tmp.open("rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                tmp.unlink(missing_ok=True)
        except BlockingIOError:
            continue  # a writer is still at work on it
        except FileNotFoundError:
            continue  # renamed into place or removed meanwhile
        except OSError as exc:
            # Cleanup is a courtesy: a file we may not touch must not fail this write.
            logger.warning("left %s in place: %s", tmp, exc)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ViewFiles:
    """The partition files each catalog view reads, and the files left out."""

    files: Mapping[str, tuple[str, ...]]  # view name (VIEWS key) -> sorted paths or URLs
    skipped: tuple[str, ...]  # one line each: "<file>: left out of view <v>: <why>; <fix>"


# Column types of each table's contract, in polars' terms.
_CONTRACT_TYPES: dict[str, dict[str, pl.DataType]] = {
    table: {name: column.dtype.type for name, column in SCHEMAS[table].columns.items()}
    for table in VIEWS.values()
}
_MOVE_AWAY = "move it out of the warehouse (it is not one of this product's files)"


def view_files(root: str) -> ViewFiles:
    """The files of the warehouse at ``root`` that each view reads, and those left out.

    Only the product's own files: each partition's current TABLE/<preset>/<generation>.parquet
    (or TABLE/<preset>.parquet of the earlier layout) and
    builds/<preset>/<run id>.parquet) whose Parquet schema matches the table's
    contract. Foreign names, foreign or older schemas and undecodable footers are
    left out, each with a line saying why and what fixes it.
    """
    base = UPath(root)
    files: dict[str, tuple[str, ...]] = {}
    skipped: list[str] = []
    for view, table in VIEWS.items():
        viewed = []
        for path, misplaced in _candidates(base / table, table in RECORD_TABLES):
            problem = misplaced or _verdict(path, table)
            if problem:
                skipped.append(f"{path}: left out of view {view}: {problem}")
            else:
                viewed.append(str(path))
        if viewed:
            files[view] = tuple(sorted(viewed))
    return ViewFiles(files, tuple(skipped))


def _candidates(folder: UPath, records: bool) -> Iterator[tuple[UPath, str | None]]:
    """Each Parquet file a view of a table's folder may read, with why it is misplaced (or None).

    A partition offers its current file only; superseded generations wait to be retired.
    Other files (a writer's temporary file, a note) are no partitions and are passed over.
    """
    if not folder.is_dir():
        return
    shape = f"{folder.name}/<preset>/<{'run id' if records else 'generation'}>{SUFFIX}"
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            preset_ok = NAME_PATTERN.fullmatch(entry.name) is not None
            generations: list[UPath] = []  # in name order: the last is the current one
            for file in sorted(entry.iterdir()):
                if not file.name.endswith(SUFFIX):
                    continue
                stem = file.name[: -len(SUFFIX)]
                named = RECORD_PATTERN.fullmatch(stem) if records else _became_current_ns(stem)
                if not (preset_ok and named is not None):
                    yield file, f"not named {shape}; {_MOVE_AWAY}"
                elif not file.is_file():
                    yield file, f"not a file; {_MOVE_AWAY}"
                elif records:
                    yield file, None
                else:
                    generations.append(file)
            if generations:
                yield generations[-1], None
        elif entry.name.endswith(SUFFIX):
            name = entry.name[: -len(SUFFIX)]
            if records:
                yield entry, f"a build record belongs in {folder.name}/<preset>/; {_MOVE_AWAY}"
            elif not NAME_PATTERN.fullmatch(name):
                why = f"its name is not a preset's ({NAME_PATTERN.pattern}{SUFFIX})"
                yield entry, f"{why}; {_MOVE_AWAY}"
            elif not entry.is_file():
                yield entry, f"not a file; {_MOVE_AWAY}"
            elif _generations(folder / name)[-1] == entry:
                yield entry, None  # a partition of the earlier layout, not yet rebuilt


def _verdict(path: UPath, table: str) -> str | None:
    """Why ``path`` is not a file of ``table`` (None: it is), remembered per file identity."""
    identity = file_identity(Path(path.path)) if _is_local(path) else None
    if identity is None:
        return _schema_problem(path, table)
    key = (str(path), identity)
    if key not in _FILE_VERDICTS:
        if len(_FILE_VERDICTS) >= FILE_VERDICTS_KEPT:
            _FILE_VERDICTS.clear()
        _FILE_VERDICTS[key] = _schema_problem(path, table)
    return _FILE_VERDICTS[key]


def _schema_problem(path: UPath, table: str) -> str | None:
    """Why the Parquet file at ``path`` does not hold ``table``'s contract, or None."""
    record = table in RECORD_TABLES
    fix = repair_hint(path, record)
    if not record:
        fix = f"move it out of the warehouse if it is no partition of a preset, else {fix}"
    # The preset a file's rows must all name: its own partition's, or its record folder's.
    owner = path.parent.name if record else _partition_of(path)
    try:
        with path.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            schema = parquet.schema_arrow
            stranger = _other_preset(parquet, owner)
    # A footer that does not decode, or a file the OS refuses to read.
    except (pa.ArrowException, OSError) as exc:
        return f"not a readable Parquet file ({type(exc).__name__}: {exc}); {fix}"
    stored = dict(pl.from_arrow(schema.empty_table()).schema)  # type: ignore[union-attr]
    expected = _CONTRACT_TYPES[table]
    wrong = [
        f"{name} is {dtype}, expected {expected[name]}"
        for name, dtype in stored.items()
        if name in expected and dtype != expected[name]
    ]
    unexpected = sorted(set(stored) - set(expected))
    # Older records may lack newer columns, never the record's key.
    missing = sorted(set(expected) - set(stored)) if not record else []
    if record and next(iter(expected)) not in stored:
        missing = [next(iter(expected))]
    if not (wrong or unexpected or missing):
        if stranger is None:
            return None
        # A copy or export of another preset's partition: viewed, it would count twice.
        return (
            f"its rows belong to preset {stranger!r}, not {owner!r} (a copy or an export "
            f"of another partition); {fix}"
        )
    found = "; ".join(
        part
        for part in (
            f"missing {_some(missing)}" if missing else "",
            f"unexpected {_some(unexpected)}" if unexpected else "",
            _some(wrong),
        )
        if part
    )
    return (
        f"its columns do not match the contract of {table} ({found}), e.g. a stray "
        f"export or a file of an older layout; {fix}"
    )


def _other_preset(parquet: pq.ParquetFile, owner: str) -> str | None:
    """A preset other than ``owner`` that some row of the file names, or None.

    Told by the footer's min/max statistics of ``preset`` where the writer kept them
    (polars does), else by reading that one column.
    """
    if "preset" not in parquet.schema_arrow.names:
        return None
    metadata = parquet.metadata
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            if column.path_in_schema != "preset":
                continue
            stats = column.statistics
            if stats is None or not stats.has_min_max:
                return _other_preset_read(parquet, owner)
            for value in (stats.min, stats.max):
                if value != owner:
                    return str(value)
    return None


def _other_preset_read(parquet: pq.ParquetFile, owner: str) -> str | None:
    names = parquet.read(columns=["preset"]).column(0).unique().to_pylist()
    return next((str(name) for name in names if name != owner), None)


def _some(items: list[str], shown: int = 4) -> str:
    """The first ``shown`` items and how many more, so a message stays one short line."""
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")
