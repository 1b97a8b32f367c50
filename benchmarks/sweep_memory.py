"""Peak memory of the pipeline's streaming build: N runs against 8N runs, fields kept.

    python -m benchmarks.sweep_memory [--runs 150] [--grid 256] [--steps 10] [--repeats 3]

Each build runs in a fresh process: the simulation_runs, fractal_features, mfn_dataset
and preset_summary assets of one preset, materialized in process by Dagster against a
scratch warehouse, exactly as ``mfn build`` runs them. The process reports its peak
RSS and the Parquet bytes it stored. The two sizes run interleaved, best of
``--repeats``, and the ratio of their peaks is printed: streaming holds one row group
of fields whatever the run count, so it stays near 1 where holding every field grew
linearly. Then, for a few presets, measured over estimated (mfn_core.resources) peak
memory and storage: each ratio must stay at or below 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mfn_core.resources import ResourceEstimate, batch_rows_for, estimate

PROJECT = Path(__file__).parents[1]
PROBE_PRESET = "memory-probe"

PROBE = """
import dataclasses, json, sys
from pathlib import Path
import dagster as dg
from mfn_pipeline.defs.assets import build_assets
from mfn_pipeline.defs.resources import resources_for
from mfn_pipeline.lib.metering import peak_resident_bytes
from mfn_pipeline.lib.settings import load_settings
from mfn_core.sweep import default_workers
preset, scratch = sys.argv[1], Path(sys.argv[2])
loaded = load_settings()
environment = dataclasses.replace(
    loaded.environment, warehouse=str(scratch / "warehouse"), catalog=scratch / "mfn.duckdb"
)
settings = dataclasses.replace(loaded, environment=environment)
# Every step of the build but its record.
steps = [a for a in build_assets(settings) if a.key.to_user_string() != "builds"]
with dg.DagsterInstance.ephemeral() as instance:
    result = dg.materialize(
        steps,
        partition_key=preset,
        instance=instance,
        resources=resources_for(settings),
        raise_on_error=False,
    )
failed = [e.step_key for e in result.all_events if e.is_step_failure]
(runs,) = result.asset_materializations_for_node("simulation_runs") or [None]
print(json.dumps({
    "preset": preset,
    "runs": settings.presets[preset].num_samples,
    "workers": default_workers(),
    "failed_steps": failed,
    "seconds": float(runs.metadata["duration_s"].value) if runs else 0.0,
    "row_groups": int(runs.metadata["row_groups"].value) if runs else 0,
    "peak_rss_mib": peak_resident_bytes() / 2**20,
    "stored_bytes": sum(p.stat().st_size for p in (scratch / "warehouse").rglob("*.parquet")),
}))
"""


@dataclass(frozen=True)
class BuildMemory:
    preset: str
    runs: int
    workers: int
    failed_steps: list[str]
    seconds: float
    row_groups: int
    peak_rss_mib: float
    stored_bytes: int


def probe_configs(folder: Path, grid_size: int, steps: int, num_samples: int) -> Path:
    """The project's configs plus a preset of this shape (the small preset, resized)."""
    configs = folder / "configs"
    shutil.copytree(PROJECT / "configs", configs, dirs_exist_ok=True)
    text = (configs / "presets" / "small.yaml").read_text(encoding="utf-8")
    for key, value in (
        ("name", PROBE_PRESET),
        ("grid_size", grid_size),
        ("steps", steps),
        ("num_samples", num_samples),
    ):
        text = re.sub(rf"(?m)^{key}: .*$", f"{key}: {value}", text, count=1)
    (configs / "presets" / f"{PROBE_PRESET}.yaml").write_text(text, encoding="utf-8")
    return configs


def measure(preset: str, configs: Path | None = None) -> BuildMemory:
    """Build ``preset`` in a fresh process against a scratch warehouse; what it reports."""
    env = dict(os.environ)
    if configs is not None:
        env["MFN_CONFIG_DIR"] = str(configs)
    with tempfile.TemporaryDirectory(prefix="mfn-sweep-memory-") as scratch:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, preset, scratch],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return BuildMemory(**json.loads(done.stdout.strip().splitlines()[-1]))


def measure_shape(grid_size: int, steps: int, num_samples: int) -> BuildMemory:
    """Build a preset of this shape (see probe_configs) in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="mfn-probe-configs-") as folder:
        configs = probe_configs(Path(folder), grid_size, steps, num_samples)
        return measure(PROBE_PRESET, configs)


def best_of_interleaved(
    grid_size: int, steps: int, runs: int, repeats: int, factor: int = 8
) -> tuple[BuildMemory, BuildMemory]:
    """Lowest peak of ``repeats`` builds of ``runs`` and of ``factor * runs``, alternating."""
    short: list[BuildMemory] = []
    long: list[BuildMemory] = []
    for _ in range(repeats):
        short.append(measure_shape(grid_size, steps, runs))
        long.append(measure_shape(grid_size, steps, factor * runs))
    return min(short, key=lambda m: m.peak_rss_mib), min(long, key=lambda m: m.peak_rss_mib)


def estimated(build: BuildMemory, grid_size: int, steps: int) -> ResourceEstimate:
    return estimate(grid_size, steps, build.runs, batch_rows_for(grid_size, steps), build.workers)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_memory", description=__doc__)
    parser.add_argument("--runs", type=int, default=150, help="N; the long build has 8N runs")
    parser.add_argument("--grid", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    field_mib = args.grid**2 * 8 / 2**20
    print(
        f"streaming build, {args.grid}x{args.grid} fields ({field_mib:.2f} MiB each, kept), "
        f"row groups of {batch_rows_for(args.grid, args.steps)} runs, best of {args.repeats}"
    )
    short, long = best_of_interleaved(args.grid, args.steps, args.runs, args.repeats)
    for build in (short, long):
        print(
            f"{build.runs:>6} runs: {build.seconds:6.1f} s sweep, {build.row_groups} row "
            f"group(s), peak RSS {build.peak_rss_mib:7.1f} MiB, stored "
            f"{build.stored_bytes / 2**20:8.1f} MiB, failed steps {build.failed_steps or 'none'}"
        )
    print(
        f"peak RSS ratio {long.runs} / {short.runs} runs: "
        f"{long.peak_rss_mib / short.peak_rss_mib:.2f}x for {long.runs // short.runs}x the runs "
        f"({(long.runs - short.runs) * field_mib:.0f} MiB more fields)"
    )
    print("\nmeasured / estimated (mfn_core.resources; at most 1 when the estimate holds)")
    shapes = [("small", 32, 50), ("medium", 64, 100), ("transition", 64, 200)]
    builds = [(measure(name), grid, steps) for name, grid, steps in shapes]
    builds += [(short, args.grid, args.steps), (long, args.grid, args.steps)]
    for build, grid, steps in builds:
        cost = estimated(build, grid, steps)
        print(
            f"{build.preset:>14} ({build.runs} runs of {grid}x{grid}x{steps}): peak RSS "
            f"{build.peak_rss_mib:6.0f} / {cost.peak_memory_mib:6.0f} MiB = "
            f"{build.peak_rss_mib / cost.peak_memory_mib:.2f}; storage "
            f"{build.stored_bytes / 2**20:7.2f} / {cost.storage_bytes / 2**20:7.2f} MiB = "
            f"{build.stored_bytes / cost.storage_bytes:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
