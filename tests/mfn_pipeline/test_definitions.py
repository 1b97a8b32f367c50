from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mfn_core.columns import column_docs
from mfn_pipeline.definitions import BUILD_JOB, definitions_for, defs
from mfn_pipeline.defs.automation import CPU_POOL, FRESHNESS, NIGHTLY, NIGHTLY_SENSOR, OWNERS
from mfn_pipeline.defs.resources import run_time_limit_s
from mfn_pipeline.lib.settings import Environment, PresetProblem, Settings, load_settings
from mfn_pipeline.lib.supervision import (
    FROM_UI_TAG,
    RUN_TIME_LIMIT_TAG,
    SENSOR_INTERVAL_S,
    STARTED_BY_CLI,
    STARTED_BY_NIGHTLY,
    STARTED_BY_TAG,
    STARTED_BY_UI,
    supervision_tags,
)
from mfn_pipeline.lib.warehouse import Warehouse

from .conftest import EVERY_CHECK, PROJECT, build, placed

ASSETS = ["builds", "fractal_features", "mfn_dataset", "preset_summary", "simulation_runs"]
KINDS = {"dagster/kind/python": "", "dagster/kind/parquet": ""}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    return defs().get_repository_def()


def test_definitions_snapshot(repo: dg.RepositoryDefinition) -> None:
    graph = repo.asset_graph
    assets = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    assert assets == ASSETS
    check_keys = sorted(
        f"{key.asset_key.to_user_string()}.{key.name}" for key in graph.asset_check_keys
    )
    assert check_keys == sorted(EVERY_CHECK)
    jobs = sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__"))
    assert jobs == [BUILD_JOB]
    assert repo.schedule_defs == []
    assert sorted(s.name for s in repo.sensor_defs) == [
        "dead_run_sensor",
        "failed_build_sensor",
        NIGHTLY_SENSOR,
    ]
    snapshot = {
        key.to_user_string(): (
            graph.get(key).owners,
            dict(graph.get(key).tags),
            graph.get(key).pools,
            graph.get(key).automation_condition,
            graph.get(key).freshness_policy,
            graph.get(key).metadata["dagster/table_name"],
        )
        for key in graph.get_all_asset_keys()
    }
    cpu = {"simulation_runs", "fractal_features"}
    # The SQL view each table is queried by (mfn sql, the catalog).
    views = {
        "simulation_runs": "runs",
        "fractal_features": "features",
        "mfn_dataset": "dataset",
        "preset_summary": "preset_summary",
        "builds": "builds",
    }
    assert snapshot == {
        name: (OWNERS, KINDS, {CPU_POOL} if name in cpu else set(), NIGHTLY, FRESHNESS, views[name])
        for name in ASSETS
    }
    assert OWNERS == ["team:mfn"]


def test_every_column_shown_in_the_ui_carries_its_description_and_unit(
    repo: dg.RepositoryDefinition,
) -> None:
    graph = repo.asset_graph
    shown = {}
    for key in graph.get_all_asset_keys():
        schema = graph.get(key).metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema)
        shown[key.to_user_string()] = {c.name: (c.type, c.description) for c in schema.columns}
        # Spelled once: what the UI shows is the column catalogue's text, column by column.
        assert list(shown[key.to_user_string()].items()) == [
            (doc.name, (doc.type, doc.description)) for doc in column_docs(key.to_user_string())
        ]
        for column in schema.columns:
            assert column.description, (key, column.name)
    # The units users trip over: the stored field in volts, the V_* features in mV.
    assert shown["simulation_runs"]["field"][1] == (
        "The final field, row-major N*N values: reshape(N, N). "
        "Unit: V (the V_* and dV_* features are in mV). Null when the run failed."
    )
    assert shown["mfn_dataset"]["V_mean"][1] == (
        "Mean of the final field. Unit: mV (the field column itself is in volts). "
        "Allowed: in [-95, 40], finite."
    )
    assert "Not reproducible" in str(shown["mfn_dataset"]["duration_s"][1])
    assert {name: shown[name]["preset"][0] for name in ASSETS} == dict.fromkeys(ASSETS, "String")


def test_assets_are_described_grouped_and_carry_their_column_schema(
    repo: dg.RepositoryDefinition, settings: Settings
) -> None:
    graph = repo.asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == "mfn"
        assert node.description
        assert "\n" not in node.description
        schema = node.metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema)
        assert len(schema.columns) >= 5
        assert node.partitions_def is not None
        assert set(node.partitions_def.get_partition_keys()) == set(settings.presets)


def test_nothing_is_read_when_the_entry_point_is_imported(tmp_path: Path) -> None:
    # A configuration folder that does not exist: importing must not notice, loading must.
    script = (
        "import mfn_pipeline.definitions as d, mfn_pipeline.cli, mfn_pipeline.defs.assets\n"
        "try:\n"
        "    d.defs()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = {"MFN_CONFIG_DIR": str(tmp_path / "nowhere"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ConfigError "), result.stdout
    assert str(tmp_path / "nowhere") in result.stdout


def _requested(
    repo_defs: dg.Definitions, instance: dg.DagsterInstance, times: list[dt.datetime]
) -> list[dict[str, set[str | None]]]:
    """What the automation conditions request at each of ``times``, evaluated in turn."""
    cursor = None
    requested = []
    for moment in times:
        result = dg.evaluate_automation_conditions(
            defs=repo_defs, instance=instance, evaluation_time=moment, cursor=cursor
        )
        cursor = result.cursor
        requested.append(
            {
                name: set(result.get_requested_partitions(dg.AssetKey(name)))
                for name in ASSETS
                if result.get_num_requested(dg.AssetKey(name))
            }
        )
    return requested


@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_the_nightly_build_requests_every_preset_at_two_utc_and_nothing_before(
    settings: Settings,
) -> None:
    day = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    times = [day + dt.timedelta(hours=h, minutes=m) for h, m in ((0, 59), (1, 0), (2, 0), (2, 1))]
    with dg.DagsterInstance.ephemeral() as instance:
        before, at_one, at_two, after = _requested(defs(), instance, times)
    assert before == at_one == {}
    # Every asset of every preset, the one whose file did not load too (none here).
    assert at_two == {name: set(settings.partitions) for name in ASSETS}
    # Requested once per tick: the next evaluation does not ask again.
    assert after == {}


def test_the_nightly_sensor_runs_by_default_and_tags_its_runs(
    repo: dg.RepositoryDefinition,
) -> None:
    sensor = repo.get_sensor_def(NIGHTLY_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.run_tags == {STARTED_BY_TAG: STARTED_BY_NIGHTLY}
    assert not sensor.emit_backfills  # one run per preset, queued like any other run


def test_a_run_launched_from_the_ui_is_tagged_as_started_there() -> None:
    # What the executor adds when a run starts, from the tags the launch gave it.
    assert supervision_tags("r", {FROM_UI_TAG: "true"}, 60)[STARTED_BY_TAG] == STARTED_BY_UI
    assert STARTED_BY_TAG not in supervision_tags("r", {}, 60)
    nightly = {FROM_UI_TAG: "true", STARTED_BY_TAG: STARTED_BY_NIGHTLY}
    assert STARTED_BY_TAG not in supervision_tags("r", nightly, 60)  # kept as launched
    assert STARTED_BY_CLI == "mfn build"


def test_local_instance_queues_runs_one_at_a_time(tmp_path: Path) -> None:
    shutil.copy(PROJECT / "configs" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, dg.QueuedRunCoordinator)
        assert coordinator.get_run_queue_config().max_concurrent_runs == 1


def test_both_instances_monitor_runs_and_the_dead_run_sensor_runs_by_default(
    tmp_path: Path, repo: dg.RepositoryDefinition
) -> None:
    for config in (PROJECT / "configs" / "dagster.yaml", PROJECT / "deploy" / "dagster.yaml"):
        monitoring = yaml.safe_load(config.read_text())["run_monitoring"]
        assert monitoring["enabled"] is True, config
        # A run past its limit is stopped within a minute of it.
        assert monitoring["poll_interval_seconds"] <= 60, config
    shutil.copy(PROJECT / "configs" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
    sensor = repo.get_sensor_def("dead_run_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == SENSOR_INTERVAL_S <= 60


def test_every_step_but_the_sweep_retries_with_backoff_and_runs_carry_a_time_limit(
    repo: dg.RepositoryDefinition, settings: Settings
) -> None:
    policies = {
        key.to_user_string(): repo.asset_graph.get(key).assets_def.op.retry_policy
        for key in repo.asset_graph.get_all_asset_keys()
    }
    # Retrying simulation_runs would redo its whole sweep; its write retries in storage.
    assert policies.pop("simulation_runs") is None
    assert len(policies) == 4
    for name, policy in policies.items():
        assert policy is not None, name
        assert policy.max_retries >= 1
        assert policy.backoff == dg.Backoff.EXPONENTIAL
    job = repo.get_job(BUILD_JOB)
    run_limit = int(job.tags[RUN_TIME_LIMIT_TAG])
    assert run_limit == run_time_limit_s(settings.environment)
    # The sweep fits, with time left for the other steps.
    assert run_limit > settings.environment.limits.wall_clock_s


def test_a_build_that_fails_at_its_first_step_leaves_a_failed_builds_record(
    environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    # small's file "did not load": its run fails in simulation_runs, long before builds.
    project = placed(environment)
    problem = PresetProblem(tmp_path / "small.yaml", "small.yaml: cut off mid-write", "small")
    presets = {name: p for name, p in project.presets.items() if name != "small"}
    broken = dataclasses.replace(project, presets=presets, problems=(problem,))
    loaded = definitions_for(broken)
    repo = loaded.get_repository_def()
    sensor = repo.get_sensor_def("failed_build_sensor")

    def tick(cursor: str | None) -> str | None:
        # As the daemon evaluates it, with the code location's own resources.
        context = dg.build_sensor_context(
            instance=instance, repository_def=repo, cursor=cursor, resources=loaded.resources
        )
        return sensor.evaluate_tick(context).cursor

    # The first tick only marks where the sensor starts reading.
    cursor = tick(None)
    good = build("benchmark", environment, instance, broken)
    failed = build("small", environment, instance, broken)
    assert good.success
    assert not failed.success
    assert warehouse.read_records("builds", "small") is None  # what a failed build left before
    tick(cursor)
    records = warehouse.read_records("builds", "small")
    assert records is not None
    assert records.height == 1
    row = records.row(0, named=True)
    assert row["build_id"] == failed.run_id
    assert row["status"] == "failed"
    assert row["reason"].startswith("step simulation_runs: small.yaml: cut off mid-write")
    # The good build recorded itself; the sensor adds nothing for it.
    benchmark = warehouse.read_records("builds", "benchmark")
    assert benchmark is not None
    assert benchmark["status"].to_list() == ["succeeded"]
