"""Faults on purpose: damaged files, a full disk, failing runs, transient errors, runaways.

Each test breaks one thing and shows that the build says what broke, and that the last
good data stays readable.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mfn_core import sweep
from mfn_core.errors import SimulationError
from mfn_core.params import SimParams
from mfn_pipeline.definitions import definitions_for
from mfn_pipeline.defs import assets, checks
from mfn_pipeline.lib import catalog
from mfn_pipeline.lib import warehouse as storage
from mfn_pipeline.lib.settings import Environment
from mfn_pipeline.lib.warehouse import Warehouse, WarehouseError

from .conftest import build, contract_frame, placed, project_settings

SMALL = project_settings().presets["small"]


def step_failure(result: dg.ExecuteInProcessResult, step: str) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == step)
    error = failure.step_failure_data.error
    return error.message if error else ""


def retries(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.step_key or ""
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]


# --- a damaged Parquet file --------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def stored_path(environment: Environment, table: str) -> Path:
    """The current file of the partition small of ``table``."""
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    return Path(warehouse.stored_file(table, "small").path)


def overwrite_with_garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage\xff" * 512)


@pytest.mark.parametrize("damage", [truncate, overwrite_with_garbage])
def test_damaged_partition_is_named_with_its_fix_and_a_rebuild_repairs_it(
    damage: object, environment: Environment, instance: dg.DagsterInstance
) -> None:
    assert build("small", environment, instance).success
    path = stored_path(environment, "simulation_runs")
    assert callable(damage)
    damage(path)

    with pytest.raises(WarehouseError) as refused:
        catalog.query(environment, "SELECT count(*) FROM runs")
    assert str(path) in str(refused.value)
    assert "mfn build small" in str(refused.value)

    # A build that reads the damaged file (features only) fails naming it and the fix.
    job = dg.define_asset_job("features_only", selection=["fractal_features"])
    partial = dg.Definitions.merge(
        definitions_for(placed(environment)), dg.Definitions(jobs=[job])
    ).resolve_job_def("features_only")
    result = partial.execute_in_process(
        partition_key="small", instance=instance, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result, "fractal_features")
    assert str(path) in message
    assert "mfn build small" in message
    assert retries(result) == []  # a damaged file stays damaged: no retry

    assert build("small", environment, instance).success
    assert catalog.query(environment, "SELECT count(*) AS n FROM runs")["n"].to_list() == [
        SMALL.num_samples
    ]


def test_a_damaged_build_record_is_named_with_its_fix_and_keeps_the_others_readable(
    environment: Environment, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    assert build("small", environment, instance).success
    (record,) = (Path(environment.warehouse) / "builds" / "small").iterdir()
    truncate(record)

    # No rebuild rewrites a record, so the fix named is moving the file away.
    with pytest.raises(WarehouseError) as refused:
        catalog.query(environment, "SELECT count(*) FROM builds")
    assert str(record) in str(refused.value)
    assert "move" in str(refused.value)
    assert "mfn build" not in str(refused.value)

    # The next build stores its data and its own record, then fails once on the history.
    result = build("small", environment, instance)
    assert not result.success
    message = step_failure(result, "builds")
    assert str(record) in message
    assert "move" in message
    assert retries(result) == []
    assert catalog.query(environment, "SELECT count(*) AS n FROM runs")["n"].to_list() == [
        SMALL.num_samples
    ]

    record.rename(tmp_path / record.name)
    assert build("small", environment, instance).success
    counted = catalog.query(environment, "SELECT count(*) AS n FROM builds WHERE preset = 'small'")
    assert counted["n"].to_list() == [2]  # the failed build's record and the last one


# --- a full disk ---------------------------------------------------------------------


def test_disk_full_during_a_write_is_a_clear_error_and_keeps_the_previous_partition(
    small_disk: Path, tmp_path: Path
) -> None:
    warehouse = Warehouse(root=str(small_disk / "warehouse"), catalog=str(tmp_path / "c.duckdb"))
    previous = pl.DataFrame({"sim_id": range(100), "x": np.arange(100.0)})
    path = Path(warehouse.write("simulation_runs", "small", previous).path)
    before = path.read_bytes()

    incompressible = np.random.default_rng(0).random(400_000)  # 3.2 MB of float64
    with pytest.raises(WarehouseError) as full:
        warehouse.write("simulation_runs", "small", pl.DataFrame({"x": incompressible}))
    message = str(full.value)
    assert str(path.parent) in message
    assert "No space left on device" in message
    assert "the previous version, if any, is untouched; free space" in message

    assert path.read_bytes() == before
    assert warehouse.read("simulation_runs", "small").equals(previous)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no leftovers


def flaky_writes(monkeypatch: pytest.MonkeyPatch, failures: dict[str, int]) -> None:
    """Make the next ``failures[table]`` writes of each table fail with ENOSPC."""
    real_write = storage._atomic_local_write

    def flaky_write(folder: Path, name: storage.Namer, write: storage.FileWriter) -> str:
        table = folder.parent.name  # TABLE/<preset>/<generation>.parquet
        if failures.get(table, 0) > 0:
            failures[table] -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
        return real_write(folder, name, write)

    monkeypatch.setattr(storage, "_atomic_local_write", flaky_write)


def test_a_transient_write_failure_is_retried_in_storage_without_redoing_the_sweep(
    environment: Environment,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = {"simulation_runs": len(storage.WRITE_RETRY_DELAYS_S)}
    flaky_writes(monkeypatch, failures)
    sweeps = []
    real_sweep_batches = sweep.sweep_batches

    def counted_sweep_batches(*args: Any, **kwargs: Any) -> Iterator[pl.DataFrame]:
        sweeps.append(args[0])
        return real_sweep_batches(*args, **kwargs)

    monkeypatch.setattr(assets, "sweep_batches", counted_sweep_batches)
    result = build("small", environment, instance)

    assert result.success
    assert failures == {"simulation_runs": 0}
    assert retries(result) == []  # the step ran once
    assert len(sweeps) == 1
    attempts = len(storage.WRITE_RETRY_DELAYS_S) + 1
    assert f"write 1 of {attempts} failed (No space left on device); trying again" in caplog.text


def test_a_write_failing_past_the_storage_retries_is_retried_with_its_step(
    environment: Environment, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = {"fractal_features": len(storage.WRITE_RETRY_DELAYS_S) + 1}
    flaky_writes(monkeypatch, failures)
    result = build("small", environment, instance)

    assert result.success
    assert retries(result) == ["fractal_features"]
    assert failures == {"fractal_features": 0}


# --- a run that fails numerically ------------------------------------------------------


def test_a_failing_run_is_recorded_with_its_reason_and_the_checks_report_it(
    environment: Environment, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken_seed = SMALL.base_seed + 3
    real_simulate = sweep.simulate  # type: ignore[attr-defined]

    def simulate(params: SimParams) -> object:
        if params.seed == broken_seed:
            raise SimulationError(f"non-finite V at step 17 (seed {params.seed})")
        return real_simulate(params)

    monkeypatch.setattr(sweep, "simulate", simulate)
    result = build("small", environment, instance)

    runs = Warehouse(root=environment.warehouse, catalog=str(environment.catalog)).read(
        "simulation_runs", "small"
    )
    failed = runs.filter(pl.col("status") == sweep.STATUS_FAILED)
    assert failed["sim_id"].to_list() == [3]
    assert failed["reason"].to_list() == [f"non-finite V at step 17 (seed {broken_seed})"]
    assert runs.filter(pl.col("status") == sweep.STATUS_OK).height == SMALL.num_samples - 1

    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    row_count = evaluations[checks.ROW_COUNT_CHECK]
    assert not row_count.passed
    assert "sim_id 3" in str(row_count.metadata["failure_reasons"].value)


# --- a runaway build --------------------------------------------------------------------


def test_the_wall_clock_limit_stops_a_runaway_sweep_without_retrying(
    environment: Environment, instance: dg.DagsterInstance
) -> None:
    assert build("small", environment, instance).success
    path = stored_path(environment, "simulation_runs")
    before = path.read_bytes()

    # Far below any configurable whole number of seconds: the sweep is stopped at once.
    limits = dataclasses.replace(environment.limits, wall_clock_s=1e-6)
    result = build("small", dataclasses.replace(environment, limits=limits), instance)

    assert not result.success
    message = step_failure(result, "simulation_runs")
    assert "wall-clock limit of 1e-06 s" in message
    assert f"of {SMALL.num_samples} runs done" in message
    assert "limits.wall_clock_s" in message
    assert retries(result) == []
    assert path.read_bytes() == before


# --- SIGKILL in the middle of writes -----------------------------------------------------

WRITER = """
import sys
import numpy as np, polars as pl
from mfn_core.contracts import DATASET_SCHEMA
from mfn_pipeline.lib.warehouse import Warehouse
warehouse = Warehouse(root=sys.argv[1], catalog=sys.argv[2])
# The contract's columns and the partition's preset, so the catalog views the file;
# seed tells the version apart.
rows, columns = int(sys.argv[3]), DATASET_SCHEMA.columns.items()
versions = [pl.DataFrame([pl.Series(name, np.random.default_rng(v).random(rows) * 100)
                          .cast(column.dtype.type) for name, column in columns])
            .with_columns(preset=pl.lit("small"), seed=pl.lit(v, pl.Int64)) for v in (1, 2)]
print("ready", flush=True)
n = 0
while True:
    warehouse.write("mfn_dataset", "small", versions[n % 2])
    n += 1
"""
KILL_TRIALS = 24
WRITER_ROWS = 20_000


@pytest.mark.slow
def test_sigkill_during_writes_leaves_a_whole_partition_and_the_next_build_completes(
    environment: Environment, instance: dg.DagsterInstance
) -> None:
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", seed=0))
    path = Path(warehouse.stored_file("mfn_dataset", "small").path)
    seen_versions, killed_mid_write = set(), 0
    writer_args = [str(environment.catalog), str(WRITER_ROWS)]
    for trial in range(KILL_TRIALS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, environment.warehouse, *writer_args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        # Spread over several write cycles, so kills land before, in and after renames.
        time.sleep(0.013 * trial + 0.005)
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
        killed_mid_write += any(path.parent.glob(".*.tmp"))

        stored = warehouse.read("mfn_dataset", "small")
        versions = stored["seed"].unique().to_list()
        assert len(versions) == 1  # one whole version, never a mix or a torn file
        assert stored.height == (1 if versions == [0] else WRITER_ROWS)
        seen_versions.add(versions[0])
        (count,) = catalog.query(environment, "SELECT count(*) AS n FROM dataset")["n"]
        assert count == stored.height

    assert killed_mid_write > 0, "no kill landed inside a write: spread the kill times"
    assert seen_versions >= {1, 2}
    # The next build replaces the partition and clears what the killed writers left.
    assert build("small", environment, instance).success
    assert warehouse.read("mfn_dataset", "small").height == SMALL.num_samples
    assert list(path.parent.glob(".*.tmp")) == []


# Where each whole-build kill lands: during start-up, or just after the first, second or
# third table of the chain was replaced. Progress is watched on disk, not guessed from
# a timed sleep: builds on a busy machine run at very different speeds.
KILL_AFTER: tuple[str | None, ...] = (None, "simulation_runs", "fractal_features", "mfn_dataset")
STARTUP_KILL_S = 1.0


@pytest.mark.slow
def test_sigkill_of_whole_builds_leaves_whole_partitions_and_the_next_build_completes(
    environment: Environment, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MFN_WAREHOUSE": environment.warehouse,
        "MFN_CATALOG": str(environment.catalog),
    }
    command = [
        str(Path(sys.executable).parent / "dg"),
        "launch", "-m", "mfn_pipeline.definitions", "--assets", "*", "--partition", "medium",
    ]  # fmt: skip

    def materialize() -> subprocess.Popen[bytes]:
        # A session of its own, so the kill takes the sweep's worker processes too,
        # as when the machine or container running a build goes away.
        return subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    assert materialize().wait(timeout=600) == 0  # the first build also fills numba's cache
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    medium = project_settings().presets["medium"].num_samples
    tables = ("simulation_runs", "fractal_features", "mfn_dataset")

    def mtimes() -> dict[str, int]:
        return {t: Path(warehouse.stored_file(t, "medium").path).stat().st_mtime_ns for t in tables}

    def build_records() -> int:
        records = warehouse.read_records("builds", "medium")
        return 0 if records is None else records.height

    landed: list[tuple[str, ...]] = []
    for trigger in KILL_AFTER:
        before, records_before = mtimes(), build_records()
        build_process = materialize()
        deadline = time.monotonic() + (STARTUP_KILL_S if trigger is None else 600)
        while time.monotonic() < deadline and build_process.poll() is None:
            if trigger is not None and mtimes()[trigger] != before[trigger]:
                break
            time.sleep(0.002)
        assert build_process.poll() is None, f"the build ended before {trigger} was replaced"
        os.killpg(build_process.pid, signal.SIGKILL)
        assert build_process.wait(timeout=60) == -signal.SIGKILL
        after = mtimes()
        replaced = tuple(t for t in tables if after[t] != before[t])
        if build_records() == records_before:  # killed before its build record
            landed.append(replaced)
        for table in tables:
            assert warehouse.read(table, "medium").height == medium, (trigger, table)
        counts = catalog.query(environment, "SELECT count(*) AS n FROM dataset")["n"]
        assert counts.to_list() == [medium]
    # Kills at start-up, and after one, two and three replaced tables (the last window,
    # before the build record, is the shortest, so one slip past it is allowed).
    assert {(), tables[:1], tables[:2]} <= set(landed), landed
    assert materialize().wait(timeout=600) == 0
    assert warehouse.read("mfn_dataset", "medium").height == medium
