"""What the configured warehouse and catalog paths hold, and whether they may be written.

The catalog path names a file this product replaces on every rebuild. Only its own
catalog (a DuckDB database holding ``mfn_catalog_info``) or an empty or damaged
DuckDB file may be replaced: anything else (a text file, a partition's Parquet
file, a folder, another application's database) is refused before a byte is
written. The checks run when the configuration loads and again right before each
rebuild, since the file at that path may change in between.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import duckdb

# DuckDB reads these as a glob pattern in a file name, so a path holding one could
# make a view read another folder's files.
GLOB_CHARACTERS = frozenset("*?[]{}")
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
# only views, so the name lies well within this many bytes.
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


def glob_refusal(field: str, location: str) -> str | None:
    """Why ``location`` cannot be used: it holds characters DuckDB reads as a glob."""
    found = sorted(GLOB_CHARACTERS & set(location))
    if not found:
        return None
    return (
        f"{field} = {location!r} contains {' '.join(found)}, which DuckDB reads as a file "
        "pattern (its views would read other files); allowed: a path without any of "
        f"{' '.join(sorted(GLOB_CHARACTERS))}"
    )


def folder_refusal(warehouse: str) -> str | None:
    """Why a local warehouse path cannot hold the tables: something other than a folder."""
    if "://" in warehouse or not os.path.lexists(warehouse) or os.path.isdir(warehouse):
        return None
    kind = "a file" if os.path.isfile(warehouse) else "not a folder"
    return (
        f"warehouse = {warehouse!r} is {kind}; allowed: a folder (it is created if missing) "
        "or an fsspec URL"
    )


def nesting_refusal(warehouse: str, catalog: Path) -> str | None:
    """Why the catalog must not live where it is: the warehouse, or inside its tables."""
    if "://" in warehouse:
        return None
    root = Path(os.path.realpath(warehouse))
    if Path(os.path.realpath(catalog)) == root:
        return (
            f"catalog = {str(catalog)!r} is the warehouse folder itself; allowed: a file "
            "outside the warehouse, or directly in its top folder"
        )
    folder = Path(os.path.realpath(catalog.parent))
    if folder != root and folder.is_relative_to(root):
        return (
            f"catalog = {str(catalog)!r} lies inside the warehouse's table folders "
            f"({warehouse}), where a partition or build record could replace it; allowed: "
            "outside the warehouse, or directly in its top folder"
        )
    return None
