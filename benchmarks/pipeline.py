"""Orchestration overhead: a Dagster build of a preset beside run_sweep of the same preset.

    python -m benchmarks.pipeline [PRESET ...]   (default: medium large)

Both are measured in this process, interleaved three times (best of each), after a warm-up build of
``small`` (so neither pays the JIT load). The Dagster side is what ``make run``
does: the build job on the in-process executor against a SQLite instance, writing
Parquet and the DuckDB catalog. Target: under 3 s overhead per partition.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from mfn_core.sweep import run_sweep
from mfn_pipeline.definitions import BUILD_JOB, definitions_for
from mfn_pipeline.defs.resources import console_log_config
from mfn_pipeline.lib.settings import load_settings

TARGET_OVERHEAD_S = 3.0
REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=["medium", "large"])
    args = parser.parse_args()
    settings = load_settings()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["DAGSTER_HOME"] = scratch
        environment = dataclasses.replace(
            settings.environment,
            warehouse=str(Path(scratch) / "warehouse"),
            catalog=Path(scratch) / "mfn.duckdb",
        )
        placed = dataclasses.replace(settings, environment=environment)
        job = definitions_for(placed).resolve_job_def(BUILD_JOB)

        def build(preset: str) -> float:
            with dg.DagsterInstance.get() as instance:
                start = time.perf_counter()
                result = job.execute_in_process(
                    partition_key=preset,
                    instance=instance,
                    # Events are still stored; only the console echo is muted.
                    run_config=console_log_config("WARNING"),
                )
                elapsed = time.perf_counter() - start
            assert result.success
            return elapsed

        build("small")
        print(f"Dagster build (in-process executor, SQLite instance) vs run_sweep, {scratch}")
        print(f"{'preset':>8} {'runs':>5} {'dagster s':>10} {'sweep s':>8} {'overhead':>18}")
        for preset in args.presets:
            # Interleaved, so both sides see the same background load; best of each.
            sweeps, builds = [], []
            for _ in range(REPEATS):
                sweeps.append(_timed(lambda p=preset: run_sweep(settings.presets[p])))
                builds.append(build(preset))
            sweep, dagster = min(sweeps), min(builds)
            overhead = dagster - sweep
            verdict = "meets target" if overhead < TARGET_OVERHEAD_S else "ABOVE TARGET"
            print(
                f"{preset:>8} {settings.presets[preset].num_samples:>5} {dagster:>10.2f} "
                f"{sweep:>8.2f} {overhead:>6.2f} s ({overhead / dagster:5.1%})  "
                f"{verdict} (< {TARGET_OVERHEAD_S:g} s)"
            )


def _timed(fn: object) -> float:
    assert callable(fn)
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
