"""Every stored column, spelled once: name, polars type, unit, meaning and allowed values.

The pandera contracts (:mod:`mfn_core.contracts`), the sweep's polars types
(:mod:`mfn_core.sweep`), the column descriptions shown in Dagster and the Parquet
files' schema metadata are all derived from :data:`TABLES`. Parameter columns come
from :data:`mfn_core.params.PARAM_SPECS` and feature columns from
:data:`mfn_core.features.ALL_FEATURE_NAMES`: a new parameter needs no edit here, a new
feature only its unit, meaning and bounds in ``_FEATURE_DOCS`` (docs/model.md sections
3 to 8 explain each column).

Units: the ``field`` column is in volts; every ``V_*`` and ``dV_*`` feature, the
trace's potentials and energies, and the thresholds of the structure features are in
millivolts; dimensions, fractions and counts have no unit. Each column says its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import polars as pl
import pyarrow as pa

from mfn_core.features import ALL_FEATURE_NAMES, COUNT_FEATURES
from mfn_core.params import PARAM_SPECS, ParamSpec
from mfn_core.presets import NAME_PATTERN
from mfn_core.trace import StepTrace

STATUS_OK, STATUS_FAILED = "ok", "failed"
V_RANGE_MV = (-95.0, 40.0)  # the model's clamp, in the features' millivolts
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# Said with every unit in volts or millivolts, as the two are easily confused.
_UNIT_NOTES = {
    "V": "the V_* and dV_* features are in mV",
    "mV": "the field column itself is in volts",
}


@dataclass(frozen=True)
class Column:
    """One stored column and what its values may be.

    ``low`` and ``high`` are inclusive bounds (``high`` None: no upper bound); a
    column that may be null says when in ``null_when``; one whose value differs
    between two builds of the same configuration and code says why in ``varies``.
    """

    name: str
    dtype: pl.DataType
    description: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    finite: bool = False
    unique: bool = False
    null_when: str | None = None
    varies: str = ""

    def __post_init__(self) -> None:
        if self.high is not None and self.low is None:
            raise ValueError(f"column {self.name}: high = {self.high} needs a low bound")

    @property
    def nullable(self) -> bool:
        return self.null_when is not None

    def constraints(self) -> tuple[str, ...]:
        """The allowed values in words, one phrase per check (nullability and
        uniqueness are separate attributes)."""
        phrases = []
        if self.choices:
            phrases.append("one of " + ", ".join(self.choices))
        if self.pattern is not None:
            phrases.append(f"matches {self.pattern}")
        if self.low is not None:
            phrases.append(
                f">= {_number(self.low)}"
                if self.high is None
                else f"in [{_number(self.low)}, {_number(self.high)}]"
            )
        if self.finite:
            phrases.append("finite")
        return tuple(phrases)

    def text(self) -> str:
        """The description with unit, allowed values, nulls and reproducibility."""
        parts = [self.description]
        if self.unit:
            note = _UNIT_NOTES.get(self.unit.split("^")[0].split("/")[0])
            parts.append(f"Unit: {self.unit}" + (f" ({note})." if note else "."))
        allowed = self.constraints()
        if allowed:
            parts.append("Allowed: " + ", ".join(allowed) + ".")
        if self.unique:
            parts.append("Unique.")
        if self.null_when is not None:
            parts.append(f"Null when {self.null_when}.")
        if self.varies:
            parts.append(f"Not reproducible: {self.varies}.")
        return " ".join(parts)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


class ColumnDoc(NamedTuple):
    """A column as a catalog shows it (e.g. a Dagster TableColumn)."""

    name: str
    type: str
    description: str
    nullable: bool
    unique: bool
    constraints: tuple[str, ...]


# --- building blocks --------------------------------------------------------------


def _count(name: str, description: str, unit: str = "count") -> Column:
    return Column(name, pl.Int64(), description, unit, low=0)


def _seconds(name: str, description: str, varies: str) -> Column:
    return Column(name, pl.Float64(), description, "s", low=0.0, finite=True, varies=varies)


def _nullable(columns: Iterable[Column], when: str) -> tuple[Column, ...]:
    return tuple(dataclasses.replace(column, null_when=when) for column in columns)


def _param_column(name: str, spec: ParamSpec) -> Column:
    text = spec.description
    if spec.choices:
        return Column(name, pl.String(), text, spec.unit, choices=spec.choices)
    if spec.kind is bool:
        return Column(name, pl.Boolean(), text, spec.unit)
    dtype = pl.Int64() if spec.kind is int else pl.Float64()
    return Column(name, dtype, text, spec.unit, low=spec.low, high=spec.high)


_MV_SPREAD = (0.0, V_RANGE_MV[1] - V_RANGE_MV[0])

# Unit, meaning and physical bounds of each feature (docs/model.md sections 4 and 5);
# NaN and Inf fail every float feature, bounded or not.
_FEATURE_DOCS: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    "D_box": ("dimensionless", "Box-counting dimension of the cells above -60 mV.", (0.0, 3.0)),
    "D_r2": ("dimensionless", "R^2 of the log-log fit that gives D_box.", (0.0, 1.0)),
    "V_min": ("mV", "Smallest value of the final field.", V_RANGE_MV),
    "V_max": ("mV", "Largest value of the final field.", V_RANGE_MV),
    "V_mean": ("mV", "Mean of the final field.", V_RANGE_MV),
    "V_std": ("mV", "Population standard deviation of the final field.", _MV_SPREAD),
    "V_skew": ("dimensionless", "Skewness of the final field (0 for a flat field).", None),
    "V_kurt": ("dimensionless", "Excess kurtosis of the final field (0 for a flat field).", None),
    "dV_mean": (
        "mV",
        "Mean absolute change of a cell from one step to the next.",
        _MV_SPREAD,
    ),
    "dV_max": (
        "mV",
        "Largest absolute change of a cell from one step to the next.",
        _MV_SPREAD,
    ),
    "T_stable": (
        "steps",
        "The frame after which the change of the field has a std under 0.001 mV for 10 "
        "steps in a row (the first such frame); the step count if there is none.",
        None,
    ),
    "E_trend": (
        "mV^2/step",
        "Least-squares slope of the field's energy sum(V^2) over the steps.",
        None,
    ),
    "f_active": ("fraction", "Share of cells above -60 mV.", (0.0, 1.0)),
    "N_clusters_low": ("count", "4-connected components of cells above -60 mV.", None),
    "N_clusters_med": ("count", "4-connected components of cells above -50 mV.", None),
    "N_clusters_high": ("count", "4-connected components of cells above -40 mV.", None),
    "max_cluster_size": (
        "cells",
        "Size of the largest component above -60 mV (0 if none).",
        None,
    ),
    "cluster_size_std": (
        "cells",
        "Population std of the component sizes above -60 mV (0 with fewer than 2).",
        None,
    ),
    "D_box_rel": (
        "dimensionless",
        "Box-counting dimension of the cells above the final field's 90th percentile.",
        (0.0, 3.0),
    ),
    "D_r2_rel": ("dimensionless", "R^2 of the log-log fit that gives D_box_rel.", (0.0, 1.0)),
    "N_clusters_rel": (
        "count",
        "4-connected components of the cells above the final field's 90th percentile.",
        None,
    ),
    "H_entropy": (
        "bits",
        "Shannon entropy of a 64-bin histogram of the final field (at most log2(64)).",
        (0.0, 6.0),
    ),
}


def _feature_column(name: str) -> Column:
    unit, text, bounds = _FEATURE_DOCS[name]
    if name in COUNT_FEATURES:
        return Column(name, pl.Int64(), text, unit, low=0)
    low, high = bounds if bounds is not None else (None, None)
    return Column(name, pl.Float64(), text, unit, low=low, high=high, finite=True)


# --- the columns ------------------------------------------------------------------

_PRESET = Column(
    "preset",
    pl.String(),
    "Name of the preset: its file is configs/presets/NAME.yaml.",
    pattern=f"^{NAME_PATTERN.pattern}$",
)
KEY: tuple[Column, ...] = (
    Column("sim_id", pl.Int64(), "Run number within its preset, from 0.", low=0, unique=True),
    _PRESET,
)
# Seed first, as in the sweep's rows: it names the run.
PARAMS: tuple[Column, ...] = tuple(
    _param_column(name, PARAM_SPECS[name])
    for name in ("seed", *(name for name in PARAM_SPECS if name != "seed"))
)
METRICS: tuple[Column, ...] = (
    _count("growth_events", "Growth spikes that fired during the run."),
    _count(
        "turing_activations",
        "Cells over the Turing threshold, summed over all steps.",
        "cell-steps",
    ),
    _count("clamping_events", "Cells the clamp changed, summed over all steps.", "cell-steps"),
    Column(
        "lyapunov",
        pl.Float64(),
        "Stability indicator: mean of ln ||V_t - V_(t-1)||_2 over the steps where that "
        "norm exceeds 1e-10 V (negative: the field settles). The norm is in volts.",
        "ln(V)",
        finite=True,
    ),
)
FEATURES: tuple[Column, ...] = tuple(_feature_column(name) for name in ALL_FEATURE_NAMES)
_FIELD_SHA = Column(
    "field_sha256",
    pl.String(),
    "SHA-256 of the final field's float64 bytes (row-major): equal hashes, bit-identical fields.",
    pattern=SHA256_PATTERN,
)
_DURATION = _seconds(
    "duration_s", "Wall-clock time of the run.", "wall time, depends on the machine and its load"
)
_STATUS = Column(
    "status",
    pl.String(),
    "Whether the run finished; a failed run has no metrics, hash or arrays.",
    choices=(STATUS_OK, STATUS_FAILED),
)
_REASON = Column(
    "reason",
    pl.String(),
    "Error of a failed run.",
    null_when="the run succeeded",
)

# With keep_arrays: the final field and the per-step trace, so features can be
# recomputed exactly from a stored row.
FIELD_COLUMN = "field"
TRACE_COLUMNS: dict[str, str] = {f"trace_{name}": name for name in StepTrace._fields}
_TRACE_DOCS: dict[str, tuple[str, str]] = {
    "energy": ("mV^2", "Energy sum(V^2) of each frame 1..T, T values."),
    "dv_mean": ("mV", "Mean absolute change of the cells at each step 2..T, T-1 values."),
    "dv_max": ("mV", "Largest absolute change of a cell at each step 2..T, T-1 values."),
    "dv_std": ("mV", "Population std of the cells' absolute change at each step 2..T."),
    "diff_norm": ("V", "||V_t - V_(t-1)||_2 at each step 2..T, for lyapunov."),
}
ARRAYS: tuple[Column, ...] = (
    Column(
        FIELD_COLUMN,
        pl.List(pl.Float64()),
        "The final field, row-major N*N values: reshape(N, N).",
        "V",
    ),
    *(
        Column(column, pl.List(pl.Float64()), _TRACE_DOCS[name][1], _TRACE_DOCS[name][0])
        for column, name in TRACE_COLUMNS.items()
    ),
)

# One row per run as the sweep returns it (not stored as such: simulation_runs and
# mfn_dataset are selections of it). Metrics, hash and features are null for a
# failed run.
SWEEP: tuple[Column, ...] = (
    *KEY,
    *PARAMS,
    *_nullable(METRICS, "the run failed"),
    *_nullable(FEATURES, "the run failed"),
    dataclasses.replace(_FIELD_SHA, null_when="the run failed"),
    _DURATION,
    _STATUS,
    _REASON,
)

RUNS: tuple[Column, ...] = (
    *KEY,
    *PARAMS,
    *_nullable(METRICS, "the run failed"),
    dataclasses.replace(_FIELD_SHA, null_when="the run failed"),
    _DURATION,
    _STATUS,
    _REASON,
    *_nullable(ARRAYS, "the run failed"),
)

FEATURES_TABLE: tuple[Column, ...] = (*KEY, *FEATURES)

DATASET: tuple[Column, ...] = (*KEY, *PARAMS, *METRICS, _FIELD_SHA, _DURATION, *FEATURES)

_CONFIG_HASH = Column(
    "config_hash",
    pl.String(),
    "SHA-256 of everything in the preset that decides the runs (docs/model.md section 7).",
    pattern=SHA256_PATTERN,
)

# Aggregated columns of preset_summary: mean and population std of each of these.
SUMMARY_SOURCES: tuple[str, ...] = ("lyapunov", "growth_events", *ALL_FEATURE_NAMES)
_SOURCES = {column.name: column for column in (*METRICS, *FEATURES)}


def _aggregate(name: str, stat: str) -> Column:
    source = _SOURCES[name]
    what = "Mean" if stat == "mean" else "Population standard deviation"
    return Column(
        f"{name}_{stat}",
        pl.Float64(),
        f"{what} of {name} over the preset's successful runs.",
        source.unit,
        finite=True,
        null_when="no run succeeded",
    )


SUMMARY: tuple[Column, ...] = (
    _PRESET,
    _CONFIG_HASH,
    _count("runs", "Runs of the preset, failed ones included."),
    _count("ok_runs", "Runs that succeeded (the rows of mfn_dataset)."),
    _count("failed_runs", "Runs that failed."),
    _seconds(
        "duration_s",
        "Wall-clock time of the runs, summed.",
        "wall time, depends on the machine and its load",
    ),
    *(_aggregate(name, stat) for name in SUMMARY_SOURCES for stat in ("mean", "std")),
)

BUILD_SUCCEEDED, BUILD_FAILED = "succeeded", "failed"
_STEP_NOT_RUN = "the build did not run that step"
_NO_SUMMARY = "the build failed before its summary"
BUILDS: tuple[Column, ...] = (
    Column(
        "build_id",
        pl.String(),
        "The Dagster run id of the build.",
        unique=True,
        varies="a new id for every build",
    ),
    _PRESET,
    Column(
        "finished_at",
        pl.Datetime("us", "UTC"),
        "When the record was written (UTC).",
        varies="wall-clock time",
    ),
    Column(
        "status",
        pl.String(),
        "Whether every step of the build succeeded; a failed build still gets a record.",
        choices=(BUILD_SUCCEEDED, BUILD_FAILED),
    ),
    Column(
        "reason",
        pl.String(),
        "Why the build failed, in one line.",
        null_when="the build succeeded",
    ),
    Column(
        "code_version",
        pl.String(),
        "Package version and a digest of mfn_core's sources.",
    ),
    dataclasses.replace(_CONFIG_HASH, null_when="the preset file did not load"),
    *_nullable(
        (
            _count("runs", "Runs in simulation_runs."),
            _count("failed_runs", "Runs that failed."),
            _count("dataset_rows", "Rows in mfn_dataset."),
        ),
        _NO_SUMMARY,
    ),
    dataclasses.replace(
        _seconds("simulation_s", "Wall time of the simulation_runs step.", "wall time"),
        null_when=_STEP_NOT_RUN,
    ),
    dataclasses.replace(
        _seconds("features_s", "Wall time of the fractal_features step.", "wall time"),
        null_when=_STEP_NOT_RUN,
    ),
    _count("checks_passed", "Check results that passed."),
    _count("checks_warned", "WARN-severity checks that failed."),
    _count("checks_failed", "ERROR-severity checks that failed."),
    Column(
        "check_outcomes",
        pl.String(),
        'JSON object from "ASSET.CHECK" to passed, warned or failed.',
    ),
)

# Every stored table by its asset name, columns in stored order.
TABLES: dict[str, tuple[Column, ...]] = {
    "simulation_runs": RUNS,
    "fractal_features": FEATURES_TABLE,
    "mfn_dataset": DATASET,
    "preset_summary": SUMMARY,
    "builds": BUILDS,
}


# --- views for the other consumers ------------------------------------------------


def columns_of(table: str) -> tuple[Column, ...]:
    """The columns of ``table`` (an asset name: simulation_runs ... builds), in order."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"table {table!r} is unknown; allowed: {', '.join(TABLES)}") from None


def polars_schema(columns: Iterable[Column]) -> dict[str, pl.DataType]:
    """Name -> polars type of ``columns``, in order."""
    return {column.name: column.dtype for column in columns}


def column_docs(table: str) -> tuple[ColumnDoc, ...]:
    """Each column of ``table`` as a catalog shows it: name, type, full description
    (meaning, unit, allowed values, nulls, reproducibility), nullability, uniqueness
    and the allowed values as phrases."""
    return tuple(
        ColumnDoc(
            column.name,
            str(column.dtype),
            column.text(),
            column.nullable,
            column.unique,
            column.constraints(),
        )
        for column in columns_of(table)
    )


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema polars writes for ``table``, each field carrying
    ``b"description"`` (as :meth:`Column.text`) and ``b"unit"`` metadata, and the
    schema ``b"table"``. Pass it as ``write_parquet(arrow_schema=...)`` or to a
    ``pyarrow.parquet.ParquetWriter`` so the file describes its own columns."""
    columns = columns_of(table)
    # Polars' own Arrow types (large_string, large_list, ...), so the schema matches
    # what polars hands over for the same frame.
    types = pl.DataFrame(schema=polars_schema(columns)).to_arrow().schema
    fields = [
        types.field(column.name).with_metadata(
            {b"description": column.text().encode(), b"unit": column.unit.encode()}
        )
        for column in columns
    ]
    return pa.schema(fields, metadata={b"table": table.encode()})


def described(schema: pa.Schema, table: str) -> pa.Schema:
    """``schema`` with each of ``table``'s columns carrying its description and unit
    (as :func:`arrow_schema` gives them); other columns and every type are kept."""
    documented = arrow_schema(table)
    fields = [
        field.with_metadata(documented.field(field.name).metadata)
        if field.name in documented.names
        else field
        for field in schema
    ]
    return pa.schema(fields, metadata=documented.metadata)


def columns_markdown() -> str:
    """docs/columns.md: a table per stored table with every column's type, unit,
    allowed values, nulls and meaning."""
    lines = [
        "# Columns of the stored tables",
        "",
        "Generated from `mfn_core/columns.py` (the source of the data contract); a test",
        "keeps this page equal to it. The `field` column is in volts; every `V_*` and",
        "`dV_*` feature is in millivolts. docs/model.md explains each value.",
    ]
    for table, spelled in TABLES.items():
        lines += [
            "",
            f"## `{table}`",
            "",
            "| column | type | unit | allowed | null when | meaning |",
            "|---|---|---|---|---|---|",
        ]
        for column in spelled:
            allowed = [*column.constraints(), *(("unique",) if column.unique else ())]
            meaning = column.description + (
                f" Not reproducible: {column.varies}." if column.varies else ""
            )
            cells = (
                f"`{column.name}`",
                str(column.dtype),
                column.unit,
                ", ".join(allowed),
                column.null_when or "",
                meaning,
            )
            lines.append(
                "| "
                + " | ".join(cell.replace("|", "\\|").replace("<", "&lt;") for cell in cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


_UNITS = {
    column.name: column.unit
    for column in (*SWEEP, *ARRAYS, *(c for table in TABLES.values() for c in table))
}


def unit_of(name: str) -> str:
    """The unit of a stored column ("" for dimensionless or text); KeyError if unknown.

    A column name means the same in every table, so the unit does not depend on it.
    """
    try:
        return _UNITS[name]
    except KeyError:
        raise KeyError(f"column {name!r} is not a stored column") from None
