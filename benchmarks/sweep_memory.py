"""Peak memory of a 10,000-run sweep against a 100-run sweep, side by side.

    python -m benchmarks.sweep_memory [--runs 10000]

Each sweep runs in a fresh process (the small preset's 32x32x50 runs, all cores),
which reports its own peak RSS; a sweep holds only finished rows and a bounded
window of runs in flight, so the long one should need barely more.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).parents[1]

PROBE = """
import dataclasses, json, resource, sys, time
from pathlib import Path
from mfn_core.presets import load_preset
from mfn_core.sweep import run_sweep
small = load_preset(Path("configs/presets/small.yaml"))
preset = dataclasses.replace(small, num_samples=int(sys.argv[1]))
start = time.perf_counter()
table = run_sweep(preset)
print(json.dumps({
    "runs": table.height,
    "failed": int((table["status"] != "ok").sum()),
    "seconds": time.perf_counter() - start,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


@dataclass(frozen=True)
class SweepMemory:
    runs: int
    failed: int
    seconds: float
    peak_rss_mib: float


def measure(runs: int) -> SweepMemory:
    """Sweep ``runs`` small runs in a fresh process and return what it reports."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(runs)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    return SweepMemory(**json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_memory", description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    short, long = measure(100), measure(args.runs)
    for sweep in (short, long):
        print(
            f"{sweep.runs:>6} runs: {sweep.seconds:6.1f} s, {sweep.failed} failed, "
            f"peak RSS {sweep.peak_rss_mib:7.1f} MiB"
        )
    print(
        f"peak RSS ratio {long.runs} / {short.runs} runs: "
        f"{long.peak_rss_mib / short.peak_rss_mib:.2f}x for {long.runs // short.runs}x the runs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
