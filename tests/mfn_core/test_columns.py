from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from mfn_core import columns
from mfn_core.columns import (
    TABLES,
    Column,
    arrow_schema,
    column_docs,
    columns_markdown,
    columns_of,
    polars_schema,
    unit_of,
)
from mfn_core.contracts import SCHEMAS, ContractError, enforce
from mfn_core.features import ALL_FEATURE_NAMES, COUNT_FEATURES
from mfn_core.params import PARAM_SPECS
from mfn_core.sweep import ARRAY_SCHEMA, SWEEP_SCHEMA

INT64_MAX = 2**63 - 1
DOCS = Path(__file__).parents[2] / "docs" / "columns.md"


def test_every_table_has_a_contract_with_its_columns_in_order() -> None:
    assert list(SCHEMAS) == list(TABLES)
    for table, spelled in TABLES.items():
        schema = SCHEMAS[table]
        assert list(schema.columns) == [column.name for column in spelled]
        for column in spelled:
            contract = schema.columns[column.name]
            assert contract.dtype.type == column.dtype, (table, column.name)
            assert contract.nullable == column.nullable, (table, column.name)
            assert contract.unique == column.unique, (table, column.name)
            assert contract.description == column.text()


def test_stored_tables_are_selections_of_the_sweep_with_the_same_types() -> None:
    sweep = {**SWEEP_SCHEMA, **ARRAY_SCHEMA}
    for table in ("simulation_runs", "fractal_features", "mfn_dataset"):
        for column in columns_of(table):
            assert sweep[column.name] == column.dtype, (table, column.name)


def test_parameter_columns_follow_their_specs() -> None:
    dataset = {column.name: column for column in columns_of("mfn_dataset")}
    for name, spec in PARAM_SPECS.items():
        column = dataset[name]
        assert column.description == spec.description
        assert column.unit == spec.unit
        assert column.choices == spec.choices
        if spec.kind in (int, float):
            assert (column.low, column.high) == (spec.low, spec.high)
            assert column.dtype == (pl.Int64() if spec.kind is int else pl.Float64())


def test_every_feature_is_described_once_with_its_unit() -> None:
    assert set(columns._FEATURE_DOCS) == set(ALL_FEATURE_NAMES)
    features = columns_of("fractal_features")[2:]
    assert [column.name for column in features] == list(ALL_FEATURE_NAMES)
    for column in features:
        assert column.description, column.name
        assert column.unit, column.name
        expected = pl.Int64() if column.name in COUNT_FEATURES else pl.Float64()
        assert column.dtype == expected


@pytest.mark.parametrize("name", ["V_min", "V_max", "V_mean", "V_std", "dV_mean", "dV_max"])
def test_millivolt_features_say_the_field_is_in_volts(name: str) -> None:
    assert unit_of(name) == "mV"
    column = next(c for c in columns_of("mfn_dataset") if c.name == name)
    assert "Unit: mV (the field column itself is in volts)." in column.text()


def test_the_field_is_in_volts_and_says_the_features_are_in_millivolts() -> None:
    assert unit_of("field") == "V"
    field = next(c for c in columns_of("simulation_runs") if c.name == "field")
    assert "Unit: V (the V_* and dV_* features are in mV)." in field.text()


def test_unit_of_an_unknown_column_names_it() -> None:
    with pytest.raises(KeyError, match="V_median"):
        unit_of("V_median")


def test_only_wall_times_and_ids_are_marked_not_reproducible() -> None:
    marked = {
        (table, column.name)
        for table, spelled in TABLES.items()
        for column in spelled
        if column.varies
    }
    assert marked == {
        ("simulation_runs", "duration_s"),
        ("mfn_dataset", "duration_s"),
        ("preset_summary", "duration_s"),
        ("builds", "build_id"),
        ("builds", "finished_at"),
        ("builds", "simulation_s"),
        ("builds", "features_s"),
    }
    duration = next(d for d in column_docs("mfn_dataset") if d.name == "duration_s")
    assert "Not reproducible: wall time" in duration.description


def test_column_docs_carry_type_nullability_and_constraints() -> None:
    docs = {doc.name: doc for doc in column_docs("simulation_runs")}
    assert list(docs) == list(SCHEMAS["simulation_runs"].columns)
    assert docs["sim_id"].type == "Int64"
    assert docs["sim_id"].unique
    assert docs["lyapunov"].nullable
    assert not docs["seed"].nullable
    assert docs["alpha"].constraints == ("in [0.05, 0.24]",)
    assert docs["status"].constraints == ("one of ok, failed",)
    assert docs["field"].type == "List(Float64)"
    assert "Unit: 1/step." in docs["alpha"].description
    with pytest.raises(KeyError, match="allowed: simulation_runs"):
        column_docs("runs")


def _valid(column: Column) -> Any:
    """A value meeting every constraint of ``column``."""
    if column.name == "reason":
        return None  # an ok run has none
    if column.choices:
        return column.choices[0]
    if column.name == "preset":
        return "small"
    if column.pattern is not None:
        return "0" * 64
    if isinstance(column.dtype, pl.List):
        return [0.0]
    if column.dtype == pl.Boolean():
        return False
    if column.dtype == pl.String():
        return "x"
    if isinstance(column.dtype, pl.Datetime):
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    low = column.low if column.low is not None else 0
    return int(low) if column.dtype == pl.Int64() else float(low)


def _invalid(column: Column) -> list[Any]:
    """Values breaking each of ``column``'s constraints, one by one."""
    bad: list[Any] = []
    if column.choices:
        bad.append("nope")
    if column.pattern is not None:
        bad.append("Not A Match!")
    if column.low is not None:
        bad.append(column.low - 1)
    # Past the top of Int64 (the seed's bound) the type itself refuses the value.
    if column.high is not None and column.high + 1 <= INT64_MAX:
        bad.append(column.high + 1)
    if column.finite:
        bad += [math.inf, math.nan]
    if not column.nullable:
        bad.append(None)
    return bad


def _row(table: str) -> pl.DataFrame:
    spelled = columns_of(table)
    values = {column.name: [_valid(column)] for column in spelled}
    return pl.DataFrame(values, schema=polars_schema(spelled))


@pytest.mark.parametrize("table", list(TABLES))
def test_every_spelled_constraint_is_enforced(table: str) -> None:
    valid = _row(table)
    assert enforce(SCHEMAS[table], valid).equals(valid)
    # One row per broken value (status and reason are tied together by a row check,
    # below); the unique columns get distinct values.
    broken = [
        (column.name, value)
        for column in columns_of(table)
        if column.name not in ("status", "reason")
        for value in _invalid(column)
    ]
    rows = []
    for k, (name, value) in enumerate(broken):
        row = valid.row(0, named=True)
        row.update({c.name: k for c in columns_of(table) if c.unique and c.dtype == pl.Int64()})
        row.update(
            {c.name: str(k) for c in columns_of(table) if c.unique and c.dtype == pl.String()}
        )
        row[name] = value
        rows.append(row)
    with pytest.raises(ContractError) as caught:
        enforce(SCHEMAS[table], pl.DataFrame(rows, schema=valid.schema, orient="row"))
    cases = caught.value.failure_cases
    found = set(zip(cases["index"].to_list(), cases["column"].to_list(), strict=True))
    missed = [(name, value) for k, (name, value) in enumerate(broken) if (k, name) not in found]
    assert not missed


@pytest.mark.parametrize(
    ("table", "ok", "failed"),
    [("simulation_runs", "ok", "failed"), ("builds", "succeeded", "failed")],
)
def test_a_failure_needs_a_reason_and_a_success_has_none(table: str, ok: str, failed: str) -> None:
    valid = _row(table)
    enforce(SCHEMAS[table], valid.with_columns(status=pl.lit(failed), reason=pl.lit("boom")))
    for status, reason in ((ok, "boom"), (failed, None)):
        broken = valid.with_columns(status=pl.lit(status), reason=pl.lit(reason, pl.String()))
        with pytest.raises(ContractError, match="reason_set_exactly_when_failed"):
            enforce(SCHEMAS[table], broken)


@pytest.mark.parametrize("table", list(TABLES))
def test_parquet_files_carry_each_columns_description_and_unit(table: str, tmp_path: Path) -> None:
    path = tmp_path / f"{table}.parquet"
    frame = _row(table)
    frame.write_parquet(path, arrow_schema=arrow_schema(table))
    stored = pq.read_schema(path)
    for column in columns_of(table):
        metadata = stored.field(column.name).metadata
        assert metadata[b"description"].decode() == column.text()
        assert metadata[b"unit"].decode() == column.unit
    assert pl.read_parquet(path).equals(frame)


def test_docs_columns_md_is_current() -> None:
    assert DOCS.read_text() == columns_markdown(), (
        "docs/columns.md is out of date; regenerate it with: .venv/bin/python -c "
        "'from mfn_core.columns import columns_markdown; "
        'open("docs/columns.md", "w").write(columns_markdown())\''
    )


def test_docs_columns_md_lists_every_column_of_every_table() -> None:
    text = columns_markdown()
    for table, spelled in TABLES.items():
        section = re.search(rf"## `{table}`\n(.*?)(?=\n## |\Z)", text, re.S)
        assert section is not None, table
        for column in spelled:
            assert f"| `{column.name}` |" in section.group(1), (table, column.name)
