"""Build presets through Dagster and show the result: ``python -m mfn_pipeline [PRESET ...]``.

Runs ``build_all_presets_job`` for each preset against the instance in
``$DAGSTER_HOME`` (so the builds appear in the UI), then prints a DuckDB query over
the catalog. Exit status: 0 every build succeeded, 1 a build failed or the
configuration is invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import dagster as dg
import duckdb

from mfn_pipeline.settings import ConfigError

SUMMARY_QUERY = """
SELECT alpha, r_activator,
       count(*)              AS runs,
       round(avg(V_mean), 3) AS V_mean_mV,
       round(avg(D_box), 3)  AS D_box,
       round(avg(D_box_rel), 3) AS D_box_rel,
       round(avg(H_entropy), 3) AS H_entropy,
       round(avg(lyapunov), 3)  AS lyapunov
FROM dataset
WHERE preset = ?
GROUP BY alpha, r_activator
ORDER BY alpha, r_activator
"""


def build(job: dg.JobDefinition, preset: str, log_level: str) -> bool:
    """Materialize every asset of one preset partition; True on success."""
    # Dagster's console logger defaults to DEBUG; follow the environment's level.
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=preset, instance=instance, raise_on_error=False, run_config=run_config
        )
    return result.success


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfn_pipeline", description=__doc__)
    parser.add_argument("presets", nargs="*", default=["small"], help="preset names")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        parser.error("DAGSTER_HOME is not set; `make run` sets it to .dagster_home")
    try:
        # Imported here so that an invalid configuration file is reported as one
        # clear message instead of a traceback from module import.
        from mfn_pipeline import defs  # noqa: PLC0415
        from mfn_pipeline.partitions import SETTINGS  # noqa: PLC0415
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    unknown = [name for name in args.presets if name not in SETTINGS.presets]
    if unknown:
        parser.error(f"unknown preset {', '.join(unknown)}; known: {', '.join(SETTINGS.presets)}")
    job = defs.resolve_job_def("build_all_presets_job")
    failed = []
    for preset in args.presets:
        start = time.perf_counter()
        ok = build(job, preset, SETTINGS.environment.log_level)
        print(f"{preset}: {'built' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s")
        if not ok:
            failed.append(preset)
    catalog = SETTINGS.environment.catalog
    if len(failed) == len(args.presets):
        return 1
    with duckdb.connect(str(catalog), read_only=True) as con:
        for preset in args.presets:
            if preset in failed:
                continue
            print(f"\n{catalog}: data set of {preset!r}, grouped by the swept parameters")
            con.sql(SUMMARY_QUERY, params=[preset]).show(max_width=200)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
