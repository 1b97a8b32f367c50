"""A run's per-step scalars (its trace) and the kernels that fill them.

The temporal features and the lyapunov indicator are functions of these scalars, so
a run never needs its (T, N, N) history: the simulation kernel fills the trace row
by row as it goes, and :func:`trace_from_history` fills the same trace from a stored
history with the same kernels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from mfn_core._jit import REDUCTION, STRICT

FloatArray = NDArray[np.float64]


class StepTrace(NamedTuple):
    """Per-step scalars of a run, from which the temporal features follow.

    ``energy[k]`` is sum(frame^2) in mV^2 for frame k+1 (k = 0..T-1). The other arrays
    describe D_t = |frame t - frame t-1| in mV for t = 2..T (index k = t-2):
    its mean, max and population std, and ``diff_norm`` = ||V_t - V_{t-1}||_2 in volts.

    A NamedTuple so the kernels take the trace as one argument: numba compiles a
    tuple of arrays in nopython mode, and attribute access costs nothing there.
    """

    energy: FloatArray
    dv_mean: FloatArray
    dv_max: FloatArray
    dv_std: FloatArray
    diff_norm: FloatArray

    @classmethod
    def empty(cls, steps: int) -> StepTrace:
        pairs = max(steps - 1, 0)
        return cls(np.empty(steps), *(np.empty(pairs) for _ in range(4)))


# Slots of the per-step accumulator filled row by row.
_ACC_SUM, _ACC_DEV2, _ACC_SQ, _ACC_ENERGY, _ACC_MAX = range(5)
ACC_SIZE = 5


@numba.njit(**REDUCTION)
def accumulate_row(
    prev: FloatArray, cur: FloatArray, shift: float, acc: FloatArray, scratch: FloatArray
) -> None:
    """Add one row's statistics of d = |cur - prev| (mV) and its energy to ``acc``.

    Works row by row so the simulation can call it while the row is still in L1.
    The variance is taken about ``shift`` (the previous step's mean): with a shift
    close to the mean the cancellation of E[d^2] - E[d]^2 vanishes, in one pass.
    The maximum runs as its own loop over ``scratch`` so the sums stay vectorised.
    """
    total = 0.0
    dev2 = 0.0
    sq = 0.0
    energy = 0.0
    for c in range(cur.shape[0]):
        x = cur[c] * 1000.0
        d = abs(x - prev[c] * 1000.0)
        scratch[c] = d
        total += d
        dev2 += (d - shift) * (d - shift)
        v = cur[c] - prev[c]
        sq += v * v
        energy += x * x
    peak = acc[_ACC_MAX]
    for c in range(cur.shape[0]):
        peak = scratch[c] if scratch[c] > peak else peak
    acc[_ACC_SUM] += total
    acc[_ACC_DEV2] += dev2
    acc[_ACC_SQ] += sq
    acc[_ACC_ENERGY] += energy
    acc[_ACC_MAX] = peak


@numba.njit(**STRICT)
def step_shift(t: int, trace: StepTrace) -> float:
    """Centre for the variance of step t: the previous step's mean |dV|."""
    return trace.dv_mean[t - 2] if t >= 2 else 0.0


@numba.njit(**STRICT)
def finish_step(acc: FloatArray, cells: int, t: int, shift: float, trace: StepTrace) -> None:
    """Turn the accumulated rows of frame t (0-based) into its trace slot; reset ``acc``."""
    trace.energy[t] = acc[_ACC_ENERGY]
    if t >= 1:
        k = t - 1
        mean = acc[_ACC_SUM] / cells
        var = acc[_ACC_DEV2] / cells - (mean - shift) * (mean - shift)
        trace.dv_mean[k] = mean
        trace.dv_max[k] = acc[_ACC_MAX]
        trace.dv_std[k] = math.sqrt(max(var, 0.0))
        trace.diff_norm[k] = math.sqrt(acc[_ACC_SQ])
    acc[:] = 0.0


@numba.njit(**STRICT)
def _trace_history(history: FloatArray, trace: StepTrace) -> None:
    n = history.shape[1]
    acc = np.zeros(ACC_SIZE)
    scratch = np.empty(history.shape[2])
    for t in range(history.shape[0]):
        prev = history[t - 1] if t >= 1 else history[0]
        shift = step_shift(t, trace)
        for r in range(n):
            accumulate_row(prev[r], history[t, r], shift, acc, scratch)
        finish_step(acc, n * history.shape[2], t, shift, trace)


@numba.njit(**STRICT)
def lyapunov(trace: StepTrace) -> float:
    """Mean log of the step-to-step distances ``diff_norm`` above 1e-10; 0 if there are none."""
    total = 0.0
    count = 0
    for k in range(trace.diff_norm.shape[0]):
        if trace.diff_norm[k] > 1e-10:
            total += math.log(trace.diff_norm[k])
            count += 1
    return total / count if count else 0.0


def trace_from_history(history: FloatArray) -> StepTrace:
    """The per-step scalars of a stored (T, N, N) history in volts."""
    trace = StepTrace.empty(history.shape[0])
    _trace_history(history, trace)
    return trace
