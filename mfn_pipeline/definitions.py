"""The code location: assets, checks, the build job, the nightly schedule, resources."""

from __future__ import annotations

import logging

import dagster as dg

from mfn_pipeline.assets import ASSETS, GROUP, IO_MANAGER_KEY
from mfn_pipeline.partitions import SETTINGS, presets_partitions
from mfn_pipeline.settings import Environment
from mfn_pipeline.storage import Warehouse, WarehouseIOManager

NIGHTLY_CRON = "0 2 * * *"


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
    return {"warehouse": warehouse, IO_MANAGER_KEY: WarehouseIOManager(warehouse=warehouse)}


for _logger in ("mfn_core", "mfn_pipeline"):
    logging.getLogger(_logger).setLevel(SETTINGS.environment.log_level)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[build_all_presets_job],
    schedules=[nightly_build_schedule],
    resources=resources_for(SETTINGS.environment),
    executor=executor_for(SETTINGS.environment),
)
