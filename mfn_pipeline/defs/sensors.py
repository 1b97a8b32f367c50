"""What a failed build leaves: its record in the ``builds`` table, written by a sensor.

A good build's record is written by its last step (the ``builds`` asset); a build that
fails before it never gets there. :data:`failed_build_sensor` writes the record of
every failed build run instead, with status failed and why, so the table's history
holds every build, not only the good ones.
"""

from __future__ import annotations

import dagster as dg

from mfn_pipeline.defs.assets import failed_build_record, write_build_record
from mfn_pipeline.lib.settings import Settings
from mfn_pipeline.lib.supervision import SENSOR_INTERVAL_S
from mfn_pipeline.lib.warehouse import Warehouse

PARTITION_TAG = "dagster/partition"


def failure_message(context: dg.RunFailureSensorContext) -> str:
    """Each failed step and what it raised, in one line; the run's own message otherwise."""
    steps = []
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        if user is not None and user.description:
            steps.append(f"step {event.step_key}: {user.description}")
            continue
        error = data.error
        while error is not None and error.cause is not None:
            error = error.cause  # Dagster wraps what the step raised
        steps.append(f"step {event.step_key}: {error.message.strip() if error else 'failed'}")
    return "; ".join(steps) or context.failure_event.message or "the run failed"


@dg.run_failure_sensor(
    name="failed_build_sensor",
    # `mfn build` executes its runs in its own process, outside any code location: the
    # instance holds only this project's runs, so every failed run of it is looked at.
    monitor_all_code_locations=True,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every failed build in the builds table (status failed, and why).",
)
def failed_build_sensor(
    context: dg.RunFailureSensorContext,
    warehouse: dg.ResourceParam[Warehouse],
    settings: dg.ResourceParam[Settings],
) -> None:
    run = context.dagster_run
    preset = run.tags.get(PARTITION_TAG)
    if preset not in settings.partitions:
        return  # not a build of one of our presets
    record = failed_build_record(
        context.instance, run.run_id, settings, preset, failure_message(context)
    )
    path = write_build_record(warehouse, preset, run.run_id, record)
    context.log.info(f"run {run.run_id} of {preset} failed; its build record is {path}")
