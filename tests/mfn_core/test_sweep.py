from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
import tracemalloc
from pathlib import Path

import polars as pl
import pytest

from mfn_core import ParamError, SimParams, SimulationError, simulate
from mfn_core import sweep as sweep_module
from mfn_core.columns import ARRAYS, SWEEP, polars_schema
from mfn_core.contracts import SCHEMAS, enforce
from mfn_core.errors import SweepTimeoutError
from mfn_core.features import ALL_FEATURE_NAMES
from mfn_core.model import Run
from mfn_core.presets import Preset, load_preset
from mfn_core.sweep import ARRAY_SCHEMA, SWEEP_SCHEMA, run_sweep, sweep_batches
from mfn_core.tables import dataset_table, features_table, runs_table, summary_table

PRESETS = Path(__file__).parents[2] / "configs" / "presets"


@pytest.fixture(scope="module")
def medium() -> Preset:
    return load_preset(PRESETS / "medium.yaml")


@pytest.fixture(scope="module")
def medium_two_workers(medium: Preset) -> pl.DataFrame:
    return run_sweep(medium, workers=2)


def test_one_row_per_run_in_order(medium: Preset, medium_two_workers: pl.DataFrame) -> None:
    df = medium_two_workers
    assert df.schema == pl.Schema(SWEEP_SCHEMA)
    assert df.height == medium.num_samples
    assert df["sim_id"].to_list() == list(range(medium.num_samples))
    assert df["seed"].to_list() == [42 + k for k in range(medium.num_samples)]
    assert (df["status"] == "ok").all()
    assert df["reason"].is_null().all()
    assert df.select(ALL_FEATURE_NAMES).null_count().sum_horizontal().item() == 0


def test_worker_count_does_not_change_results(
    medium: Preset, medium_two_workers: pl.DataFrame
) -> None:
    one = run_sweep(medium, workers=1).drop("duration_s")
    assert one.equals(medium_two_workers.drop("duration_s"))


def test_row_equals_a_lone_run_of_the_same_parameters(medium_two_workers: pl.DataFrame) -> None:
    row = medium_two_workers.row(57, named=True)
    run = simulate(SimParams(seed=row["seed"], grid_size=64, steps=100, alpha=row["alpha"]))
    assert row["field_sha256"] == hashlib.sha256(run.field.tobytes()).hexdigest()
    assert {name: row[name] for name in ALL_FEATURE_NAMES} == run.features
    assert row["lyapunov"] == run.metrics.lyapunov


@pytest.fixture
def seed_45_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run with seed 45 (small's sim_id 3) raises SimulationError; the others run."""

    def fail_on_seed_45(params: SimParams) -> Run:
        if params.seed == 45:
            raise SimulationError("run with seed 45 failed at step 7: V holds NaN or Inf")
        return simulate(params)

    monkeypatch.setattr(sweep_module, "simulate", fail_on_seed_45)


@pytest.mark.usefixtures("seed_45_fails")
def test_failing_run_is_a_row_and_the_others_finish() -> None:
    preset = load_preset(PRESETS / "small.yaml")
    seen: list[tuple[int, int]] = []
    df = run_sweep(preset, workers=2, progress=lambda done, total: seen.append((done, total)))
    failed = df.filter(pl.col("status") == "failed")
    assert failed["sim_id"].to_list() == [3]
    assert failed["reason"].item() == "run with seed 45 failed at step 7: V holds NaN or Inf"
    assert failed["D_box"].is_null().all()
    assert (df.filter(pl.col("sim_id") != 3)["status"] == "ok").all()
    assert seen == [(k, 10) for k in range(1, 11)]


@pytest.mark.usefixtures("seed_45_fails")
def test_the_sweep_and_its_tables_meet_the_columns_and_contracts() -> None:
    assert polars_schema(SWEEP) == SWEEP_SCHEMA
    assert polars_schema(ARRAYS) == ARRAY_SCHEMA
    preset = load_preset(PRESETS / "small.yaml")
    sweep = run_sweep(preset, workers=2, keep_arrays=True)
    assert sweep.schema == pl.Schema({**SWEEP_SCHEMA, **ARRAY_SCHEMA})
    runs = enforce(SCHEMAS["simulation_runs"], runs_table(sweep))
    features = enforce(SCHEMAS["fractal_features"], features_table(runs, workers=2))
    dataset = enforce(SCHEMAS["mfn_dataset"], dataset_table(runs, features))
    summary = enforce(SCHEMAS["preset_summary"], summary_table(preset, runs, dataset))
    assert runs.height == preset.num_samples
    assert dataset.height == preset.num_samples - 1
    ok = sweep.filter(pl.col("status") == "ok")
    assert features.drop("sim_id", "preset").equals(ok.select(ALL_FEATURE_NAMES))
    assert summary.row(0, named=True)["failed_runs"] == 1


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_count(medium: Preset, workers: object) -> None:
    with pytest.raises(ParamError, match="workers"):
        run_sweep(medium, workers=workers)  # type: ignore[arg-type]


def test_a_hung_run_cannot_hold_the_sweep_past_its_time_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    preset = load_preset(Path(__file__).parents[2] / "configs/presets/small.yaml")
    release = threading.Event()
    real_simulate = simulate

    def hanging(params: SimParams) -> Run:
        if params.seed == preset.base_seed + 2:
            release.wait(timeout=60)  # a run that would hang for a minute
        return real_simulate(params)

    monkeypatch.setattr(sweep_module, "simulate", hanging)
    started = time.monotonic()
    try:
        with pytest.raises(SweepTimeoutError, match=r"with 2 of 10 runs done"):
            run_sweep(preset, workers=2, time_limit_s=1.0)
        waited = time.monotonic() - started
    finally:
        release.set()
    # The error comes at the limit, not when the hung run would have returned.
    assert waited < 30, waited


def test_no_run_starts_after_the_time_limit_even_when_runs_are_fast() -> None:
    preset = load_preset(Path(__file__).parents[2] / "configs/presets/small.yaml")

    def slow_progress(done: int, total: int) -> None:
        time.sleep(0.5)  # every run in flight is finished before it is polled

    # 10 runs x 0.5 s of progress pass the 2 s limit, though no run is ever late.
    with pytest.raises(SweepTimeoutError, match=r"limit of 2 s .* of 10 runs done"):
        run_sweep(preset, workers=2, progress=slow_progress, time_limit_s=2.0)


def test_time_limit_must_be_positive() -> None:
    preset = load_preset(Path(__file__).parents[2] / "configs/presets/small.yaml")
    for bad in (0, -1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(ParamError, match="time_limit_s"):
            run_sweep(preset, time_limit_s=bad)  # type: ignore[arg-type]


def _resized(preset: Preset, num_samples: int) -> Preset:
    return dataclasses.replace(preset, grid_size=64, steps=10, num_samples=num_samples)


def test_batches_are_bounded_in_sim_id_order_and_gather_to_run_sweep() -> None:
    preset = load_preset(PRESETS / "small.yaml")
    batches = list(sweep_batches(preset, workers=2, keep_arrays=True, batch_rows=3))
    assert [batch.height for batch in batches] == [3, 3, 3, 1]
    streamed = pl.concat(batches)
    assert streamed["sim_id"].to_list() == list(range(preset.num_samples))
    whole = run_sweep(preset, workers=2, keep_arrays=True)
    assert streamed.drop("duration_s").equals(whole.drop("duration_s"))


@pytest.mark.parametrize("batch_rows", [0, -3, 2.5, True])
def test_bad_batch_size(batch_rows: object) -> None:
    preset = load_preset(PRESETS / "small.yaml")
    with pytest.raises(ParamError, match="batch_rows"):
        sweep_batches(preset, batch_rows=batch_rows)  # type: ignore[arg-type]


def _peak_numpy_bytes_while_streaming(preset: Preset) -> int:
    """Peak bytes of NumPy arrays alive while the batches are read and dropped."""
    tracemalloc.start()
    try:
        for _batch in sweep_batches(preset, workers=2, keep_arrays=True, batch_rows=4):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_streamed_sweep_holds_a_bounded_number_of_fields_however_many_runs() -> None:
    small = load_preset(PRESETS / "small.yaml")
    _peak_numpy_bytes_while_streaming(_resized(small, 2))  # compile outside the measurement
    short = _peak_numpy_bytes_while_streaming(_resized(small, 24))
    long = _peak_numpy_bytes_while_streaming(_resized(small, 192))
    # Holding every run, 8x the runs gave about 4x the peak (168 more 32 KiB fields);
    # streaming holds a batch, the window and the runs in flight whatever the count.
    assert long < 2 * short, (short, long)
