"""The code location's entry point: everything built from the settings loaded on demand.

Nothing is read at import: Dagster (``dg dev``, ``dg check defs``, the code server)
calls :func:`defs`, which loads the environment file and every preset and builds the
assets, checks, sensors, the build job, resources and executor from them. An invalid
environment file stops the load there; an invalid preset file only becomes a problem
of its own partition.
"""

from __future__ import annotations

import logging

import dagster as dg

from mfn_pipeline.defs.assets import GROUP, build_assets
from mfn_pipeline.defs.automation import nightly_build_sensor
from mfn_pipeline.defs.partitions import problems_metadata, with_problems_noted
from mfn_pipeline.defs.resources import executor_for, resources_for, run_time_limit_s
from mfn_pipeline.defs.sensors import failed_build_sensor
from mfn_pipeline.lib.settings import Settings, load_settings
from mfn_pipeline.lib.supervision import RUN_TIME_LIMIT_TAG, dead_run_sensor

BUILD_JOB = "build_all_presets_job"


def build_job(settings: Settings) -> dg.UnresolvedAssetJobDefinition:
    """The job ``mfn build`` runs: one preset (a partition) end to end."""
    return dg.define_asset_job(
        BUILD_JOB,
        selection=dg.AssetSelection.groups(GROUP),
        description=(
            "Every asset of every preset (runs, features, data set, summary, build record);"
            " each run builds one preset, its partition: mfn build runs it once per preset."
        ),
        # Run monitoring (configs/ and deploy/dagster.yaml) stops a whole run that hangs
        # outside the sweep's own limit (say on a stalled object store). Room for the
        # sweep, plus the other steps and their retries. Runs of other jobs get the same
        # tag when they start (supervision.supervised).
        tags={RUN_TIME_LIMIT_TAG: str(run_time_limit_s(settings.environment))},
    )


def definitions_for(settings: Settings) -> dg.Definitions:
    """Every definition of the code location, for these settings."""
    for name in ("mfn_core", "mfn_pipeline"):
        logging.getLogger(name).setLevel(settings.environment.log_level)
    return dg.Definitions(
        # A preset file that did not load is noted on every asset (the UI shows that) and
        # in the definitions' metadata (for tools; the UI does not show it).
        assets=with_problems_noted(build_assets(settings), settings),
        jobs=[build_job(settings)],
        sensors=[
            nightly_build_sensor(dg.AssetSelection.groups(GROUP)),
            failed_build_sensor,
            dead_run_sensor,
        ],
        resources=resources_for(settings),
        executor=executor_for(settings.environment),
        metadata=problems_metadata(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location, from the settings of ``MFN_ENV`` and ``MFN_CONFIG_DIR``."""
    return definitions_for(load_settings())
