"""A sweep's memory is bounded and its cost is estimated, and refused, before it starts."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from benchmarks.sweep_memory import best_of_interleaved, estimated, measure, probe_configs
from mfn_core import sweep
from mfn_core.presets import load_preset
from mfn_core.resources import GIB, batch_rows_for, estimate
from mfn_core.tables import runs_table
from mfn_pipeline.lib.settings import ConfigError, Environment, check_budget, load_settings
from mfn_pipeline.lib.warehouse import Warehouse, WarehouseError

from .conftest import PROJECT, build, project_settings

ISSUE_SHAPE = {"grid_size": 1024, "steps": 1, "num_samples": 100_000}


def _step_failure(result: dg.ExecuteInProcessResult, step: str) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == step)
    error = failure.step_failure_data.error
    return error.message if error else ""


# --- the estimate, checked at load ------------------------------------------------------


def test_the_issue_preset_is_refused_at_load_with_its_estimate(tmp_path: Path) -> None:
    configs = probe_configs(tmp_path, **ISSUE_SHAPE)
    path = configs / "presets" / "memory-probe.yaml"
    settings = load_settings(configs, "dev")
    # Only the preset fails; the others load.
    assert set(settings.presets) == set(project_settings().presets)
    problem = settings.problem_of("memory-probe")
    assert problem is not None
    message = problem.message
    assert str(path) in message
    assert "estimated peak memory" in message
    assert "storage 830.3 GiB" in message  # 100,000 fields of 8 MiB, with the list levels
    assert "limits.storage_gib = 100" in message
    assert "\n" not in message
    # The check itself, as the per-preset validation calls it, in both environments.
    preset = load_preset(path)
    for env in ("dev", "prod"):
        with pytest.raises(ConfigError, match=r"exceeds the \w+ environment's"):
            check_budget(path, preset, load_settings(PROJECT / "configs", env).environment)


def test_a_tight_memory_budget_refuses_with_the_memory_estimate(tmp_path: Path) -> None:
    configs = probe_configs(tmp_path, grid_size=32, steps=50, num_samples=10)
    dev = configs / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("memory_mib: 8192", "memory_mib: 100"))
    problem = load_settings(configs, "dev").problem_of("memory-probe")
    assert problem is not None
    assert re.search(r"estimated peak memory .* limits\.memory_mib = 100", problem.message)


def test_every_project_preset_fits_both_budgets() -> None:
    for env in ("dev", "prod"):
        assert set(load_settings(PROJECT / "configs", env).presets) == set(
            project_settings().presets
        )


def test_the_estimate_grows_with_the_stored_fields_not_the_held_ones() -> None:
    rows = batch_rows_for(1024, 1)
    one = estimate(1024, 1, 1_000, rows, 2)
    hundred = estimate(1024, 1, 100_000, rows, 2)
    assert hundred.storage_bytes > 99 * one.storage_bytes
    # Streaming: only the per-run scalars held downstream grow, not the 8 MiB fields.
    assert hundred.peak_memory_bytes < one.peak_memory_bytes + 100_000 * 8 * 1024
    assert hundred.storage_bytes > 700 * GIB
    with pytest.raises(ValueError, match="workers = 0"):
        estimate(32, 50, 10, rows, 0)


# --- the estimate against reality ------------------------------------------------------


@pytest.mark.parametrize(("preset", "grid_size", "steps"), [("small", 32, 50), ("medium", 64, 100)])
def test_the_estimate_bounds_measured_memory_and_storage(
    preset: str, grid_size: int, steps: int
) -> None:
    # Best of 2, as every memory figure here.
    build_ = min((measure(preset) for _ in range(2)), key=lambda b: b.peak_rss_mib)
    assert build_.failed_steps == []
    cost = estimated(build_, grid_size, steps)
    memory = build_.peak_rss_mib / cost.peak_memory_mib
    storage = build_.stored_bytes / cost.storage_bytes
    # An upper bound, and not a wild one: a refusal must mean something.
    assert 0.4 < memory <= 1.0, (build_, cost)
    assert 0.25 < storage <= 1.0, (build_, cost)


# --- free space, checked at the start of simulation_runs --------------------------------


def test_a_build_beyond_the_warehouse_free_space_is_refused_before_any_run(
    small_disk: Path, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    environment = dataclasses.replace(
        project_settings().environment,
        warehouse=str(small_disk / "warehouse"),
        catalog=tmp_path / "m.db",
    )
    started: list[object] = []
    real_batches = sweep._batches

    def recorded(*args: Any) -> Iterator[pl.DataFrame]:
        started.append(args)
        return real_batches(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep, "_batches", recorded)
        result = build("medium", environment, instance)  # about 4 MiB on a 1 MiB disk
    assert not result.success
    message = _step_failure(result, "simulation_runs")
    assert "preset medium: estimated peak memory" in message
    assert "storage 4.2 MiB" in message
    assert "GiB free; nothing was run or written" in message
    assert started == []
    assert list((small_disk / "warehouse").rglob("*.parquet")) == []


# --- streaming through one atomic write -------------------------------------------------


@pytest.fixture
def row_groups_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweeps stream in batches of 3 runs (small's 10 runs: 4 row groups)."""
    monkeypatch.setattr(sweep, "batch_rows_for", lambda grid_size, steps: 3)


@pytest.mark.usefixtures("row_groups_of_three")
def test_a_streamed_build_writes_bounded_row_groups_and_equals_run_sweep(
    environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance
) -> None:
    result = build("small", environment, instance)
    assert result.success
    path = Path(warehouse.stored_file("simulation_runs", "small").path)
    metadata = pq.ParquetFile(path).metadata
    assert [metadata.row_group(k).num_rows for k in range(metadata.num_row_groups)] == [3, 3, 3, 1]
    (runs,) = result.asset_materializations_for_node("simulation_runs")
    assert runs.metadata["row_groups"].value == 4
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    # Fields and features, batch by batch, equal the one-table sweep bit for bit.
    whole = sweep.run_sweep(project_settings().presets["small"], keep_arrays=True)
    stored = pl.read_parquet(path).drop("duration_s")
    assert stored.equals(runs_table(whole).drop("duration_s"))
    features = warehouse.read("fractal_features", "small")
    assert features.equals(whole.select(features.columns))
    dataset = warehouse.read("mfn_dataset", "small").drop("duration_s")
    assert dataset.equals(whole.select(dataset.columns))


def test_a_batch_breaking_the_contract_leaves_the_previous_partition_byte_identical(
    environment: Environment,
    warehouse: Warehouse,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert build("small", environment, instance).success
    path = Path(warehouse.stored_file("simulation_runs", "small").path)
    before = path.read_bytes()
    monkeypatch.setattr(sweep, "batch_rows_for", lambda grid_size, steps: 3)
    batches_written: list[int] = []

    def third_batch_broken(batch: pl.DataFrame) -> pl.DataFrame:
        batches_written.append(batch.height)
        table = runs_table(batch)
        if len(batches_written) < 3:
            return table
        return table.with_columns(lyapunov=pl.lit(np.nan))

    monkeypatch.setattr("mfn_pipeline.defs.assets.runs_table", third_batch_broken)
    result = build("small", environment, instance)

    assert not result.success
    assert batches_written == [3, 3, 3]  # two batches were streamed before the broken one
    message = _step_failure(result, "simulation_runs")
    assert "simulation_runs breaks its contract" in message
    assert "was not replaced" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no leftovers


def test_a_stream_to_an_object_store_replaces_the_object_only_when_complete(
    tmp_path: Path,
) -> None:
    remote = Warehouse(root="memory://mfn-stream-test", catalog=str(tmp_path / "mfn.duckdb"))
    first = [pl.DataFrame({"sim_id": [0, 1]}), pl.DataFrame({"sim_id": [2]})]
    written = remote.write_batches("simulation_runs", "small", iter(first))
    assert (written.rows, written.row_groups) == (3, 2)
    stored = remote.stored_file("simulation_runs", "small")
    before = stored.read_bytes()

    def broken() -> Iterator[pl.DataFrame]:
        yield pl.DataFrame({"sim_id": [5]})
        raise RuntimeError("a batch broke")

    with pytest.raises(RuntimeError, match="a batch broke"):
        remote.write_batches("simulation_runs", "small", broken())
    assert stored.read_bytes() == before
    assert [b["sim_id"].to_list() for b in remote.read_batches("simulation_runs", "small")] == [
        [0, 1],
        [2],
    ]


def test_a_disk_filling_mid_stream_fails_at_once_and_keeps_the_previous_partition(
    small_disk: Path, tmp_path: Path
) -> None:
    warehouse = Warehouse(root=str(small_disk / "warehouse"), catalog=str(tmp_path / "c.duckdb"))
    path = Path(warehouse.write("simulation_runs", "small", pl.DataFrame({"x": [1.0]})).path)
    before = path.read_bytes()
    pulled: list[int] = []

    def incompressible() -> Iterator[pl.DataFrame]:
        rng = np.random.default_rng(0)
        for k in range(8):  # 8 x 400 KB on a 1 MiB disk
            pulled.append(k)
            yield pl.DataFrame({"x": rng.random(50_000)})

    with pytest.raises(WarehouseError) as full:
        warehouse.write_batches("simulation_runs", "small", incompressible())
    assert "No space left on device" in str(full.value)
    assert "could not be written (a stream is written once)" in str(full.value)
    assert len(pulled) < 8
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


# --- memory that does not follow the run count -----------------------------------------


@pytest.mark.slow
def test_the_streaming_build_needs_barely_more_memory_for_8x_the_runs() -> None:
    # 256x256 fields of 0.5 MiB in row groups of 63 runs: 150 runs against 1,200.
    short, long = best_of_interleaved(256, 10, 150, repeats=2)
    assert (short.runs, long.runs) == (150, 1200)
    assert short.failed_steps == long.failed_steps == []
    assert long.row_groups > short.row_groups
    # Holding every field, 1,050 more runs add 525 MiB at least (the ratio near 2);
    # streaming holds a row group whatever the count.
    assert long.peak_rss_mib < 1.5 * short.peak_rss_mib, (short, long)
