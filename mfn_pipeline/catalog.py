"""Read-only SQL over the catalog, sandboxed to the warehouse.

A query runs on a read-only connection whose file access is limited to the
warehouse folder and locked, and only a single SELECT-like statement is accepted:
nothing a user types can write, attach another database or read other files.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

from mfn_pipeline.settings import Environment
from mfn_pipeline.storage import damaged_file_error, repair_for

# Statement kinds that only read. DESCRIBE, SHOW and SUMMARIZE parse as SELECT.
READ_ONLY_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class QueryRefusedError(ValueError):
    """The SQL would write, touch files outside the warehouse, or is not one query."""


class QueryFailedError(RuntimeError):
    """A read-only query that DuckDB could not run (unknown column, bad syntax, ...)."""


class CatalogMissingError(FileNotFoundError):
    """No catalog yet: nothing has been built."""


# DuckDB quotes the file it could not decode: "No magic bytes found at end of file 'x'".
_QUOTED_PARQUET = re.compile(r"'([^']+\.parquet)'")


def check_read_only(sql: str) -> None:
    """Raise QueryRefusedError unless ``sql`` is exactly one read-only statement."""
    try:
        statements = duckdb.connect().extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"cannot parse the query: {exc}") from exc
    if len(statements) != 1:
        raise QueryRefusedError(
            f"got {len(statements)} statements; allowed: exactly one SELECT (no ';'-separated "
            "lists)"
        )
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise QueryRefusedError(
            f"{kind.name} statements are refused: the catalog is read-only; allowed: SELECT, "
            "WITH ... SELECT, DESCRIBE, SHOW, EXPLAIN"
        )


def connect(environment: Environment) -> duckdb.DuckDBPyConnection:
    """A read-only catalog connection that can read the warehouse's files and no others."""
    catalog = environment.catalog
    if not catalog.exists():
        raise CatalogMissingError(
            f"{catalog} does not exist yet; build a preset first (mfn build small)"
        )
    con = duckdb.connect(str(catalog), read_only=True)
    if "://" not in environment.warehouse:
        # Remote warehouses need DuckDB's network access, so only local ones are fenced.
        root = str(Path(environment.warehouse).resolve()) + "/"
        con.execute("SET allowed_directories = ?", [[root]])
        con.execute("SET enable_external_access = false")
    # An extension would bring its own readers (sqlite_scan, httpfs): none is fetched or loaded.
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def query(environment: Environment, sql: str, params: list[object] | None = None) -> pl.DataFrame:
    """Run one read-only statement against the catalog and return its rows."""
    check_read_only(sql)
    with connect(environment) as con:
        try:
            relation = con.sql(sql, params=params or None)
            frame: pl.DataFrame = pl.DataFrame() if relation is None else relation.pl()
            return frame
        except duckdb.PermissionException as exc:
            raise QueryRefusedError(
                f"{exc}; allowed: the catalog's views (runs, features, dataset, "
                "preset_summary, builds) and files inside the warehouse"
            ) from exc
        except duckdb.Error as exc:
            # A damaged warehouse file is named with its fix; any other error as it is.
            quoted = _QUOTED_PARQUET.search(str(exc))
            repair = quoted and repair_for(environment.warehouse, Path(quoted.group(1)))
            if not quoted or not repair:
                raise QueryFailedError(f"the query failed: {exc}") from exc
            raise damaged_file_error(quoted.group(1), str(exc), repair) from exc
