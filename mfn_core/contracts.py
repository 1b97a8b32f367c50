"""The data contract: one pandera-polars schema per stored table.

A table is checked against its schema before it is written; :func:`enforce` raises
:class:`ContractError` listing the offending rows, so bad data never replaces the
last good partition. Column sets derive from the parameter specs and feature names,
so the contract cannot fall out of step with the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandera.polars as pa
import polars as pl

from mfn_core.features import ALL_FEATURE_NAMES, COUNT_FEATURES
from mfn_core.params import PARAM_SPECS, ParamSpec
from mfn_core.presets import NAME_PATTERN
from mfn_core.sweep import ARRAY_SCHEMA, STATUS_FAILED, STATUS_OK

V_RANGE_MV = (-95.0, 40.0)  # the model's clamp, in the features' millivolts
MAX_LISTED_FAILURES = 20


class ContractError(ValueError):
    """A table breaks its schema; the message lists the offending rows."""

    def __init__(self, message: str, failure_cases: pl.DataFrame) -> None:
        super().__init__(message)
        self.failure_cases = failure_cases


def _param_column(spec: ParamSpec) -> pa.Column:
    if spec.choices:
        return pa.Column(pl.String, pa.Check.isin(spec.choices))
    if spec.kind is bool:
        return pa.Column(pl.Boolean)
    dtype = pl.Int64 if spec.kind is int else pl.Float64
    return pa.Column(dtype, pa.Check.in_range(spec.low, spec.high))


# Physical bounds of each feature; NaN and Inf fail every range check.
_FEATURE_RANGES: dict[str, tuple[float, float]] = {
    "D_box": (0.0, 3.0),
    "D_r2": (0.0, 1.0),
    "V_min": V_RANGE_MV,
    "V_max": V_RANGE_MV,
    "V_mean": V_RANGE_MV,
    "V_std": (0.0, V_RANGE_MV[1] - V_RANGE_MV[0]),
    "dV_mean": (0.0, V_RANGE_MV[1] - V_RANGE_MV[0]),
    "dV_max": (0.0, V_RANGE_MV[1] - V_RANGE_MV[0]),
    "f_active": (0.0, 1.0),
    "D_box_rel": (0.0, 3.0),
    "D_r2_rel": (0.0, 1.0),
    "H_entropy": (0.0, 6.0),  # log2 of the 64 histogram bins
}


def _feature_column(name: str) -> pa.Column:
    if name in COUNT_FEATURES:
        return pa.Column(pl.Int64, pa.Check.ge(0))
    low, high = _FEATURE_RANGES.get(name, (-float("inf"), float("inf")))
    # Open-ended features still must be finite: in_range(-inf, inf) rejects NaN only,
    # so Inf is caught by an explicit check.
    return pa.Column(pl.Float64, [pa.Check.in_range(low, high), _finite()])


def _finite() -> pa.Check:
    return pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).is_finite()), name="finite")


_KEY = {
    "sim_id": pa.Column(pl.Int64, pa.Check.ge(0), unique=True),
    "preset": pa.Column(pl.String, pa.Check.str_matches(f"^{NAME_PATTERN.pattern}$")),
}
# Seed first, as in the sweep's rows.
_PARAMS = {
    name: _param_column(PARAM_SPECS[name])
    for name in ("seed", *(name for name in PARAM_SPECS if name != "seed"))
}
_METRICS = {
    "growth_events": pa.Column(pl.Int64, pa.Check.ge(0)),
    "turing_activations": pa.Column(pl.Int64, pa.Check.ge(0)),
    "clamping_events": pa.Column(pl.Int64, pa.Check.ge(0)),
    "lyapunov": pa.Column(pl.Float64, _finite()),
}
_FEATURES = {name: _feature_column(name) for name in ALL_FEATURE_NAMES}
_SHA = pa.Column(pl.String, pa.Check.str_matches(r"^[0-9a-f]{64}$"))
_DURATION = pa.Column(pl.Float64, [pa.Check.ge(0.0), _finite()])


def _nullable(columns: Mapping[str, pa.Column]) -> dict[str, pa.Column]:
    """The same columns, null allowed: failed runs have no metrics or arrays."""
    return {
        name: pa.Column(column.dtype, column.checks, nullable=True)
        for name, column in columns.items()
    }


def _status_matches_reason() -> pa.Check:
    def check(data: pa.PolarsData) -> pl.LazyFrame:
        ok = pl.col("status") == STATUS_OK
        return data.lazyframe.select(ok == pl.col("reason").is_null())

    return pa.Check(check, name="reason_set_exactly_when_failed")


RUNS_SCHEMA = pa.DataFrameSchema(
    {
        **_KEY,
        **_PARAMS,
        **_nullable(_METRICS),
        "field_sha256": pa.Column(pl.String, _SHA.checks, nullable=True),
        "duration_s": _DURATION,
        "status": pa.Column(pl.String, pa.Check.isin((STATUS_OK, STATUS_FAILED))),
        "reason": pa.Column(pl.String, nullable=True),
        **_nullable({name: pa.Column(dtype) for name, dtype in ARRAY_SCHEMA.items()}),
    },
    checks=[_status_matches_reason()],
    strict=True,
    ordered=True,
    name="simulation_runs",
)

FEATURES_SCHEMA = pa.DataFrameSchema(
    {**_KEY, **_FEATURES}, strict=True, ordered=True, name="fractal_features"
)

DATASET_SCHEMA = pa.DataFrameSchema(
    {
        **_KEY,
        **_PARAMS,
        **_METRICS,
        "field_sha256": _SHA,
        "duration_s": _DURATION,
        **_FEATURES,
    },
    strict=True,
    ordered=True,
    name="mfn_dataset",
)

# Aggregated columns of preset_summary: mean and population std of each of these.
SUMMARY_SOURCES: tuple[str, ...] = ("lyapunov", "growth_events", *ALL_FEATURE_NAMES)

SUMMARY_SCHEMA = pa.DataFrameSchema(
    {
        "preset": _KEY["preset"],
        "config_hash": _SHA,
        "runs": pa.Column(pl.Int64, pa.Check.ge(0)),
        "ok_runs": pa.Column(pl.Int64, pa.Check.ge(0)),
        "failed_runs": pa.Column(pl.Int64, pa.Check.ge(0)),
        "duration_s": _DURATION,
        **{
            f"{name}_{stat}": pa.Column(pl.Float64, _finite(), nullable=True)
            for name in SUMMARY_SOURCES
            for stat in ("mean", "std")
        },
    },
    strict=True,
    ordered=True,
    name="preset_summary",
)

BUILDS_SCHEMA = pa.DataFrameSchema(
    {
        "build_id": pa.Column(pl.String, unique=True),
        "preset": _KEY["preset"],
        "finished_at": pa.Column(pl.Datetime("us", "UTC")),
        "code_version": pa.Column(pl.String),
        "config_hash": _SHA,
        "runs": pa.Column(pl.Int64, pa.Check.ge(0)),
        "failed_runs": pa.Column(pl.Int64, pa.Check.ge(0)),
        "dataset_rows": pa.Column(pl.Int64, pa.Check.ge(0)),
        # Absent when the run did not rebuild that asset.
        "simulation_s": pa.Column(pl.Float64, _DURATION.checks, nullable=True),
        "features_s": pa.Column(pl.Float64, _DURATION.checks, nullable=True),
        "checks_passed": pa.Column(pl.Int64, pa.Check.ge(0)),
        "checks_warned": pa.Column(pl.Int64, pa.Check.ge(0)),
        "checks_failed": pa.Column(pl.Int64, pa.Check.ge(0)),
        "check_outcomes": pa.Column(pl.String),
    },
    strict=True,
    ordered=True,
    name="builds",
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    schema.name: schema
    for schema in (RUNS_SCHEMA, FEATURES_SCHEMA, DATASET_SCHEMA, SUMMARY_SCHEMA, BUILDS_SCHEMA)
}


def enforce(schema: pa.DataFrameSchema, table: pl.DataFrame) -> pl.DataFrame:
    """Return ``table`` if it meets ``schema``; else raise ContractError naming the rows."""
    try:
        return schema.validate(table, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    rows = cases["index"].drop_nulls().unique().sort()
    listed = "\n".join(
        f"  row {row['index']}: column {row['column']} = {row['failure_case']} fails {row['check']}"
        for row in cases.head(MAX_LISTED_FAILURES).iter_rows(named=True)
    )
    more = cases.height - MAX_LISTED_FAILURES
    raise ContractError(
        f"table {schema.name} breaks its contract in {cases.height} place(s), "
        f"{rows.len()} row(s):\n{listed}" + (f"\n  ... and {more} more" if more > 0 else ""),
        cases,
    )
