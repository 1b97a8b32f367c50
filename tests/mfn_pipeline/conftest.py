"""Pipeline test setup: every test gets its own warehouse, catalog and Dagster instance."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from mfn_core.contracts import SCHEMAS
from mfn_pipeline.definitions import definitions_for
from mfn_pipeline.defs import checks
from mfn_pipeline.lib.settings import Environment, Settings, load_settings
from mfn_pipeline.lib.warehouse import Warehouse

PROJECT = Path(__file__).parents[2]
# Every check of a build, as "asset.check" in the order the build runs them.
EVERY_CHECK = [
    f"simulation_runs.{checks.ROW_COUNT_CHECK}",
    f"simulation_runs.{checks.CEILINGS_CHECK}",
    f"simulation_runs.{checks.CORE_SANITY_CHECK}",
    f"fractal_features.{checks.DEGENERATE_CHECK}",
    f"mfn_dataset.{checks.EXPECTED_RANGES_CHECK}",
    f"preset_summary.{checks.DRIFT_CHECK}",
]


@functools.cache
def project_settings() -> Settings:
    """The project's configuration (configs/), as the code location loads it."""
    return load_settings()


@pytest.fixture
def environment(tmp_path: Path) -> Environment:
    """The dev environment, writing under this test's temporary folder."""
    return dataclasses.replace(
        project_settings().environment,
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


def placed(environment: Environment, settings: Settings | None = None) -> Settings:
    """``settings`` (the project's by default) with ``environment`` in place of its own."""
    return dataclasses.replace(settings or project_settings(), environment=environment)


def build(
    preset: str,
    environment: Environment,
    instance: dg.DagsterInstance,
    settings: Settings | None = None,
) -> dg.ExecuteInProcessResult:
    """Run the build job for one preset partition, in process, against real storage.

    The code location is built as it loads, from ``settings`` (the project's by
    default) placed in ``environment``.
    """
    job = definitions_for(placed(environment, settings)).resolve_job_def("build_all_presets_job")
    result: dg.ExecuteInProcessResult = job.execute_in_process(
        partition_key=preset, instance=instance, raise_on_error=False
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
