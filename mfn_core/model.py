"""The MFN 4.1 model (docs/model.md section 2) as one compiled kernel.

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
from mfn_core.features import compute_features
from mfn_core.params import BOUNDARIES, SimParams
from mfn_core.trace import ACC_SIZE, StepTrace, accumulate_row, finish_step, lyapunov, step_shift

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
    """Whole-run counters and the stability indicator of docs/model.md section 3."""

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
def _fill_halo(u: FloatArray, boundary: int) -> None:
    """Set the one-cell frame around the interior of a padded (n+2, n+2) array.

    Padding turns every boundary into plain neighbour reads, so the stencil loop has
    no branches and LLVM can vectorise it. Corners are never read by the 5-point stencil.
    """
    n = u.shape[0] - 2
    for k in range(1, n + 1):
        if boundary == PERIODIC:
            u[0, k] = u[n, k]
            u[n + 1, k] = u[1, k]
            u[k, 0] = u[k, n]
            u[k, n + 1] = u[k, 1]
        elif boundary == NEUMANN:
            u[0, k] = u[1, k]
            u[n + 1, k] = u[n, k]
            u[k, 0] = u[k, 1]
            u[k, n + 1] = u[k, n]
        else:
            u[0, k] = 0.0
            u[n + 1, k] = 0.0
            u[k, 0] = 0.0
            u[k, n + 1] = 0.0


@numba.njit(**STRICT, inline="always")
def _laplacian(u: FloatArray, r: int, c: int) -> float:
    """5-point Laplacian at (r, c) of a padded array: ((up + down) + left) + right - 4u.

    docs/model.md adds right before left for dirichlet; the kernel gets that order by
    storing dirichlet fields mirrored left-right (see ``simulate``), which keeps this
    loop free of per-cell selects so LLVM vectorises it.
    """
    return float(((u[r - 1, c] + u[r + 1, c]) + u[r, c - 1]) + u[r, c + 1] - 4.0 * u[r, c])


@numba.njit(**STRICT, inline="always")
def _clamp_v(v: float) -> tuple[float, int]:
    """V clamped to [V_MIN, V_MAX], and 1 if that changed it (NaN passes unchanged)."""
    low = v < V_MIN
    high = v > V_MAX
    return (V_MIN if low else (V_MAX if high else v)), low + high


@numba.njit(**STRICT)
def _clamp_row(row: FloatArray, n: int) -> tuple[int, int]:
    """Clamp row[1..n] to [V_MIN, V_MAX]; return (cells changed, NaN cells)."""
    clamped = nans = 0
    for c in range(1, n + 1):
        nans += math.isnan(row[c])
        row[c], hit = _clamp_v(row[c])
        clamped += hit
    return clamped, nans


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
    trace: StepTrace,
    counters: NDArray[np.int64],
) -> FloatArray:
    """Run all steps on padded (n+2, n+2) arrays; return the padded final V buffer.

    counters receives growth, turing and clamping events, then (step, array) of the
    first NaN, step 0 meaning none.
    """
    n = V.shape[0] - 2
    mirrored = boundary == DIRICHLET  # columns stored right to left
    clamp_now = not quantum_jitter  # with jitter, the clamp follows the noise
    acc = np.zeros(ACC_SIZE)
    scratch = np.empty(n)
    growth = turing = clamped = 0
    for t in range(steps):
        spike_row = -1
        spike_col = 0
        before_spike = spiked = 0.0
        if rng.random() < spike_probability:
            spike_row = rng.integers(0, n) + 1
            spike_col = rng.integers(0, n) + 1
            if mirrored:
                spike_col = n + 1 - spike_col
            before_spike = V[spike_row, spike_col]
            spiked = before_spike + rng.normal(SPIKE_MEAN, SPIKE_STD)
            V[spike_row, spike_col] = spiked
            growth += 1
        _fill_halo(V, boundary)
        if turing_enabled:
            _fill_halo(a, boundary)
            _fill_halo(i, boundary)
        shift = step_shift(t, trace)

        nan_v = nan_a = nan_i = 0
        for r in range(1, n + 1):
            # Two copies of the cell loop, chosen once per row rather than per cell:
            # without Turing the step is plain diffusion that neither reads a and i
            # nor tests a flag that never changes during a run; with Turing, V, a and
            # i advance in one pass because the boost on V depends on the same cell's
            # new activator value.
            if turing_enabled:
                for c in range(1, n + 1):
                    v = V[r, c] + alpha * _laplacian(V, r, c)
                    ac = a[r, c]
                    ic = i[r, c]
                    an = ac + (
                        d_activator * _laplacian(a, r, c) + r_activator * (ac * (1.0 - ac) - ic)
                    )
                    inh = ic + (d_inhibitor * _laplacian(i, r, c) + r_inhibitor * (ac - ic))
                    active = an > turing_threshold
                    v = v + TURING_BOOST if active else v
                    turing += active
                    nan_a += math.isnan(an)
                    nan_i += math.isnan(inh)
                    a_next[r, c] = 0.0 if an < 0.0 else (1.0 if an > 1.0 else an)
                    i_next[r, c] = 0.0 if inh < 0.0 else (1.0 if inh > 1.0 else inh)
                    if clamp_now:
                        nan_v += math.isnan(v)
                        v, hit = _clamp_v(v)
                        clamped += hit
                    V_next[r, c] = v
            else:
                for c in range(1, n + 1):
                    v = V[r, c] + alpha * _laplacian(V, r, c)
                    if clamp_now:
                        nan_v += math.isnan(v)
                        v, hit = _clamp_v(v)
                        clamped += hit
                    V_next[r, c] = v
            if quantum_jitter:
                continue  # noise, clamp and statistics follow once every row is updated
            # The row just written is still in L1: take its statistics now.
            if r == spike_row:
                V[r, spike_col] = before_spike  # frame t-1 is the state before the spike
            accumulate_row(V[r, 1 : n + 1], V_next[r, 1 : n + 1], shift, acc, scratch)
            if r == spike_row:
                V[r, spike_col] = spiked  # the next row's stencil reads the spiked value
        if quantum_jitter:
            if spike_row >= 0:
                V[spike_row, spike_col] = before_spike
            for r in range(1, n + 1):
                for k in range(1, n + 1):
                    c = n + 1 - k if mirrored else k  # draws follow the model's row-major order
                    V_next[r, c] = V_next[r, c] + rng.normal(0.0, jitter_sd)
                hits, nans = _clamp_row(V_next[r], n)
                clamped += hits
                nan_v += nans
                accumulate_row(V[r, 1 : n + 1], V_next[r, 1 : n + 1], shift, acc, scratch)

        if nan_v or nan_a or nan_i:
            counters[3] = t + 1
            counters[4] = 0 if nan_v else (1 if nan_a else 2)
            break
        finish_step(acc, n * n, t, shift, trace)
        V, V_next = V_next, V
        if turing_enabled:
            a, a_next = a_next, a
            i, i_next = i_next, i
    counters[0] = growth
    counters[1] = turing
    counters[2] = clamped
    return V


def _padded(interior: FloatArray, mirrored: bool) -> FloatArray:
    n = interior.shape[0]
    out = np.empty((n + 2, n + 2))
    out[1:-1, 1:-1] = interior[:, ::-1] if mirrored else interior
    return out


def _integrate(
    params: SimParams, V: FloatArray, a: FloatArray, i: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, NDArray[np.int64], StepTrace]:
    """Run every step from the given (N, N) initial state.

    Returns the read-only final field, the kernel's counters and the trace; raises
    SimulationError naming the step and array of the first NaN.
    """
    trace = StepTrace.empty(params.steps)
    counters = np.zeros(5, dtype=np.int64)
    mirrored = params.boundary == "dirichlet"
    V, a, i = (_padded(x, mirrored) for x in (V, a, i))
    final_padded = _run_kernel(
        V,
        a,
        i,
        np.empty_like(V),
        np.empty_like(a),
        np.empty_like(i),
        rng,
        params.steps,
        params.alpha,
        params.d_activator,
        params.d_inhibitor,
        params.r_activator,
        params.r_inhibitor,
        params.turing_enabled,
        params.turing_threshold,
        params.spike_probability,
        params.quantum_jitter,
        math.sqrt(params.jitter_var),
        BOUNDARIES.index(params.boundary),
        trace,
        counters,
    )
    if counters[3]:
        raise SimulationError(
            f"run with seed {params.seed} failed at step {counters[3]}: "
            f"{_ARRAY_NAMES[counters[4]]} holds NaN or Inf"
        )
    interior = final_padded[1:-1, 1:-1]
    final = np.ascontiguousarray(interior[:, ::-1] if mirrored else interior)
    final.setflags(write=False)
    return final, counters, trace


def simulate(params: SimParams) -> Run:
    """Run the MFN model for ``params`` and return its final field, metrics and features."""
    if not isinstance(params, SimParams):
        raise ParamError(
            f"simulate() takes a SimParams, got {type(params).__name__}; "
            "build one with SimParams(seed=..., ...)"
        )
    # The kernels read and write without bounds checks: grid_size 0 set after
    # construction crashed the process, so the boundary checks again.
    params.verify()
    n = params.grid_size
    rng = np.random.default_rng(params.seed)
    V = rng.normal(V_INIT_MEAN, V_INIT_STD, size=(n, n))
    a = rng.uniform(0, AI_INIT_HIGH, size=(n, n))
    i = rng.uniform(0, AI_INIT_HIGH, size=(n, n))
    final, counters, trace = _integrate(params, V, a, i, rng)
    metrics = RunMetrics(
        growth_events=int(counters[0]),
        turing_activations=int(counters[1]),
        clamping_events=int(counters[2]),
        lyapunov=float(lyapunov(trace)),
    )
    return Run(params, final, metrics, compute_features(final, trace), trace)
