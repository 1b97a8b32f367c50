"""numba's on-disk cache under concurrent cold starts.

Pipeline steps start in separate processes; with ``cache=True`` they load compiled
code instead of compiling it again. This starts several processes at once on an
empty cache directory, each compiling and writing the same cache entries, and
requires every one to succeed with the same result, then a warm start to load
from the cache (fast) with the same result.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import hashlib, time
t0 = time.perf_counter()
from mfn_core import SimParams, simulate
run = simulate(SimParams(seed=7, grid_size=24, steps=40, boundary="{boundary}"))
elapsed = time.perf_counter() - t0
print(hashlib.sha256(run.field.tobytes()).hexdigest(), sorted(run.features.items()), elapsed)
"""
ROOT = Path(__file__).parents[2]


def start(cache_dir: Path, boundary: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", PROBE.format(boundary=boundary)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[str, float]:
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err
    *result, elapsed = out.rsplit(" ", 1)
    return result[0], float(elapsed)


@pytest.mark.slow
def test_cold_cache_shared_by_concurrent_processes(tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    processes = [start(cache, "periodic") for _ in range(4)]
    cold = [finish(p) for p in processes]
    assert len({result for result, _ in cold}) == 1
    assert any(cache.rglob("*.nbi"))
    assert any(cache.rglob("*.nbc"))

    warm_result, warm_elapsed = finish(start(cache, "periodic"))
    assert warm_result == cold[0][0]
    # Side by side in one run: a warm start loads instead of compiling.
    assert warm_elapsed < min(elapsed for _, elapsed in cold) / 2, (warm_elapsed, cold)
