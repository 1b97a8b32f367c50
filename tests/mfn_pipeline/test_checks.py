"""Each check passes on clean data and fails on deliberately broken data."""

from __future__ import annotations

import dataclasses

import dagster as dg
import polars as pl
import pytest

from mfn_core.presets import Expectations, Preset
from mfn_core.sweep import run_sweep
from mfn_core.tables import dataset_table, features_table, runs_table, summary_table
from mfn_pipeline.defs import checks
from mfn_pipeline.lib.metering import Usage, metered

from .conftest import project_settings


@pytest.fixture(scope="module")
def preset() -> Preset:
    return project_settings().presets["small"]


@pytest.fixture(scope="module")
def runs(preset: Preset) -> pl.DataFrame:
    return runs_table(run_sweep(preset, keep_arrays=True))


@pytest.fixture(scope="module")
def features(runs: pl.DataFrame) -> pl.DataFrame:
    return features_table(runs)


@pytest.fixture(scope="module")
def dataset(runs: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    return dataset_table(runs, features)


def test_row_count(preset: Preset, runs: pl.DataFrame) -> None:
    assert checks.row_count(preset, runs).passed
    assert not checks.row_count(preset, runs.head(9)).passed
    failed = runs.with_columns(
        status=pl.when(pl.col("sim_id") == 3).then(pl.lit("failed")).otherwise("status"),
        reason=pl.when(pl.col("sim_id") == 3).then(pl.lit("V holds NaN")).otherwise("reason"),
    )
    result = checks.row_count(preset, failed)
    assert not result.passed
    assert result.metadata["failed_runs"].value == 1
    assert "sim_id 3: V holds NaN" in str(result.metadata["failure_reasons"].value)


def test_ceilings(preset: Preset) -> None:
    with metered() as usage:
        pass
    assert checks.ceilings(preset, usage).passed
    assert preset.expect.max_runtime_s is not None
    assert preset.expect.max_peak_memory_mib is not None
    slow = Usage(seconds=preset.expect.max_runtime_s + 1, peak_rss_bytes=usage.peak_rss_bytes)
    assert "runtime" in (checks.ceilings(preset, slow).description or "")
    big = Usage(seconds=0.1, peak_rss_bytes=int(2**20 * (preset.expect.max_peak_memory_mib + 1)))
    result = checks.ceilings(preset, big)
    assert not result.passed
    assert "peak memory" in (result.description or "")


def test_metered_sees_an_allocation_inside_the_block() -> None:
    with metered() as usage:
        block = bytearray(200 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        del block
    assert usage.peak_rss_mib >= 200


def test_core_sanity_passes_and_fails_when_the_reference_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = checks.core_sanity()
    assert result.passed
    assert result.metadata["nernst_k_mv"].value == pytest.approx(-89.0, abs=1.0)
    with monkeypatch.context() as patch:
        patch.setattr(checks, "point_box_dimension", lambda points: 1.2)
        broken = checks.core_sanity()
    assert not broken.passed
    assert "Sierpinski dimension 1.200" in (broken.description or "")
    monkeypatch.setattr(checks, "nernst_potential", lambda *args: -0.061)
    broken = checks.core_sanity()
    assert not broken.passed
    assert "Nernst K+ -61.00 mV" in (broken.description or "")


def test_degenerate_passes_columns_the_preset_explains(
    preset: Preset, features: pl.DataFrame
) -> None:
    # At the 4.1 parameters the absolute thresholds see nothing; small says so.
    assert "D_box" in preset.expect.constant
    result = checks.degenerate(preset, features)
    assert result.passed, result.description
    assert "D_box: " in str(result.metadata["stated_constant_columns"].value)


def test_degenerate_warns_on_unexplained_constant_columns(
    preset: Preset, features: pl.DataFrame
) -> None:
    unstated = dict(preset.expect.constant)
    del unstated["f_active"], unstated["D_box"]
    silent = dataclasses.replace(
        preset, expect=dataclasses.replace(preset.expect, constant=unstated)
    )
    result = checks.degenerate(silent, features)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["unexplained_constant_columns"].value == ["D_box", "f_active"]
    assert "small: constant across all 10 runs: D_box = 0.0, f_active = 0.0" in (
        result.description or ""
    )
    assert "expect.constant" in (result.description or "")


def test_degenerate_warns_when_a_stated_column_varies(
    preset: Preset, features: pl.DataFrame
) -> None:
    varied = features.with_columns(D_box=pl.Series(range(features.height), dtype=pl.Float64) / 10.0)
    result = checks.degenerate(preset, varied)
    assert not result.passed
    assert "now varies: D_box; remove them from expect.constant" in (result.description or "")


def test_expected_ranges(preset: Preset, dataset: pl.DataFrame) -> None:
    assert checks.expected_ranges(preset, dataset).passed
    shifted = dataset.with_columns(V_mean=pl.col("V_mean") + 50.0)
    result = checks.expected_ranges(preset, shifted)
    assert not result.passed
    assert "V_mean: 10 row(s) outside [-71, -68]" in (result.description or "")
    narrow = dataclasses.replace(preset, expect=Expectations(ranges={"H_entropy": (0.0, 1.0)}))
    assert not checks.expected_ranges(narrow, dataset).passed


def test_drift(preset: Preset, runs: pl.DataFrame, dataset: pl.DataFrame) -> None:
    summary = summary_table(preset, runs, dataset)
    assert checks.drift(None, summary).passed
    assert checks.drift(summary, summary).passed
    moved = summary.with_columns(D_box_rel_mean=pl.col("D_box_rel_mean") * 1.01)
    result = checks.drift(moved, summary)
    assert not result.passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    assert "D_box_rel" in (result.description or "")
    other_config = moved.with_columns(config_hash=pl.lit("0" * 64))
    assert checks.drift(other_config, summary).passed
