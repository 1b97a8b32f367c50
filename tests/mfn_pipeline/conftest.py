"""Pipeline test setup: every test gets its own warehouse, catalog and Dagster instance."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from mfn_pipeline import defs, storage
from mfn_pipeline.definitions import resources_for
from mfn_pipeline.partitions import SETTINGS
from mfn_pipeline.settings import Environment
from mfn_pipeline.storage import Warehouse

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
