from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import yaml

from mfn_pipeline.definitions import defs
from mfn_pipeline.defs import checks
from mfn_pipeline.defs.partitions import SETTINGS
from mfn_pipeline.lib.supervision import RUN_TIME_LIMIT_TAG, SENSOR_INTERVAL_S

from .conftest import PROJECT


def test_definitions_snapshot() -> None:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = sorted(key.to_user_string() for key in graph.get_all_asset_keys())
    assert assets == [
        "builds",
        "fractal_features",
        "mfn_dataset",
        "preset_summary",
        "simulation_runs",
    ]
    check_keys = sorted(
        f"{key.asset_key.to_user_string()}.{key.name}" for key in graph.asset_check_keys
    )
    assert check_keys == sorted(
        [
            f"simulation_runs.{checks.ROW_COUNT_CHECK}",
            f"simulation_runs.{checks.CEILINGS_CHECK}",
            f"simulation_runs.{checks.CORE_SANITY_CHECK}",
            f"fractal_features.{checks.DEGENERATE_CHECK}",
            f"mfn_dataset.{checks.EXPECTED_RANGES_CHECK}",
            f"preset_summary.{checks.DRIFT_CHECK}",
        ]
    )
    jobs = sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__"))
    assert jobs == ["build_all_presets_job"]
    assert [s.name for s in repo.schedule_defs] == ["nightly_build_schedule"]
    assert [s.name for s in repo.sensor_defs] == ["dead_run_sensor"]


def test_assets_are_described_grouped_and_carry_their_column_schema() -> None:
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name == "mfn"
        assert node.description
        assert "\n" not in node.description
        schema = node.metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchema)
        assert len(schema.columns) >= 5
        assert node.partitions_def is not None
        assert set(node.partitions_def.get_partition_keys()) == set(SETTINGS.presets)


def test_nightly_schedule_requests_one_run_per_preset_at_two_utc() -> None:
    nightly_build_schedule = defs.get_repository_def().get_schedule_def("nightly_build_schedule")
    assert nightly_build_schedule.cron_schedule == "0 2 * * *"
    assert nightly_build_schedule.execution_timezone == "UTC"
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC),
            repository_def=defs.get_repository_def(),
        )
        result = nightly_build_schedule.evaluate_tick(context)
    requests = result.run_requests or []
    assert sorted(request.partition_key or "" for request in requests) == sorted(SETTINGS.presets)
    assert all(request.job_name in (None, "build_all_presets_job") for request in requests)


def test_local_instance_queues_runs_one_at_a_time(tmp_path: Path) -> None:
    shutil.copy(PROJECT / "configs" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, dg.QueuedRunCoordinator)
        assert coordinator.get_run_queue_config().max_concurrent_runs == 1


def test_both_instances_monitor_runs_and_the_dead_run_sensor_runs_by_default(
    tmp_path: Path,
) -> None:
    for config in (PROJECT / "configs" / "dagster.yaml", PROJECT / "deploy" / "dagster.yaml"):
        settings = yaml.safe_load(config.read_text())["run_monitoring"]
        assert settings["enabled"] is True, config
        # A run past its limit is stopped within a minute of it.
        assert settings["poll_interval_seconds"] <= 60, config
    shutil.copy(PROJECT / "configs" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
    sensor = defs.get_repository_def().get_sensor_def("dead_run_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == SENSOR_INTERVAL_S <= 60


def test_every_step_but_the_sweep_retries_with_backoff_and_runs_carry_a_time_limit() -> None:
    repo = defs.get_repository_def()
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
    job = repo.get_job("build_all_presets_job")
    run_limit = int(job.tags[RUN_TIME_LIMIT_TAG])
    sweep_limit = SETTINGS.environment.limits.wall_clock_s
    # The sweep fits, with time left for the other steps.
    assert run_limit > sweep_limit
