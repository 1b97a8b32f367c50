"""Resources and the executor, fixed by the loaded settings.

Resources are fixed objects bound from the environment configuration: they take no
run config, so a run launched from the UI or its GraphQL API cannot point the
warehouse, the catalog or the limits anywhere else (such config fails validation).
"""

from __future__ import annotations

import math

import dagster as dg

from mfn_pipeline.lib.settings import Environment, Settings
from mfn_pipeline.lib.supervision import in_process_run, supervised
from mfn_pipeline.lib.warehouse import Warehouse

RUN_TIME_MARGIN_S = 900


def run_time_limit_s(environment: Environment) -> int:
    """Longest a whole build run may take: the sweep (run once), then the other steps."""
    return math.ceil(environment.limits.wall_clock_s) + RUN_TIME_MARGIN_S


def supervised_run(environment: Environment, started_by: str) -> tuple[str, dict[str, str]]:
    """Run id and tags of an in-process build: this process is its worker, with its limit."""
    return in_process_run(run_time_limit_s(environment), started_by)


def console_log_config(level: str) -> dict[str, object]:
    """Run config that sets the console echo of a run (Dagster's default is DEBUG)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}


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


def resources_for(settings: Settings) -> dict[str, dg.ResourceDefinition]:
    """The resources, fixed by the settings; run config cannot change them.

    ``settings`` is what assets read their preset (partitions.preset_of) and the
    sweep's time limit from, so a run builds what the code location was loaded with.
    """
    environment = settings.environment
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    return {
        "warehouse": _fixed(warehouse, f"warehouse {warehouse.root}, catalog {warehouse.catalog}"),
        "settings": _fixed(
            settings,
            f"environment {environment.name}: presets {', '.join(settings.partitions)}; "
            f"a sweep may run {environment.limits.wall_clock_s} s",
        ),
    }
