"""Benchmark of mfn_core against its NumPy reference, measured side by side in one run.

    python -m benchmarks.core [--quick]

Prints single-core cell-steps per second of the compiled path and of the NumPy
reference on the same runs, the share of a run spent on features, sweep throughput
on all cores against one, peak memory of a run for 100 and 10,000 steps, and the
first call's JIT time with a cold and a warm cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

from mfn_core import SimParams, simulate
from mfn_core._jit import STRICT
from mfn_core.features import compute_features
from mfn_core.presets import load_preset
from mfn_core.sweep import default_workers, run_sweep
from tests import naive

ROOT = Path(__file__).parents[1]
TARGET_SPEEDUP, TARGET_FEATURE_SHARE, TARGET_SWEEP_SCALING = 40.0, 0.05, 1.7
# Floating-point operations per cell and step of the default run (Turing on, jitter
# off), counted from docs/model.md: three stencils (15), the V update (2), the activator
# and inhibitor reactions (10 + 8 with their diffusion scaling), the threshold boost
# (3), the clamps of a, i and V (12), the NaN guards (3) and the per-step statistics
# of |dV| and energy (13).
OPS_PER_CELL_STEP = 66
_PEAK_OPS_PER_ELEMENT = 16


@numba.njit(**{**STRICT, "cache": False})
def _strict_throughput_probe(x: np.ndarray, y: np.ndarray, z: np.ndarray, reps: int) -> float:
    # Independent lanes, L1-resident, no fast-math: the most this core does under the
    # same compilation rules as the model kernel (no FMA contraction).
    for _ in range(reps):
        for k in range(x.shape[0]):
            a = x[k]
            b = y[k]
            x[k] = ((a * 0.999 + b) * 0.998 + b * 0.5) * 0.997 + b
            z[k] = ((a * 0.996 + b) * 0.995 + a * 0.5) * 0.994 + a
    return float(x[0] + z[0])


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Smallest wall time of ``repeat`` calls: the least disturbed by other load."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def verdict(ok: bool) -> str:
    return "meets target" if ok else "BELOW TARGET"


def single_core(quick: bool) -> None:
    print("\n## Single core: compiled simulate() vs NumPy reference, same runs")
    print(f"{'size':>12} {'compiled Mcs/s':>15} {'reference Mcs/s':>16} {'ratio':>7}")
    for n, steps in ((64, 100), (128, 200)):
        seeds = range(2 if quick else 4)
        params = [SimParams(seed=s, grid_size=n, steps=steps) for s in seeds]
        simulate(params[0])  # compile or load outside the timing
        # Same runs, same repetition policy for both paths.
        compiled = sum(best_of(3, functools.partial(simulate, p)) for p in params)
        reference = sum(best_of(3, functools.partial(naive.simulate, p.as_dict())) for p in params)
        cells = n * n * steps * len(params)
        ratio = reference / compiled
        rates = f"{cells / compiled / 1e6:>15.1f} {cells / reference / 1e6:>16.1f}"
        print(
            f"{n:>4}x{n}x{steps:<4} {rates} {ratio:>6.1f}x  "
            f"{verdict(ratio >= TARGET_SPEEDUP)} (>= {TARGET_SPEEDUP:.0f}x)"
        )


def compute_ceiling() -> None:
    print("\n## Compute ceiling of one core (strict float64, no FMA, as the model is built)")
    x = np.linspace(0.1, 0.2, 1024)
    y = np.full(1024, 1e-6)
    z = np.zeros(1024)
    _strict_throughput_probe(x, y, z, 1)
    reps = 20_000
    seconds = best_of(3, lambda: _strict_throughput_probe(x, y, z, reps))
    flops = _PEAK_OPS_PER_ELEMENT * x.shape[0] * reps / seconds
    ceiling = flops / OPS_PER_CELL_STEP
    print(
        f"peak {flops / 1e9:.1f} GFLOP/s / {OPS_PER_CELL_STEP} operations per cell-step "
        f"= at most {ceiling / 1e6:.0f} Mcs/s for any exact implementation on this core"
    )
    for n, steps in ((64, 100), (128, 200)):
        reference = best_of(
            3,
            functools.partial(
                naive.simulate, SimParams(seed=0, grid_size=n, steps=steps).as_dict()
            ),
        )
        ref_rate = n * n * steps / reference
        print(
            f"{n:>4}x{n}x{steps:<4} reference {ref_rate / 1e6:.1f} Mcs/s: "
            f"ceiling ratio {ceiling / ref_rate:.1f}x; {TARGET_SPEEDUP:.0f}x needs "
            f"{TARGET_SPEEDUP * ref_rate / 1e6:.0f} Mcs/s"
        )


def feature_share() -> None:
    print("\n## Features per run at 128x128x200")
    run = simulate(SimParams(seed=1, grid_size=128, steps=200))
    features = best_of(20, lambda: compute_features(run.field, run.trace))
    whole = best_of(5, lambda: simulate(run.params))
    share = features / whole
    print(
        f"features {features * 1e3:.3f} ms of a {whole * 1e3:.2f} ms run: {share:.1%}  "
        f"{verdict(share < TARGET_FEATURE_SHARE)} (< {TARGET_FEATURE_SHARE:.0%})"
    )


def sweep_scaling(quick: bool) -> None:
    workers = default_workers()
    large = load_preset(ROOT / "configs" / "presets" / "large.yaml")
    preset = dataclasses.replace(large, num_samples=40 if quick else 120)
    print(f"\n## Sweep: {preset.num_samples} runs of the large preset, 1 vs {workers} workers")
    run_sweep(dataclasses.replace(preset, num_samples=2), workers=workers)
    one = best_of(2, lambda: run_sweep(preset, workers=1))
    many = best_of(2, lambda: run_sweep(preset, workers=workers))
    ratio = one / many
    print(
        f"1 worker {preset.num_samples / one:.1f} runs/s, {workers} workers "
        f"{preset.num_samples / many:.1f} runs/s: {ratio:.2f}x  "
        f"{verdict(ratio >= TARGET_SWEEP_SCALING or workers == 1)} (>= {TARGET_SWEEP_SCALING}x)"
    )


def peak_memory() -> None:
    print("\n## Peak memory of one 128x128 run (tracemalloc: every array of the run)")
    simulate(SimParams(seed=1, grid_size=128, steps=2))
    peaks = {}
    for steps in (100, 10_000):
        tracemalloc.start()
        simulate(SimParams(seed=1, grid_size=128, steps=steps))
        peaks[steps] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        history = 128 * 128 * steps * 8
        print(
            f"{steps:>6} steps: peak {peaks[steps] / 2**20:6.2f} MiB "
            f"(a stored history would be {history / 2**20:8.1f} MiB)"
        )
    print(f"ratio 10,000 / 100 steps: {peaks[10_000] / peaks[100]:.2f}x")


JIT_PROBE = (
    "import time; t=time.perf_counter(); import mfn_core; "
    "i=time.perf_counter(); mfn_core.simulate(mfn_core.SimParams(seed=0, grid_size=8, steps=2)); "
    "print(i-t, time.perf_counter()-i)"
)


def jit_cost() -> None:
    print("\n## First call in a new process (import, then first simulate)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for label in ("cold cache (compiles)", "warm cache (loads)"):
            out = subprocess.run(
                [sys.executable, "-c", JIT_PROBE],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            imported, first = map(float, out)
            print(f"{label:>22}: import {imported:.2f} s, first simulate {first:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    print(f"mfn_core benchmark: {default_workers()} cores, Python {sys.version.split()[0]}")
    single_core(args.quick)
    compute_ceiling()
    feature_share()
    sweep_scaling(args.quick)
    peak_memory()
    jit_cost()


if __name__ == "__main__":
    main()
