"""Run every sample of a preset on all cores and return one row per run.

Kernels release the GIL, so a thread pool keeps every core busy without starting
processes: no pickling, no per-process JIT load, and each run still draws only from
its own seed, so results do not depend on the number of workers or the order in
which runs finish.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeoutError
from typing import Any

import numpy as np
import polars as pl

from mfn_core.columns import (
    ARRAYS,
    FIELD_COLUMN,
    STATUS_FAILED,
    STATUS_OK,
    SWEEP,
    TRACE_COLUMNS,
    polars_schema,
)
from mfn_core.errors import ParamError, SimulationError, SweepTimeoutError
from mfn_core.model import simulate
from mfn_core.params import SimParams, is_finite_number
from mfn_core.presets import Preset
from mfn_core.resources import WINDOW_PER_WORKER, batch_rows_for

__all__ = [
    "ARRAY_SCHEMA",
    "FIELD_COLUMN",
    "STATUS_FAILED",
    "STATUS_OK",
    "SWEEP_SCHEMA",
    "TRACE_COLUMNS",
    "default_workers",
    "run_one",
    "run_sweep",
    "sweep_batches",
]

logger = logging.getLogger(__name__)

# The sweep's row layout and its list columns, both spelled in mfn_core.columns.
SWEEP_SCHEMA: dict[str, pl.DataType] = polars_schema(SWEEP)
ARRAY_SCHEMA: dict[str, pl.DataType] = polars_schema(ARRAYS)

ProgressCallback = Callable[[int, int], None]


def default_workers() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_one(
    sim_id: int, preset_name: str, params: SimParams, keep_arrays: bool = False
) -> dict[str, Any]:
    """Simulate one sample and return its row; a failure becomes a row with a reason."""
    row: dict[str, Any] = {"sim_id": sim_id, "preset": preset_name, **params.as_dict()}
    if keep_arrays:
        row.update(dict.fromkeys(ARRAY_SCHEMA))
    start = time.perf_counter()
    try:
        run = simulate(params)
    except SimulationError as exc:
        row.update(status=STATUS_FAILED, reason=str(exc))
        logger.warning("run %s of %s failed: %s", sim_id, preset_name, exc)
    # One run's unexpected failure must not cost the sweep its other runs: record it.
    except Exception as exc:
        row.update(status=STATUS_FAILED, reason=f"{type(exc).__name__}: {exc}")
        logger.exception("run %s of %s failed unexpectedly", sim_id, preset_name)
    else:
        row.update(
            **dataclasses.asdict(run.metrics),
            field_sha256=hashlib.sha256(run.field.tobytes()).hexdigest(),
            status=STATUS_OK,
            reason=None,
            **run.features,
        )
        if keep_arrays:
            row[FIELD_COLUMN] = run.field.ravel()
            for column, name in TRACE_COLUMNS.items():
                row[column] = getattr(run.trace, name)
    row["duration_s"] = time.perf_counter() - start
    return row


def _list_column(name: str, values: list[np.ndarray | None]) -> pl.Series:
    """A List(Float64) column from per-run arrays of one length (None: placeholder).

    Stacking into one 2-D array lets polars take the values in a single copy; the
    caller turns the failed runs' placeholders into nulls.
    """
    length = next((len(v) for v in values if v is not None), 0)
    stacked = np.zeros((len(values), length))
    for k, value in enumerate(values):
        if value is not None:
            stacked[k] = value
    if length == 0:
        return pl.Series(name, [[] for _ in values], dtype=ARRAY_SCHEMA[name])
    return pl.Series(name, stacked).cast(ARRAY_SCHEMA[name])


def _timed_out(
    preset: Preset, time_limit_s: float | None, started: float, done: int
) -> SweepTimeoutError:
    return SweepTimeoutError(
        f"preset {preset.name}: the sweep passed its wall-clock limit of {time_limit_s:g} s "
        f"after {time.monotonic() - started:.1f} s with {done} of {preset.num_samples} runs "
        "done; runs not yet started were cancelled (a run already in flight cannot be "
        "interrupted and ends in the background). Allow more time or shrink the preset."
    )


def _checked_arguments(
    preset: Preset, workers: int | None, time_limit_s: float | None, batch_rows: int | None
) -> tuple[int, int]:
    """The worker count and batch size to use, or ParamError naming the bad argument."""
    if not isinstance(preset, Preset):
        raise ParamError(
            f"run_sweep() takes a Preset (see load_preset), got {type(preset).__name__}"
        )
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParamError(f"workers = {workers!r} is invalid; allowed: an integer >= 1 or None")
    if time_limit_s is not None and not (is_finite_number(time_limit_s) and time_limit_s > 0):
        raise ParamError(
            f"time_limit_s = {time_limit_s!r} is invalid; allowed: a positive number of "
            "seconds or None"
        )
    if batch_rows is None:
        batch_rows = batch_rows_for(preset.grid_size, preset.steps)
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ParamError(
            f"batch_rows = {batch_rows!r} is invalid; allowed: an integer >= 1 or None"
        )
    return workers, batch_rows


def sweep_batches(
    preset: Preset,
    workers: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    keep_arrays: bool = False,
    time_limit_s: float | None = None,
    batch_rows: int | None = None,
) -> Iterator[pl.DataFrame]:
    """Run every sample of ``preset`` and yield its rows in sim_id order, in batches.

    Each batch holds at most ``batch_rows`` runs (default: :func:`batch_rows_for`
    the preset's shape) and has the schema of :func:`run_sweep`'s table; the batches
    concatenated are that table. A sweep holds one batch, a bounded window of
    finished runs and the runs in flight, never the runs already yielded, so its
    memory does not grow with ``num_samples``. Arguments are checked at once; the
    runs start when the first batch is asked for. Closing the iterator early cancels
    the runs not yet started.
    """
    workers, batch_rows = _checked_arguments(preset, workers, time_limit_s, batch_rows)
    return _batches(preset, workers, progress, keep_arrays, time_limit_s, batch_rows)


def _batches(
    preset: Preset,
    workers: int,
    progress: ProgressCallback | None,
    keep_arrays: bool,
    time_limit_s: float | None,
    batch_rows: int,
) -> Iterator[pl.DataFrame]:
    started = time.monotonic()
    total = preset.num_samples
    # Load (or compile) the kernels once, up front, so that cost is not billed to the
    # duration of whichever runs happen to start first.
    simulate(SimParams(seed=0, grid_size=4, steps=2))
    rows: list[dict[str, Any]] = []
    done = 0
    deadline = None if time_limit_s is None else started + time_limit_s
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mfn-sweep")
    finished = False
    try:
        # Runs are submitted lazily, a bounded window ahead, so a sweep of any length
        # holds only a few finished runs and the runs in flight besides its batch.
        runs = preset.runs()
        pending = [
            pool.submit(run_one, sim_id, preset.name, p, keep_arrays)
            for sim_id, p in itertools.islice(runs, WINDOW_PER_WORKER * workers)
        ]
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                rows.append(pending[0].result(timeout=timeout))
            except FuturesTimeoutError:
                raise _timed_out(preset, time_limit_s, started, done) from None
            pending.pop(0)
            done += 1
            if progress is not None:
                progress(done, total)
            # Past the limit, stop even if the runs in flight happen to be finished:
            # no new run may start after the deadline.
            if deadline is not None and time.monotonic() > deadline and done < total:
                raise _timed_out(preset, time_limit_s, started, done)
            for sim_id, p in itertools.islice(runs, 1):
                pending.append(pool.submit(run_one, sim_id, preset.name, p, keep_arrays))
            if len(rows) == batch_rows or not pending:
                batch, rows = _table(rows, keep_arrays), []
                yield batch
        finished = True
    finally:
        # After a timeout (or a consumer that stopped reading), queued runs are dropped;
        # a compiled run already in flight cannot be interrupted and ends in the background.
        pool.shutdown(wait=finished, cancel_futures=True)


def _table(rows: list[dict[str, Any]], keep_arrays: bool) -> pl.DataFrame:
    """One batch's rows as a table (SWEEP_SCHEMA, then ARRAY_SCHEMA if kept)."""
    if not keep_arrays:
        return pl.DataFrame(rows, schema=SWEEP_SCHEMA)
    failed = pl.Series([row["status"] != STATUS_OK for row in rows])
    arrays = {name: _list_column(name, [row.pop(name) for row in rows]) for name in ARRAY_SCHEMA}
    nulled = {name: pl.when(failed).then(None).otherwise(c) for name, c in arrays.items()}
    return pl.DataFrame(rows, schema=SWEEP_SCHEMA).with_columns(**nulled)


def run_sweep(
    preset: Preset,
    workers: int | None = None,
    *,
    progress: ProgressCallback | None = None,
    keep_arrays: bool = False,
    time_limit_s: float | None = None,
) -> pl.DataFrame:
    """Run every sample of ``preset`` on ``workers`` threads (default: all cores).

    Returns one row per run in sim_id order (SWEEP_SCHEMA): :func:`sweep_batches`
    gathered into one table, so it holds every run; stream the batches instead when
    the runs' fields do not all fit in memory. A run that fails is a row with status
    "failed" and a reason; the other runs still complete. ``progress(done, total)``
    is called after each finished run. ``keep_arrays`` adds each run's final field
    and per-step trace as list columns (ARRAY_SCHEMA). ``time_limit_s`` stops a
    runaway sweep: once it has passed, the runs not yet started are cancelled and
    SweepTimeoutError says how far the sweep got.
    """
    batches = list(
        sweep_batches(
            preset,
            workers,
            progress=progress,
            keep_arrays=keep_arrays,
            time_limit_s=time_limit_s,
        )
    )
    return pl.concat(batches, rechunk=True)
