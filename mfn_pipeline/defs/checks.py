"""Asset checks: what every build must show, evaluated on the tables it writes.

Each check is a plain function of the data returning an ``AssetCheckResult``, so
tests run it on clean and on deliberately broken tables; the assets yield their
results beside their output.
"""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import polars as pl

from mfn_core.contracts import SUMMARY_SOURCES
from mfn_core.features import ALL_FEATURE_NAMES
from mfn_core.presets import Preset
from mfn_core.science import iterate_ifs, nernst_potential, point_box_dimension
from mfn_core.sweep import STATUS_FAILED
from mfn_pipeline.lib.metering import Usage

ROW_COUNT_CHECK = "row_count_and_no_failed_runs"
CEILINGS_CHECK = "runtime_and_memory_ceilings"
CORE_SANITY_CHECK = "core_scientific_sanity"
DEGENERATE_CHECK = "no_degenerate_feature_columns"
EXPECTED_RANGES_CHECK = "expected_value_ranges"
DRIFT_CHECK = "no_drift_since_previous_build"

# Scientific reference values (docs/model.md, section 6).
NERNST_K_MV, NERNST_TOLERANCE_MV = -89.0, 1.0
SIERPINSKI_DIMENSION, DIMENSION_TOLERANCE = math.log(3) / math.log(2), 0.1
# Same configuration and code give bit-identical runs, so any change in a mean
# beyond rounding noise is drift.
DRIFT_RELATIVE_TOLERANCE = 1e-9
MAX_LISTED = 10

WARN = dg.AssetCheckSeverity.WARN


def row_count(preset: Preset, runs: pl.DataFrame) -> dg.AssetCheckResult:
    failed = runs.filter(pl.col("status") == STATUS_FAILED)
    passed = runs.height == preset.num_samples and failed.height == 0
    reasons = [
        f"sim_id {row['sim_id']}: {row['reason']}"
        for row in failed.head(MAX_LISTED).iter_rows(named=True)
    ]
    problems = []
    if runs.height != preset.num_samples:
        problems.append(f"{runs.height} rows, expected {preset.num_samples}")
    if failed.height:
        problems.append(f"{failed.height} failed run(s)")
    return dg.AssetCheckResult(
        check_name=ROW_COUNT_CHECK,
        passed=passed,
        description="; ".join(problems) or None,
        metadata={
            "rows": runs.height,
            "expected_rows": preset.num_samples,
            "failed_runs": failed.height,
            "failure_reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons) or "none"),
        },
    )


def ceilings(preset: Preset, usage: Usage) -> dg.AssetCheckResult:
    limits = preset.expect
    problems = []
    if limits.max_runtime_s is not None and usage.seconds > limits.max_runtime_s:
        problems.append(f"runtime {usage.seconds:.1f} s > {limits.max_runtime_s:g} s")
    if limits.max_peak_memory_mib is not None and usage.peak_rss_mib > limits.max_peak_memory_mib:
        problems.append(
            f"peak memory {usage.peak_rss_mib:.0f} MiB > {limits.max_peak_memory_mib:g} MiB"
        )
    return dg.AssetCheckResult(
        check_name=CEILINGS_CHECK,
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={
            "runtime_s": usage.seconds,
            "peak_rss_mib": usage.peak_rss_mib,
            # Unset ceilings are left out: metadata floats must be finite.
            **({"max_runtime_s": limits.max_runtime_s} if limits.max_runtime_s else {}),
            **(
                {"max_peak_memory_mib": limits.max_peak_memory_mib}
                if limits.max_peak_memory_mib
                else {}
            ),
        },
    )


def sierpinski_maps() -> np.ndarray:
    """The three half-scale maps whose attractor is the Sierpinski triangle."""
    maps = np.zeros((3, 2, 3))
    maps[:, 0, 0] = maps[:, 1, 1] = 0.5
    maps[:, :, 2] = [[0.0, 0.0], [0.5, 0.0], [0.25, math.sqrt(3) / 4]]
    return maps


def core_sanity() -> dg.AssetCheckResult:
    """The core's physics and fractal tools against known values."""
    nernst_mv = nernst_potential(1, 5e-3, 140e-3) * 1000.0
    dimension = point_box_dimension(iterate_ifs(sierpinski_maps(), 50_000, seed=0).points)
    problems = []
    if abs(nernst_mv - NERNST_K_MV) > NERNST_TOLERANCE_MV:
        problems.append(f"Nernst K+ {nernst_mv:.2f} mV, expected {NERNST_K_MV} ± 1")
    if abs(dimension - SIERPINSKI_DIMENSION) > DIMENSION_TOLERANCE:
        problems.append(f"Sierpinski dimension {dimension:.3f}, expected 1.585 ± 0.1")
    return dg.AssetCheckResult(
        check_name=CORE_SANITY_CHECK,
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={"nernst_k_mv": nernst_mv, "sierpinski_dimension": dimension},
    )


def degenerate(preset: Preset, features: pl.DataFrame) -> dg.AssetCheckResult:
    """WARN when a feature column holds one value across the preset for no stated reason.

    A preset states the columns it knows to be constant, with the reason, in
    ``expect.constant``; those pass every build, so a warning always means something
    new: a column went flat unexpectedly, or a stated one now varies.
    """
    known = preset.expect.constant
    constant = {
        name: features[name][0]
        for name in ALL_FEATURE_NAMES
        if features.height > 1 and features[name].n_unique() == 1
    }
    unexplained = {name: value for name, value in constant.items() if name not in known}
    varying = [name for name in known if features.height > 1 and name not in constant]
    problems = []
    if unexplained:
        listed = ", ".join(f"{name} = {value}" for name, value in unexplained.items())
        problems.append(
            f"{preset.name}: constant across all {features.height} runs: {listed}; if that is "
            "expected, state why under expect.constant in the preset file"
        )
    if varying:
        problems.append(
            f"{preset.name}: stated constant in expect.constant but now varies: "
            f"{', '.join(varying)}; remove them from expect.constant"
        )
    return dg.AssetCheckResult(
        check_name=DEGENERATE_CHECK,
        passed=not problems,
        severity=WARN,
        description="; ".join(problems) or None,
        metadata={
            "unexplained_constant_columns": dg.MetadataValue.json(sorted(unexplained)),
            "stated_constant_columns": dg.MetadataValue.md(
                "\n".join(f"- {name}: {reason}" for name, reason in known.items()) or "none"
            ),
            "varying_stated_columns": dg.MetadataValue.json(varying),
        },
    )


def expected_ranges(preset: Preset, dataset: pl.DataFrame) -> dg.AssetCheckResult:
    """Every value of each column named in the preset's expect.ranges lies in its range."""
    problems = []
    for column, (low, high) in preset.expect.ranges.items():
        outside = dataset.filter(~pl.col(column).is_between(low, high))
        if outside.height:
            values = outside[column].head(MAX_LISTED).to_list()
            ids = outside["sim_id"].head(MAX_LISTED).to_list()
            problems.append(
                f"{column}: {outside.height} row(s) outside [{low:g}, {high:g}], "
                f"e.g. sim_id {ids} = {values}"
            )
    if dataset.is_empty() and preset.expect.ranges:
        problems.append("the data set is empty")
    return dg.AssetCheckResult(
        check_name=EXPECTED_RANGES_CHECK,
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={
            "columns_checked": len(preset.expect.ranges),
            "violations": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
        },
    )


def drift(previous: pl.DataFrame | None, summary: pl.DataFrame) -> dg.AssetCheckResult:
    """WARN when feature means moved although the preset's configuration did not."""
    current = summary.row(0, named=True)
    if previous is None or previous.is_empty():
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=True,
            severity=WARN,
            metadata={"compared_with": "nothing (first build)"},
        )
    before = previous.row(0, named=True)
    if before["config_hash"] != current["config_hash"]:
        return dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=True,
            severity=WARN,
            metadata={"compared_with": "nothing (configuration changed)"},
        )
    moved = {}
    for name in SUMMARY_SOURCES:
        old, new = before[f"{name}_mean"], current[f"{name}_mean"]
        if old is None or new is None:
            if old is not new:
                moved[name] = (old, new)
        elif not math.isclose(old, new, rel_tol=DRIFT_RELATIVE_TOLERANCE, abs_tol=1e-12):
            moved[name] = (old, new)
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not moved,
        severity=WARN,
        description=(f"means moved with the same config: {', '.join(moved)}" if moved else None),
        metadata={
            "compared_with": "previous build, same config hash",
            "moved": dg.MetadataValue.md(
                "\n".join(f"- {k}: {a} -> {b}" for k, (a, b) in moved.items()) or "none"
            ),
        },
    )
