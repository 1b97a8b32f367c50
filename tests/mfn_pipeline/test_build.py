"""Whole builds through Dagster against real Parquet files and a real DuckDB catalog."""

from __future__ import annotations

import dataclasses
import json

import dagster as dg
import polars as pl
import pytest

from mfn_core import tables
from mfn_core.features import ALL_FEATURE_NAMES
from mfn_core.sweep import run_sweep
from mfn_pipeline.definitions import definitions_for
from mfn_pipeline.defs import checks
from mfn_pipeline.defs.assets import failed_build_record
from mfn_pipeline.lib.settings import Environment
from mfn_pipeline.lib.warehouse import VIEWS, Warehouse

from .conftest import EVERY_CHECK, build, catalog_connection, placed, project_settings

WHOLE_RUN = ["sim_id", "preset", "seed", "growth_events", "lyapunov", "field_sha256"]


def assert_built_like_run_sweep(
    preset: str, environment: Environment, warehouse: Warehouse
) -> None:
    expected = run_sweep(project_settings().presets[preset])
    dataset = warehouse.read("mfn_dataset", preset)
    assert dataset.height == project_settings().presets[preset].num_samples
    columns = [c for c in expected.columns if c in dataset.columns and c != "duration_s"]
    assert set(ALL_FEATURE_NAMES) | set(WHOLE_RUN) <= set(columns)
    # Bit for bit: the pipeline adds no drift to what the core computes.
    assert dataset.select(columns).equals(expected.select(columns))
    with catalog_connection(environment.catalog) as con:
        assert {row[0] for row in con.execute("SHOW TABLES").fetchall()} >= set(VIEWS)
        (count,) = con.execute(
            "SELECT count(*) FROM dataset WHERE preset = ?", [preset]
        ).fetchall()[0]
        assert count == dataset.height
        (builds,) = con.execute(
            "SELECT count(*) FROM builds WHERE preset = ?", [preset]
        ).fetchall()[0]
        assert builds >= 1


@pytest.mark.parametrize("preset", ["small", "benchmark", "medium", "transition"])
def test_preset_materializes_and_equals_run_sweep(
    preset: str, environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance
) -> None:
    result = build(preset, environment, instance)
    assert result.success
    assert_built_like_run_sweep(preset, environment, warehouse)
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    for name in (
        checks.ROW_COUNT_CHECK,
        checks.CEILINGS_CHECK,
        checks.CORE_SANITY_CHECK,
        checks.EXPECTED_RANGES_CHECK,
    ):
        assert outcomes.get(name) is True, (name, outcomes)
    history = warehouse.read_records("builds", preset)
    assert history is not None
    recorded = history.row(-1, named=True)
    assert recorded["build_id"] == result.run_id
    assert (recorded["status"], recorded["reason"]) == ("succeeded", None)
    assert recorded["runs"] == project_settings().presets[preset].num_samples
    assert recorded["config_hash"] == project_settings().presets[preset].config_hash
    assert recorded["checks_passed"] + recorded["checks_warned"] + recorded["checks_failed"] == 6
    assert recorded["checks_failed"] == 0
    # Every preset states its known constant columns, so a clean build does not warn.
    (degenerate,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == checks.DEGENERATE_CHECK
    ]
    assert degenerate.passed, degenerate.description
    # The 4.1 presets see nothing at -60 mV; transition exists so that D_box varies.
    assert ("D_box" in project_settings().presets[preset].expect.constant) == (
        preset != "transition"
    )


def test_each_check_result_belongs_to_its_preset(
    environment: Environment, instance: dg.DagsterInstance
) -> None:
    settings = project_settings()
    small = settings.presets["small"]
    broken = dataclasses.replace(
        small,
        expect=dataclasses.replace(small.expect, ranges={**small.expect.ranges, "V_mean": (0, 1)}),
    )
    narrowed = dataclasses.replace(settings, presets={**settings.presets, "small": broken})
    assert not _passed(
        build("small", environment, instance, narrowed), checks.EXPECTED_RANGES_CHECK
    )
    # A later build of another preset passes the same check ...
    assert _passed(
        build("benchmark", environment, instance, narrowed), checks.EXPECTED_RANGES_CHECK
    )
    # ... and small still shows as failing: each result belongs to its partition.
    key = dg.AssetCheckKey(dg.AssetKey("mfn_dataset"), checks.EXPECTED_RANGES_CHECK)
    status = {
        info.partition_key: info.latest_execution_status.value
        for info in instance.event_log_storage.get_asset_check_partition_info([key])
    }
    assert status == {"small": "FAILED", "benchmark": "SUCCEEDED"}


def _passed(result: dg.ExecuteInProcessResult, check: str) -> bool:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
    return evaluation.passed


@pytest.mark.slow
def test_large_preset_materializes_and_equals_run_sweep(
    environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance
) -> None:
    result = build("large", environment, instance)
    assert result.success
    assert_built_like_run_sweep("large", environment, warehouse)
    failed = [e.description for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []  # no WARN either: large states its constant columns


def test_a_build_record_counts_only_what_its_own_run_built(
    environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance
) -> None:
    assert build("small", environment, instance).success
    record_only = dg.define_asset_job("record_only", selection=["builds"])
    job = dg.Definitions.merge(
        definitions_for(placed(environment)), dg.Definitions(jobs=[record_only])
    ).resolve_job_def("record_only")
    assert job.execute_in_process(partition_key="small", instance=instance).success
    history = warehouse.read_records("builds", "small")
    assert history is not None
    whole, alone = history.sort("finished_at").iter_rows(named=True)
    assert whole["simulation_s"] > 0
    assert whole["features_s"] > 0
    assert json.loads(whole["check_outcomes"]) == dict.fromkeys(
        EVERY_CHECK,
        "passed",
    )
    # The second run built no table: it measured no step and ran no check.
    assert alone["simulation_s"] is None
    assert alone["features_s"] is None
    assert (alone["checks_passed"], alone["checks_warned"], alone["checks_failed"]) == (0, 0, 0)
    assert alone["check_outcomes"] == "{}"
    assert alone["runs"] == whole["runs"]  # read from the stored summary


def test_building_twice_gives_the_same_rows_and_no_duplicates(
    environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance
) -> None:
    assert build("small", environment, instance).success
    first = {t: warehouse.read(t, "small") for t in ("simulation_runs", "mfn_dataset")}
    second_run = build("small", environment, instance)
    assert second_run.success
    for table, before in first.items():
        after = warehouse.read(table, "small")
        assert after.drop("duration_s").equals(before.drop("duration_s"))
        assert after["sim_id"].is_unique().all()
    with catalog_connection(environment.catalog) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT sim_id) FROM dataset").fetchall()
        assert rows == [(10, 10)]
        assert con.execute("SELECT count(*) FROM builds").fetchall() == [(2,)]
    # Same config and code: the second build sees no drift.
    drift = [
        e for e in second_run.get_asset_check_evaluations() if e.check_name == checks.DRIFT_CHECK
    ]
    assert [e.passed for e in drift] == [True]
    assert drift[0].metadata["compared_with"].value == "previous build, same config hash"


def test_broken_table_fails_the_asset_and_keeps_the_previous_partition(
    environment: Environment,
    warehouse: Warehouse,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert build("small", environment, instance).success
    path = warehouse.stored_file("fractal_features", "small")
    before = path.read_bytes()

    good_features = tables.features_table

    def broken_features(runs: pl.DataFrame) -> pl.DataFrame:
        return good_features(runs).with_columns(
            V_std=pl.when(pl.col("sim_id") == 4).then(float("nan")).otherwise(pl.col("V_std"))
        )

    monkeypatch.setattr("mfn_pipeline.defs.assets.features_table", broken_features)
    result = build("small", environment, instance)

    assert not result.success
    failure = next(
        e for e in result.all_events if e.is_step_failure and e.step_key == "fractal_features"
    )
    message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
    assert "fractal_features breaks its contract" in message
    assert "row 4: column V_std = NaN" in message
    assert path.read_bytes() == before  # the last good partition stays, untouched
    materialized = {
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.is_step_materialization and e.asset_key is not None
    }
    assert materialized == {"simulation_runs"}  # downstream assets did not run
    with catalog_connection(environment.catalog) as con:
        assert con.execute("SELECT count(*) FROM features").fetchall() == [(10,)]
    # Its record, as the run-failure sensor writes it: what the finished step recorded.
    record = failed_build_record(
        instance, result.run_id, project_settings(), "small", f"fractal_features:\n {message}"
    ).row(0, named=True)
    assert record["status"] == "failed"
    assert record["reason"].startswith("fractal_features: ")
    assert "\n" not in record["reason"]
    assert record["config_hash"] == project_settings().presets["small"].config_hash
    assert record["runs"] is None
    assert record["simulation_s"] > 0
    assert record["features_s"] is None
    assert (record["checks_passed"], record["checks_failed"]) == (3, 0)
    assert set(json.loads(record["check_outcomes"])) == {
        f"simulation_runs.{checks.ROW_COUNT_CHECK}",
        f"simulation_runs.{checks.CEILINGS_CHECK}",
        f"simulation_runs.{checks.CORE_SANITY_CHECK}",
    }
