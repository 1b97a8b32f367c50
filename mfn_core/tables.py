"""The stored tables, each derived from the one before (docs/model.md section 8).

``simulation_runs`` keeps every run with its final field and trace;
``fractal_features`` recomputes the features of each successful run from those
arrays, so the stored data set equals what :func:`mfn_core.run_sweep` reports;
``mfn_dataset`` joins the two into the ML-ready table; ``preset_summary``
aggregates it. Every function returns a table that meets its contract.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from mfn_core.columns import (
    ARRAYS,
    DATASET,
    FEATURES,
    FIELD_COLUMN,
    RUNS,
    STATUS_FAILED,
    STATUS_OK,
    SUMMARY,
    SUMMARY_SOURCES,
    TRACE_COLUMNS,
    polars_schema,
)
from mfn_core.features import compute_features
from mfn_core.presets import Preset
from mfn_core.sweep import default_workers
from mfn_core.trace import StepTrace

_OK = pl.col("status") == STATUS_OK
_SUMMARY_TYPES = polars_schema(SUMMARY)


def runs_table(sweep: pl.DataFrame) -> pl.DataFrame:
    """The simulation_runs table from a ``run_sweep(..., keep_arrays=True)`` result."""
    missing = [column.name for column in ARRAYS if column.name not in sweep.columns]
    if missing:
        raise ValueError(
            f"sweep table lacks {', '.join(missing)}; run it with run_sweep(keep_arrays=True)"
        )
    return sweep.select(column.name for column in RUNS)


def _flat(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values of a list column as one array, and each row's start offset (plus the end)."""
    lengths = column.list.len().cast(pl.Int64).to_numpy()
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return column.explode().to_numpy(), offsets


def features_table(runs: pl.DataFrame, workers: int | None = None) -> pl.DataFrame:
    """Features of every successful run, computed from its stored field and trace.

    The feature kernels release the GIL, so ``workers`` threads (default: all cores)
    compute runs side by side; row order is kept.
    """
    ok = runs.filter(_OK)
    fields, field_at = _flat(ok[FIELD_COLUMN])
    traces = {name: _flat(ok[column]) for column, name in TRACE_COLUMNS.items()}
    sizes = ok["grid_size"].to_list()

    def one(k: int) -> dict[str, float | int]:
        field = fields[field_at[k] : field_at[k + 1]].reshape(sizes[k], sizes[k])
        trace = StepTrace(
            **{name: values[at[k] : at[k + 1]] for name, (values, at) in traces.items()}
        )
        return compute_features(field, trace)

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        rows = list(pool.map(one, range(ok.height)))
    values = pl.DataFrame(rows, schema=polars_schema(FEATURES), orient="row")
    return pl.concat([ok.select("sim_id", "preset"), values], how="horizontal")


def dataset_table(runs: pl.DataFrame, features: pl.DataFrame) -> pl.DataFrame:
    """The ML-ready table: each successful run's parameters, metrics and features."""
    joined = runs.filter(_OK).join(
        features, on=["sim_id", "preset"], how="inner", maintain_order="left"
    )
    return joined.select(column.name for column in DATASET)


def summary_table(preset: Preset, runs: pl.DataFrame, dataset: pl.DataFrame) -> pl.DataFrame:
    """One row of per-preset aggregates: counts, time, mean and spread of each feature."""
    stats = dataset.select(
        *(pl.col(name).cast(pl.Float64).mean().alias(f"{name}_mean") for name in SUMMARY_SOURCES),
        *(
            pl.col(name).cast(pl.Float64).std(ddof=0).alias(f"{name}_std")
            for name in SUMMARY_SOURCES
        ),
    )
    counts = {
        "preset": preset.name,
        "config_hash": preset.config_hash,
        "runs": runs.height,
        "ok_runs": dataset.height,
        "failed_runs": runs.filter(pl.col("status") == STATUS_FAILED).height,
        "duration_s": float(runs["duration_s"].sum()),
    }
    head = pl.DataFrame([counts], schema={name: _SUMMARY_TYPES[name] for name in counts})
    return pl.concat([head, stats], how="horizontal").select(column.name for column in SUMMARY)
