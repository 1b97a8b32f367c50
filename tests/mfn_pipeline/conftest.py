"""Pipeline test setup: every test gets its own warehouse, catalog and Dagster instance."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from mfn_core.contracts import SCHEMAS
from mfn_pipeline.definitions import defs, resources_for
from mfn_pipeline.defs.partitions import SETTINGS
from mfn_pipeline.lib import warehouse as storage
from mfn_pipeline.lib.settings import Environment
from mfn_pipeline.lib.warehouse import Warehouse

PROJECT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def read_parquet_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downstream assets read the stored Parquet files, not this process's own copy."""
    monkeypatch.setattr(storage, "RECENT_WRITES_KEPT", 0)
    storage._RECENT_WRITES.clear()


@pytest.fixture
def environment(tmp_path: Path) -> Environment:
    """The dev environment, writing under this test's temporary folder."""
    return dataclasses.replace(
        SETTINGS.environment,
        warehouse=str(tmp_path / "warehouse"),
        catalog=tmp_path / "mfn.duckdb",
    )


@pytest.fixture
def warehouse(environment: Environment) -> Warehouse:
    return Warehouse(root=environment.warehouse, catalog=str(environment.catalog))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


def build(
    preset: str, environment: Environment, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """Run the build job for one preset partition, in process, against real storage."""
    job = defs.resolve_job_def("build_all_presets_job")
    result: dg.ExecuteInProcessResult = job.execute_in_process(
        partition_key=preset,
        instance=instance,
        resources=resources_for(environment),
        raise_on_error=False,
    )
    return result


def contract_frame(
    table: str, preset: str = "small", rows: int = 1, **values: object
) -> pl.DataFrame:
    """``rows`` rows with exactly ``table``'s contract columns and types (placeholders
    unless given in ``values``): what the catalog accepts as one of the table's files.
    """
    placeholders: dict[type[pl.DataType], object] = {
        pl.Int64: list(range(rows)),
        pl.Float64: 0.5,
        pl.Boolean: False,
        pl.String: "x",
        pl.List: [0.0],
        pl.Datetime: dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    columns = {}
    for name, column in SCHEMAS[table].columns.items():
        dtype = column.dtype.type
        value = values.get(name, preset if name == "preset" else placeholders[dtype.base_type()])
        listed = value if isinstance(value, list) and dtype != pl.List else [value] * rows
        columns[name] = pl.Series(name, listed, dtype=dtype)
    return pl.DataFrame(columns)


@contextlib.contextmanager
def catalog_connection(catalog: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The catalog opened as a user does: read-only, its relative file names taken from
    its own folder (file_search_path), whatever this process's working directory.
    """
    with duckdb.connect(str(catalog), read_only=True) as con:
        con.execute("SET file_search_path = ?", [str(Path(catalog).parent)])
        yield con


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs: writes beyond it fail with ENOSPC, as on a full disk."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"the disk-full test mounts a tmpfs (needs root): {mounted}"
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)
