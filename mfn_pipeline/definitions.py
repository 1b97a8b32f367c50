"""The code location: assets, checks, the build job, the nightly schedule, resources."""

from __future__ import annotations

import logging

import dagster as dg

from mfn_pipeline.assets import ASSETS, GROUP, IO_MANAGER_KEY, BuildLimits
from mfn_pipeline.partitions import (
    SETTINGS,
    presets_partitions,
    problems_metadata,
    with_problems_noted,
)
from mfn_pipeline.settings import Environment
from mfn_pipeline.storage import Warehouse, WarehouseIOManager

NIGHTLY_CRON = "0 2 * * *"
RUN_TIME_LIMIT_TAG = "dagster/max_runtime"
RUN_TIME_MARGIN_S = 900


def run_time_limit_s(environment: Environment) -> int:
    """Longest a whole build run may take: the sweep (run once), then the other steps."""
    return environment.limits.wall_clock_s + RUN_TIME_MARGIN_S


def console_log_config(level: str) -> dict[str, object]:
    """Run config that sets the console echo of a run (Dagster's default is DEBUG)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


build_all_presets_job = dg.define_asset_job(
    "build_all_presets_job",
    selection=dg.AssetSelection.groups(GROUP),
    # Deprecated in Dagster 1.13 but still needed: without it the partitioned schedule
    # below cannot tell the job is statically partitioned and rejects cron_schedule.
    partitions_def=presets_partitions,
    description="Build one preset end to end: runs, features, data set, summary, build record.",
    # Where run monitoring is on (deploy/dagster.yaml), a whole run that hangs outside
    # the sweep's own limit (say on a stalled object store) is stopped too. Room for
    # the sweep, plus the other steps and their retries.
    tags={RUN_TIME_LIMIT_TAG: str(run_time_limit_s(SETTINGS.environment))},
)

nightly_build_schedule = dg.build_schedule_from_partitioned_job(
    build_all_presets_job,
    name="nightly_build_schedule",
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    description="Rebuild every preset at 02:00 UTC, one run per preset.",
)


def executor_for(environment: Environment) -> dg.ExecutorDefinition:
    if environment.executor == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": environment.max_concurrent})
    return dg.in_process_executor


def resources_for(environment: Environment) -> dict[str, object]:
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    return {
        "warehouse": warehouse,
        IO_MANAGER_KEY: WarehouseIOManager(warehouse=warehouse),
        "build_limits": BuildLimits(wall_clock_s=environment.limits.wall_clock_s),
    }


for _logger in ("mfn_core", "mfn_pipeline"):
    logging.getLogger(_logger).setLevel(SETTINGS.environment.log_level)

defs = dg.Definitions(
    # A preset file that did not load is noted on every asset (the UI shows that) and
    # in the definitions' metadata (for tools; the UI does not show it).
    assets=with_problems_noted(ASSETS),
    jobs=[build_all_presets_job],
    schedules=[nightly_build_schedule],
    resources=resources_for(SETTINGS.environment),
    executor=executor_for(SETTINGS.environment),
    metadata=problems_metadata(SETTINGS),
)
