"""The data contract: one pandera-polars schema per stored table.

A table is checked against its schema before it is written; :func:`enforce` raises
:class:`ContractError` listing the offending rows, so bad data never replaces the
last good partition. Each schema is derived from the table's columns in
:mod:`mfn_core.columns` (types, allowed values, nulls, descriptions), so the
contract, the sweep's types and the column descriptions cannot disagree.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from mfn_core.columns import BUILD_SUCCEEDED, STATUS_OK, SUMMARY_SOURCES, TABLES, Column

__all__ = [
    "BUILDS_SCHEMA",
    "DATASET_SCHEMA",
    "FEATURES_SCHEMA",
    "RUNS_SCHEMA",
    "SCHEMAS",
    "SUMMARY_SCHEMA",
    "SUMMARY_SOURCES",
    "ContractError",
    "enforce",
]

MAX_LISTED_FAILURES = 20


class ContractError(ValueError):
    """A table breaks its schema; the message lists the offending rows."""

    def __init__(self, message: str, failure_cases: pl.DataFrame) -> None:
        super().__init__(message)
        self.failure_cases = failure_cases


def _finite() -> pa.Check:
    # NaN and Inf fail it; a bound alone lets Inf through an open end (>= 0).
    return pa.Check(lambda data: data.lazyframe.select(pl.col(data.key).is_finite()), name="finite")


def _checks(column: Column) -> list[pa.Check]:
    checks = []
    if column.choices:
        checks.append(pa.Check.isin(column.choices))
    if column.pattern is not None:
        checks.append(pa.Check.str_matches(column.pattern))
    if column.low is not None:
        checks.append(
            pa.Check.ge(column.low)
            if column.high is None
            else pa.Check.in_range(column.low, column.high)
        )
    if column.finite:
        checks.append(_finite())
    return checks


def _pandera(column: Column) -> pa.Column:
    return pa.Column(
        column.dtype,
        _checks(column),
        nullable=column.nullable,
        unique=column.unique,
        description=column.text(),
        title=column.unit or None,
    )


def _reason_exactly_when_failed(ok: str) -> pa.Check:
    def check(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("status") == ok) == pl.col("reason").is_null())

    return pa.Check(check, name="reason_set_exactly_when_failed")


# Checks that tie several columns of a row together.
_ROW_CHECKS: dict[str, list[pa.Check]] = {
    "simulation_runs": [_reason_exactly_when_failed(STATUS_OK)],
    "builds": [_reason_exactly_when_failed(BUILD_SUCCEEDED)],
}

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    table: pa.DataFrameSchema(
        {column.name: _pandera(column) for column in columns},
        checks=_ROW_CHECKS.get(table, []),
        strict=True,
        ordered=True,
        name=table,
    )
    for table, columns in TABLES.items()
}
RUNS_SCHEMA = SCHEMAS["simulation_runs"]
FEATURES_SCHEMA = SCHEMAS["fractal_features"]
DATASET_SCHEMA = SCHEMAS["mfn_dataset"]
SUMMARY_SCHEMA = SCHEMAS["preset_summary"]
BUILDS_SCHEMA = SCHEMAS["builds"]


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
