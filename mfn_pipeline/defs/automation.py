"""When builds start on their own, who answers for them, and what a failed build leaves.

Every preset is rebuilt at 02:00 UTC by declarative automation: each asset carries
:data:`NIGHTLY`, and :func:`nightly_build_sensor` evaluates it (one run per preset, as
runs queue one at a time). :func:`failed_build_sensor` writes the ``builds`` record of
a run that failed, which never reached the builds step that records a good one.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from mfn_pipeline.lib.supervision import STARTED_BY_NIGHTLY, STARTED_BY_TAG

NIGHTLY_CRON = "0 2 * * *"
NIGHTLY_TIMEZONE = "UTC"

# At the cron tick, every partition whose upstream assets were rebuilt since (or are
# requested in the same tick) is requested: the whole chain of each preset at once.
NIGHTLY = dg.AutomationCondition.on_cron(NIGHTLY_CRON, NIGHTLY_TIMEZONE)

OWNERS = ["team:mfn"]

# The steps that use every core (the sweep and the features): a deployment that lets
# several runs execute at once limits this pool to one (concurrency.pools in the
# instance's dagster.yaml); both instances here run one run at a time already.
CPU_POOL = "mfn_cpu"

# Each night's build is expected to be done four hours after it started; an asset
# not rebuilt in that window (the night's run failed or never started) is shown as
# failing its freshness policy until it is rebuilt.
FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=4), timezone=NIGHTLY_TIMEZONE
)

NIGHTLY_SENSOR = "nightly_build_sensor"


def nightly_build_sensor(target: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the automation conditions of ``target``, on by default."""
    return dg.AutomationConditionSensorDefinition(
        NIGHTLY_SENSOR,
        target=target,
        run_tags={STARTED_BY_TAG: STARTED_BY_NIGHTLY},
        default_status=dg.DefaultSensorStatus.RUNNING,
        # Runs, not a backfill: one run per preset, tagged and queued like any other.
        emit_backfills=False,
        description="Rebuilds every preset at 02:00 UTC (the assets' on_cron condition).",
    )
