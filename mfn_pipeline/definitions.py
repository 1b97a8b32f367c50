"""The code location: assets, checks, the build job, the nightly schedule, resources.

Resources are fixed objects bound from the environment configuration: they take no
run config, so a run launched from the UI or its GraphQL API cannot point the
warehouse, the catalog or the limits anywhere else (such config fails validation).
"""

from __future__ import annotations

import logging

import dagster as dg

from mfn_pipeline.defs.assets import ASSETS, GROUP, IO_MANAGER_KEY, BuildLimits
from mfn_pipeline.defs.automation import NIGHTLY_CRON
from mfn_pipeline.defs.partitions import (
    SETTINGS,
    presets_partitions,
    problems_metadata,
    with_problems_noted,
)
from mfn_pipeline.lib.settings import Environment
from mfn_pipeline.lib.supervision import (
    RUN_TIME_LIMIT_TAG,
    dead_run_sensor,
    in_process_run,
    supervised,
)
from mfn_pipeline.lib.warehouse import Warehouse, WarehouseIOManager

RUN_TIME_MARGIN_S = 900


def run_time_limit_s(environment: Environment) -> int:
    """Longest a whole build run may take: the sweep (run once), then the other steps."""
    return environment.limits.wall_clock_s + RUN_TIME_MARGIN_S


def supervised_run(environment: Environment) -> tuple[str, dict[str, str]]:
    """Run id and tags of an in-process build: this process is its worker, with its limit."""
    return in_process_run(run_time_limit_s(environment))


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
    # Run monitoring (configs/ and deploy/dagster.yaml) stops a whole run that hangs
    # outside the sweep's own limit (say on a stalled object store). Room for the
    # sweep, plus the other steps and their retries. Runs of other jobs get the same
    # tag when they start (supervision.supervised).
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
    """The environment's executor; each run it executes gets its worker and time limit tags."""
    limit_s = run_time_limit_s(environment)
    if environment.executor == "multiprocess":
        return supervised(dg.multiprocess_executor, limit_s).configured(
            {"max_concurrent": environment.max_concurrent}
        )
    return supervised(dg.in_process_executor, limit_s)


def _fixed(value: object, description: str) -> dg.ResourceDefinition:
    # An empty config schema, not hardcoded_resource (which accepts any config and
    # ignores it): run config for this resource is then an error the launch reports.
    return dg.ResourceDefinition(
        resource_fn=lambda _: value, config_schema={}, description=description
    )


def resources_for(environment: Environment) -> dict[str, dg.ResourceDefinition]:
    """The resources, fixed by the environment configuration; run config cannot change them."""
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    io_manager = WarehouseIOManager(warehouse=warehouse)
    return {
        "warehouse": _fixed(warehouse, f"warehouse {warehouse.root}, catalog {warehouse.catalog}"),
        IO_MANAGER_KEY: dg.IOManagerDefinition(
            resource_fn=lambda _: io_manager,
            config_schema={},
            description=f"one Parquet file per partition under {warehouse.root}",
        ),
        "build_limits": _fixed(
            BuildLimits(wall_clock_s=environment.limits.wall_clock_s),
            f"a sweep may run {environment.limits.wall_clock_s} s",
        ),
    }


for _logger in ("mfn_core", "mfn_pipeline"):
    logging.getLogger(_logger).setLevel(SETTINGS.environment.log_level)

defs = dg.Definitions(
    # A preset file that did not load is noted on every asset (the UI shows that) and
    # in the definitions' metadata (for tools; the UI does not show it).
    assets=with_problems_noted(ASSETS),
    jobs=[build_all_presets_job],
    schedules=[nightly_build_schedule],
    sensors=[dead_run_sensor],
    resources=resources_for(SETTINGS.environment),
    executor=executor_for(SETTINGS.environment),
    metadata=problems_metadata(SETTINGS),
)
