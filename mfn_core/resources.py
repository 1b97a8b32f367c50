"""What a preset will cost before it runs: peak memory of its build and the disk it fills.

A pure model of the streaming build (:func:`mfn_core.sweep.sweep_batches` writing row
groups of :func:`batch_rows_for` runs): a bounded window of runs in flight, one batch
being assembled and encoded, and the per-run scalar tables the downstream steps hold
whole. It is an upper bound on purpose: ``benchmarks/sweep_memory.py`` prints measured
against estimated, and a test keeps the ratio between a sane floor and 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mfn_core.presets import Preset

MIB = 2**20
GIB = 2**30
FLOAT_BYTES = 8

# Finished runs a sweep keeps queued per worker thread, so no core waits for the
# consumer; run_sweep's window is this times its workers.
WINDOW_PER_WORKER = 4
# A row group of final fields and traces: large enough that Parquet's per-group
# overhead vanishes, small enough that a 1024x1024 field (8 MiB) still gives 4 rows.
BATCH_TARGET_BYTES = 32 * MIB

# Interpreter, numba kernels, polars, pyarrow and Dagster running a build in process:
# 400-450 MiB measured for the small presets in a long-used environment, and about
# 110 MiB more in a freshly installed one with the same packages (medium: 564 against
# 458 MiB), so rounded up from the latter.
BASE_PROCESS_BYTES = 640 * MIB
# Arrays one run allocates while it simulates, per grid cell: V, a, i drawn, padded
# and double-buffered (9 float64), the final copy (1), and the feature kernels'
# masks and component stacks (17 bytes), rounded up.
RUN_WORKSPACE_BYTES_PER_CELL = 12 * FLOAT_BYTES + 24
# Copies of a batch alive at once while it is written: the finished rows, the stacked
# array, the polars columns, the arrow view and the encoded row group.
BATCH_COPIES = 5
# A run's scalar columns (parameters, metrics, features, digest, reason) across the
# tables held whole downstream (runs without arrays, features, dataset), with the
# copies a join makes.
SCALAR_ROW_BYTES = 4 * 1024
# Parquet footers and schemas of the four table files of one preset.
FILE_OVERHEAD_BYTES = 4 * 64 * 1024
# A list column's repetition and definition levels beside its float64 values (about
# 3% measured), doubled.
LIST_LEVELS_SLACK = 1 / 16
# Stored scalar columns of one run across simulation_runs, fractal_features and
# mfn_dataset (about 1.2 KiB measured), rounded up.
STORED_SCALAR_BYTES = 2 * 1024


@dataclass(frozen=True)
class ResourceEstimate:
    """Upper bounds for one preset's build: peak resident memory and bytes stored."""

    grid_size: int
    steps: int
    num_samples: int
    batch_rows: int
    workers: int
    peak_memory_bytes: int
    storage_bytes: int

    @property
    def peak_memory_mib(self) -> float:
        return self.peak_memory_bytes / MIB

    @property
    def storage_gib(self) -> float:
        return self.storage_bytes / GIB

    def describe(self) -> str:
        """One line: the estimate and what it was computed from."""
        storage = (
            f"{self.storage_gib:,.1f} GiB"
            if self.storage_bytes >= GIB
            else f"{self.storage_bytes / MIB:,.1f} MiB"
        )
        return (
            f"estimated peak memory {self.peak_memory_mib:,.0f} MiB and storage "
            f"{storage} (grid_size {self.grid_size}, steps {self.steps}, "
            f"num_samples {self.num_samples}, {self.workers} workers, row groups of "
            f"{self.batch_rows} runs)"
        )


def stored_run_bytes(grid_size: int, steps: int) -> int:
    """Bytes of one run's final field and per-step trace (float64; barely compressible)."""
    trace_values = steps + 4 * max(steps - 1, 0)
    return FLOAT_BYTES * (grid_size * grid_size + trace_values)


def batch_rows_for(grid_size: int, steps: int) -> int:
    """Runs per row group, so one group's fields and traces stay near BATCH_TARGET_BYTES."""
    return max(1, BATCH_TARGET_BYTES // stored_run_bytes(grid_size, steps))


def estimate(
    grid_size: int, steps: int, num_samples: int, batch_rows: int, workers: int
) -> ResourceEstimate:
    """Peak memory and storage of building a preset of this shape, streaming its runs."""
    for name, value in (
        ("grid_size", grid_size),
        ("steps", steps),
        ("num_samples", num_samples),
        ("batch_rows", batch_rows),
        ("workers", workers),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} = {value!r} is invalid; allowed: an integer >= 1")
    run_bytes = stored_run_bytes(grid_size, steps)
    cells = (grid_size + 2) ** 2
    rows_in_batch = min(batch_rows, num_samples)
    in_flight = workers * (cells * RUN_WORKSPACE_BYTES_PER_CELL + run_bytes)
    queued = min(WINDOW_PER_WORKER * workers, num_samples) * run_bytes
    batch = BATCH_COPIES * rows_in_batch * run_bytes
    whole_tables = num_samples * SCALAR_ROW_BYTES
    peak = BASE_PROCESS_BYTES + in_flight + queued + batch + whole_tables
    stored_run = math.ceil(run_bytes * (1 + LIST_LEVELS_SLACK)) + STORED_SCALAR_BYTES
    storage = FILE_OVERHEAD_BYTES + num_samples * stored_run
    return ResourceEstimate(
        grid_size=grid_size,
        steps=steps,
        num_samples=num_samples,
        batch_rows=batch_rows,
        workers=workers,
        peak_memory_bytes=peak,
        storage_bytes=storage,
    )


def estimate_for(preset: Preset, workers: int) -> ResourceEstimate:
    """:func:`estimate` for a preset, with the row groups its sweep will write."""
    return estimate(
        preset.grid_size,
        preset.steps,
        preset.num_samples,
        batch_rows_for(preset.grid_size, preset.steps),
        workers,
    )
