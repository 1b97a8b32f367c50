"""The MFN 4.1 model (MODEL.md section 2) as one compiled kernel.

The kernel reproduces the reference arithmetic operation by operation (same
operand order, float64, no fast-math) and draws from the caller's
``numpy.random.Generator`` in the documented order, so a run is bit-identical to
the NumPy formulation for the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from mfn_core._jit import STRICT
from mfn_core.errors import ParamError, SimulationError
from mfn_core.features import StepTrace, _lyapunov, _record_step, compute_features
from mfn_core.params import BOUNDARIES, SimParams

FloatArray = NDArray[np.float64]

V_MIN, V_MAX = -0.095, 0.040  # clamp of the membrane potential, volts
V_INIT_MEAN, V_INIT_STD = -0.070, 0.005
AI_INIT_HIGH = 0.1  # activator and inhibitor start uniform in [0, 0.1)
TURING_BOOST = 0.005  # volts added where the activator crosses its threshold
SPIKE_MEAN, SPIKE_STD = 0.020, 0.005

PERIODIC, NEUMANN, DIRICHLET = (BOUNDARIES.index(b) for b in ("periodic", "neumann", "dirichlet"))
_ARRAY_NAMES = ("V", "a", "i")


@dataclass(frozen=True)
class RunMetrics:
    """Whole-run counters and the stability indicator of MODEL.md section 3."""

    growth_events: int
    turing_activations: int
    clamping_events: int
    lyapunov: float


@dataclass(frozen=True)
class Run:
    """One finished simulation: its parameters, final field (volts), metrics and features."""

    params: SimParams
    field: FloatArray
    metrics: RunMetrics
    features: dict[str, float | int]
    trace: StepTrace


@numba.njit(**STRICT)
def _laplacian_row(
    up: FloatArray, row: FloatArray, down: FloatArray, boundary: int, out: FloatArray
) -> None:
    """5-point Laplacian of one row, summed in the operand order MODEL.md fixes per boundary."""
    n = row.shape[0]
    if boundary == DIRICHLET:
        out[0] = ((down[0] + up[0]) + row[1]) + 0.0 - 4.0 * row[0]
        for c in range(1, n - 1):
            out[c] = ((down[c] + up[c]) + row[c + 1]) + row[c - 1] - 4.0 * row[c]
        out[n - 1] = ((down[n - 1] + up[n - 1]) + 0.0) + row[n - 2] - 4.0 * row[n - 1]
        return
    left_edge = row[0] if boundary == NEUMANN else row[n - 1]
    right_edge = row[n - 1] if boundary == NEUMANN else row[0]
    out[0] = ((up[0] + down[0]) + left_edge) + row[1] - 4.0 * row[0]
    for c in range(1, n - 1):
        out[c] = ((up[c] + down[c]) + row[c - 1]) + row[c + 1] - 4.0 * row[c]
    out[n - 1] = ((up[n - 1] + down[n - 1]) + row[n - 2]) + right_edge - 4.0 * row[n - 1]


@numba.njit(**STRICT)
def _neighbour_rows(
    u: FloatArray, r: int, boundary: int, zeros: FloatArray
) -> tuple[FloatArray, FloatArray]:
    n = u.shape[0]
    if r > 0:
        up = u[r - 1]
    elif boundary == PERIODIC:
        up = u[n - 1]
    elif boundary == NEUMANN:
        up = u[0]
    else:
        up = zeros
    if r < n - 1:
        down = u[r + 1]
    elif boundary == PERIODIC:
        down = u[0]
    elif boundary == NEUMANN:
        down = u[n - 1]
    else:
        down = zeros
    return up, down


@numba.njit(**STRICT)
def _clamp_count(x: float, lo: float, hi: float) -> tuple[float, int]:
    if x < lo:
        return lo, 1
    if x > hi:
        return hi, 1
    return x, 0


@numba.njit(**STRICT)
def _run_kernel(
    V: FloatArray,
    a: FloatArray,
    i: FloatArray,
    V_next: FloatArray,
    a_next: FloatArray,
    i_next: FloatArray,
    rng: np.random.Generator,
    steps: int,
    alpha: float,
    d_activator: float,
    d_inhibitor: float,
    r_activator: float,
    r_inhibitor: float,
    turing_enabled: bool,
    turing_threshold: float,
    spike_probability: float,
    quantum_jitter: bool,
    jitter_sd: float,
    boundary: int,
    trace_energy: FloatArray,
    trace_dv_mean: FloatArray,
    trace_dv_max: FloatArray,
    trace_dv_std: FloatArray,
    trace_diff_norm: FloatArray,
    counters: NDArray[np.int64],
) -> FloatArray:
    """Run all steps; return the final V buffer.

    counters receives growth, turing, clamping events, then (step, array) of the first
    non-finite value, step 0 meaning none.
    """
    n = V.shape[0]
    zeros = np.zeros(n)
    lap_v = np.empty(n)
    lap_a = np.empty(n)
    lap_i = np.empty(n)
    growth = turing = clamped = 0
    for t in range(steps):
        spike_row = -1
        spike_col = 0
        before_spike = 0.0
        if rng.random() < spike_probability:
            spike_row = rng.integers(0, n)
            spike_col = rng.integers(0, n)
            before_spike = V[spike_row, spike_col]
            V[spike_row, spike_col] = before_spike + rng.normal(SPIKE_MEAN, SPIKE_STD)
            growth += 1

        bad_v = bad_a = bad_i = 0
        for r in range(n):
            up, down = _neighbour_rows(V, r, boundary, zeros)
            _laplacian_row(up, V[r], down, boundary, lap_v)
            if turing_enabled:
                up, down = _neighbour_rows(a, r, boundary, zeros)
                _laplacian_row(up, a[r], down, boundary, lap_a)
                up, down = _neighbour_rows(i, r, boundary, zeros)
                _laplacian_row(up, i[r], down, boundary, lap_i)
                for c in range(n):
                    v = V[r, c] + alpha * lap_v[c]
                    ac = a[r, c]
                    ic = i[r, c]
                    an = ac + (d_activator * lap_a[c] + r_activator * (ac * (1.0 - ac) - ic))
                    inh = ic + (d_inhibitor * lap_i[c] + r_inhibitor * (ac - ic))
                    if an > turing_threshold:
                        v = v + TURING_BOOST
                        turing += 1
                    an = min(max(an, 0.0), 1.0) if an == an else an
                    inh = min(max(inh, 0.0), 1.0) if inh == inh else inh
                    bad_a += not (abs(an) < np.inf)
                    bad_i += not (abs(inh) < np.inf)
                    a_next[r, c] = an
                    i_next[r, c] = inh
                    V_next[r, c] = v
            else:
                for c in range(n):
                    V_next[r, c] = V[r, c] + alpha * lap_v[c]
        for r in range(n):
            for c in range(n):
                v = V_next[r, c]
                if quantum_jitter:
                    v = v + rng.normal(0.0, jitter_sd)
                v, hit = _clamp_count(v, V_MIN, V_MAX)
                clamped += hit
                bad_v += not (abs(v) < np.inf)
                V_next[r, c] = v

        if bad_v or bad_a or bad_i:
            counters[3] = t + 1
            counters[4] = 0 if bad_v else (1 if bad_a else 2)
            break
        if spike_row >= 0:
            V[spike_row, spike_col] = before_spike  # the trace compares against frame t-1
        _record_step(
            V, V_next, t, trace_energy, trace_dv_mean, trace_dv_max, trace_dv_std,
            trace_diff_norm,
        )
        V, V_next = V_next, V
        if turing_enabled:
            a, a_next = a_next, a
            i, i_next = i_next, i
    counters[0] = growth
    counters[1] = turing
    counters[2] = clamped
    return V


def simulate(params: SimParams) -> Run:
    """Run the MFN model for ``params`` and return its final field, metrics and features."""
    if not isinstance(params, SimParams):
        raise ParamError(
            f"simulate() takes a SimParams, got {type(params).__name__}; "
            "build one with SimParams(seed=..., ...)"
        )
    n = params.grid_size
    rng = np.random.default_rng(params.seed)
    V = rng.normal(V_INIT_MEAN, V_INIT_STD, size=(n, n))
    a = rng.uniform(0, AI_INIT_HIGH, size=(n, n))
    i = rng.uniform(0, AI_INIT_HIGH, size=(n, n))
    trace = StepTrace.empty(params.steps)
    counters = np.zeros(5, dtype=np.int64)
    final = _run_kernel(
        V, a, i, np.empty_like(V), np.empty_like(a), np.empty_like(i), rng,
        params.steps, params.alpha, params.d_activator, params.d_inhibitor,
        params.r_activator, params.r_inhibitor, params.turing_enabled,
        params.turing_threshold, params.spike_probability, params.quantum_jitter,
        math.sqrt(params.jitter_var), BOUNDARIES.index(params.boundary),
        trace.energy, trace.dv_mean, trace.dv_max, trace.dv_std, trace.diff_norm, counters,
    )
    if counters[3]:
        raise SimulationError(
            f"run with seed {params.seed} failed at step {counters[3]}: "
            f"{_ARRAY_NAMES[counters[4]]} holds NaN or Inf"
        )
    final.setflags(write=False)
    metrics = RunMetrics(
        growth_events=int(counters[0]),
        turing_activations=int(counters[1]),
        clamping_events=int(counters[2]),
        lyapunov=float(_lyapunov(trace.diff_norm)),
    )
    return Run(params, final, metrics, compute_features(final, trace), trace)
