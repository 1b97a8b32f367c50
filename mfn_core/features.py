"""The 18 canonical MFN features (docs/model.md section 4) and the field-relative ones (section 5).

Temporal features follow from a run's per-step scalars (:class:`mfn_core.trace.StepTrace`),
the others from its final field.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from numpy.typing import NDArray

from mfn_core._jit import STRICT
from mfn_core.errors import ParamError
from mfn_core.trace import StepTrace, trace_from_history

FloatArray = NDArray[np.float64]

FEATURE_NAMES: tuple[str, ...] = (
    "D_box",
    "D_r2",
    "V_min",
    "V_max",
    "V_mean",
    "V_std",
    "V_skew",
    "V_kurt",
    "dV_mean",
    "dV_max",
    "T_stable",
    "E_trend",
    "f_active",
    "N_clusters_low",
    "N_clusters_med",
    "N_clusters_high",
    "max_cluster_size",
    "cluster_size_std",
)
EXTENDED_FEATURE_NAMES: tuple[str, ...] = ("D_box_rel", "D_r2_rel", "N_clusters_rel", "H_entropy")
ALL_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES + EXTENDED_FEATURE_NAMES
COUNT_FEATURES: frozenset[str] = frozenset(
    {
        "T_stable",
        "N_clusters_low",
        "N_clusters_med",
        "N_clusters_high",
        "max_cluster_size",
        "N_clusters_rel",
    }
)

# Thresholds of the 4.1 structural features, in volts (docs/model.md section 4).
THRESHOLD_LOW, THRESHOLD_MED, THRESHOLD_HIGH = -0.060, -0.050, -0.040
STABLE_STD_MV = 0.001  # per-step std of |dV| below which a step counts as stable
STABLE_RUN = 10  # consecutive stable steps that define T_stable
BOX_SCALES = 5
ENTROPY_BINS = 64
RELATIVE_PERCENTILE = 90.0

_TEMPORAL_SLOT = FEATURE_NAMES.index("dV_mean")  # dV_mean, dV_max, T_stable, E_trend
_TEMPORAL_COUNT = 4


# ---------------------------------------------------------------------------
# Temporal features, from the trace


@numba.njit(**STRICT)
def _slope(y: FloatArray) -> float:
    """Least-squares slope of y against 0..len(y)-1 (centred, so large y stay exact)."""
    n = y.shape[0]
    t_mean = (n - 1) / 2.0
    y_mean = 0.0
    for k in range(n):
        y_mean += y[k]
    y_mean /= n
    sxy = 0.0
    sxx = 0.0
    for k in range(n):
        dt = k - t_mean
        sxy += dt * (y[k] - y_mean)
        sxx += dt * dt
    return sxy / sxx


@numba.njit(**STRICT)
def _temporal(trace: StepTrace, out: FloatArray) -> None:
    """dV_mean, dV_max, T_stable, E_trend into out[0:4]."""
    steps = trace.energy.shape[0]
    if steps < 2:
        out[:4] = 0.0
        return
    # Every D_t holds N^2 values, so the mean of all values is the mean of step means.
    total = 0.0
    peak = 0.0
    for k in range(steps - 1):
        total += trace.dv_mean[k]
        peak = max(peak, trace.dv_max[k])
    out[0] = total / (steps - 1)
    out[1] = peak
    stable = float(steps)
    if steps > STABLE_RUN:
        run = 0
        for k in range(steps - 1):
            run = run + 1 if trace.dv_std[k] < STABLE_STD_MV else 0
            if run == STABLE_RUN:
                stable = float(k - STABLE_RUN + 2)
                break
    out[2] = stable
    out[3] = _slope(trace.energy)


# ---------------------------------------------------------------------------
# Features of one field


@functools.cache
def box_sizes(grid_size: int) -> NDArray[np.int64]:
    """Box edge lengths used by D_box for an N x N grid (docs/model.md section 4.1)."""
    s_max = max(min(2 * 2 ** (BOX_SCALES - 1), grid_size // 2), 2)
    sizes = np.unique(np.geomspace(2, s_max, BOX_SCALES).astype(np.int64))
    sizes.setflags(write=False)
    return sizes


@numba.njit(**STRICT)
def _box_dimension(mask: NDArray[np.bool_], sizes: NDArray[np.int64]) -> tuple[float, float]:
    """Box-counting dimension of ``mask`` and the R^2 of its log-log fit."""
    n = mask.shape[0]
    xs = np.empty(sizes.shape[0])
    ys = np.empty(sizes.shape[0])
    kept = 0
    for j in range(sizes.shape[0]):
        s = sizes[j]
        m = n // s
        if m < 1:
            continue
        count = 0
        for br in range(m):
            for bc in range(m):
                hit = False
                for r in range(br * s, br * s + s):
                    for c in range(bc * s, bc * s + s):
                        if mask[r, c]:
                            hit = True
                            break
                    if hit:
                        break
                count += hit
        if count > 0:
            xs[kept] = math.log(1.0 / s)
            ys[kept] = math.log(count)
            kept += 1
    if kept < 2:
        return 0.0, 0.0
    x_mean = xs[:kept].mean()
    y_mean = ys[:kept].mean()
    sxx = sxy = syy = 0.0
    for j in range(kept):
        dx = xs[j] - x_mean
        dy = ys[j] - y_mean
        sxx += dx * dx
        sxy += dx * dy
        syy += dy * dy
    slope = sxy / sxx
    if syy == 0.0:
        return slope, 0.0
    intercept = y_mean - slope * x_mean
    ss_res = 0.0
    for j in range(kept):
        e = ys[j] - (slope * xs[j] + intercept)
        ss_res += e * e
    return slope, min(max(1.0 - ss_res / syy, 0.0), 1.0)


@numba.njit(**STRICT)
def _component_sizes(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Sizes of the 4-connected components of ``mask`` (no wrap-around), by flood fill."""
    rows, cols = mask.shape
    seen = np.zeros((rows, cols), dtype=np.bool_)
    stack = np.empty(rows * cols, dtype=np.int64)
    sizes = np.empty(rows * cols, dtype=np.int64)
    found = 0
    for start in range(rows * cols):
        r0, c0 = divmod(start, cols)
        if not mask[r0, c0] or seen[r0, c0]:
            continue
        seen[r0, c0] = True
        stack[0] = start
        top = 1
        size = 0
        while top:
            top -= 1
            r, c = divmod(stack[top], cols)
            size += 1
            if r > 0 and mask[r - 1, c] and not seen[r - 1, c]:
                seen[r - 1, c] = True
                stack[top] = (r - 1) * cols + c
                top += 1
            if r + 1 < rows and mask[r + 1, c] and not seen[r + 1, c]:
                seen[r + 1, c] = True
                stack[top] = (r + 1) * cols + c
                top += 1
            if c > 0 and mask[r, c - 1] and not seen[r, c - 1]:
                seen[r, c - 1] = True
                stack[top] = r * cols + c - 1
                top += 1
            if c + 1 < cols and mask[r, c + 1] and not seen[r, c + 1]:
                seen[r, c + 1] = True
                stack[top] = r * cols + c + 1
                top += 1
        sizes[found] = size
        found += 1
    return sizes[:found]


@numba.njit(**STRICT)
def _percentile_linear(values: FloatArray, q: float) -> float:
    """NumPy's default (linear) percentile of a 1-D array, same rounding as NumPy."""
    n = values.shape[0]
    virtual = (n - 1) * (q / 100.0)
    lower = math.floor(virtual)
    upper = min(lower + 1, n - 1)
    part = np.partition(values, lower)
    a = part[lower]
    b = a
    if upper > lower:
        b = part[upper]
        for k in range(upper + 1, n):
            b = min(b, part[k])
    gamma = virtual - lower
    diff = b - a
    if gamma >= 0.5:
        return float(b - diff * (1.0 - gamma))
    return float(a + diff * gamma)


@numba.njit(**STRICT)
def _entropy_bits(field: FloatArray, bins: int) -> float:
    """Shannon entropy of a histogram of ``field`` over [min, max], binned like NumPy."""
    lo = field.min()
    hi = field.max()
    norm = bins / (hi - lo) if hi > lo else math.inf
    # Constant, or a range too small for finite-sized bins (subnormal differences):
    # NumPy refuses to bin it, and an infinite scale would turn (x - lo) * norm into
    # NaN, whose integer conversion is undefined and indexed out of bounds.
    if not math.isfinite(norm):
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    for x in field.ravel():
        k = int((x - lo) * norm)
        if k == bins:
            k = bins - 1
        # The float index can be off by one at an edge; edges decide, as in NumPy.
        if x < edges[k]:
            k -= 1
        elif k != bins - 1 and x >= edges[k + 1]:
            k += 1
        counts[k] += 1
    total = field.size
    entropy = 0.0
    for k in range(bins):
        if counts[k]:
            p = counts[k] / total
            entropy -= p * math.log2(p)
    return entropy


@numba.njit(**STRICT)
def _field_features(field: FloatArray, sizes: NDArray[np.int64], out: FloatArray) -> None:
    """Every non-temporal feature of one final field (volts), in ALL_FEATURE_NAMES order."""
    active = field > THRESHOLD_LOW
    out[0], out[1] = _box_dimension(active, sizes)
    n = field.size
    mean = 0.0
    lo = np.inf
    hi = -np.inf
    for x in field.ravel():
        v = x * 1000.0
        mean += v
        lo = min(lo, v)
        hi = max(hi, v)
    mean /= n
    m2 = m3 = m4 = 0.0
    for x in field.ravel():
        z = x * 1000.0 - mean
        z2 = z * z
        m2 += z2
        m3 += z2 * z
        m4 += z2 * z2
    std = math.sqrt(m2 / n)
    out[2], out[3], out[4], out[5] = lo, hi, mean, std
    if std <= 1e-10:
        out[6] = out[7] = 0.0
    else:
        out[6] = (m3 / n) / std**3
        out[7] = (m4 / n) / std**4 - 3.0
    low = _component_sizes(active)
    out[12] = active.sum() / n
    out[13] = low.shape[0]
    out[14] = _component_sizes(field > THRESHOLD_MED).shape[0]
    out[15] = _component_sizes(field > THRESHOLD_HIGH).shape[0]
    out[16] = low.max() if low.shape[0] else 0
    out[17] = low.std() if low.shape[0] >= 2 else 0.0
    top = field > _percentile_linear(field.ravel(), RELATIVE_PERCENTILE)
    out[18], out[19] = _box_dimension(top, sizes)
    out[20] = _component_sizes(top).shape[0]
    out[21] = _entropy_bits(field, ENTROPY_BINS)


# ---------------------------------------------------------------------------
# Public wrappers


def compute_features(field: FloatArray, trace: StepTrace) -> dict[str, float | int]:
    """All features (canonical then extended) of a run from its final field and trace."""
    _check_run_arrays(field, trace)
    values = np.empty(len(ALL_FEATURE_NAMES))
    # numba compiles read-only and writable arrays separately; a read-only view
    # (no copy) gives every caller the one specialisation simulate() already uses.
    frozen = np.ascontiguousarray(field).view()
    frozen.setflags(write=False)
    _field_features(frozen, box_sizes(field.shape[0]), values)
    _temporal(trace, values[_TEMPORAL_SLOT : _TEMPORAL_SLOT + _TEMPORAL_COUNT])
    return {
        name: int(value) if name in COUNT_FEATURES else float(value)
        for name, value in zip(ALL_FEATURE_NAMES, values, strict=True)
    }


def _check_run_arrays(field: object, trace: object) -> None:
    """Shapes the kernels index without bounds checks: a mismatch read past an array's end."""
    if not isinstance(field, np.ndarray) or field.dtype != np.float64:
        kind = field.dtype if isinstance(field, np.ndarray) else type(field).__name__
        raise ParamError(f"field of type {kind} is invalid; allowed: a float64 numpy array")
    if field.ndim != 2 or field.shape[0] != field.shape[1] or field.shape[0] < 2:
        raise ParamError(f"field shape {field.shape} is invalid; allowed: (N, N) with N >= 2")
    if not isinstance(trace, StepTrace):
        raise ParamError(f"trace of type {type(trace).__name__} is invalid; allowed: a StepTrace")
    steps = trace.energy.shape[0] if isinstance(trace.energy, np.ndarray) else -1
    for name, array in zip(StepTrace._fields, trace, strict=True):
        length = steps if name == "energy" else max(steps - 1, 0)
        if (
            not isinstance(array, np.ndarray)
            or array.dtype != np.float64
            or array.shape != (length,)
        ):
            what = (
                f"{array.dtype} array of shape {array.shape}"
                if isinstance(array, np.ndarray)
                else type(array).__name__
            )
            raise ParamError(
                f"trace.{name} ({what}) is invalid; allowed: a float64 array of "
                f"shape ({length},) for {steps} steps (energy has one value per step, the "
                "others one per pair of steps)"
            )


def features_from_history(array: NDArray[np.floating]) -> dict[str, float | int]:
    """The 18 canonical features of a (T, N, N) history or a single (N, N) field, in volts."""
    history = _as_history(array)
    everything = compute_features(history[-1], trace_from_history(history))
    return {name: everything[name] for name in FEATURE_NAMES}


def _as_history(array: object) -> FloatArray:
    if not isinstance(array, np.ndarray):
        raise ParamError(f"history must be a numpy array, got {type(array).__name__}")
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise ParamError(f"history dtype {array.dtype} is not numeric; allowed: float or int")
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[1] != array.shape[2]:
        raise ParamError(
            f"history shape {array.shape} is not (T, N, N) or (N, N); allowed: square frames"
        )
    if array.shape[0] < 1 or array.shape[1] < 2:
        raise ParamError(f"history shape {array.shape} is empty; allowed: T >= 1 and N >= 2")
    history = np.ascontiguousarray(array, dtype=np.float64)
    if not np.isfinite(history).all():
        frame = int(np.argwhere(~np.isfinite(history))[0][0])
        raise ParamError(f"history holds NaN or Inf (first in frame {frame}); allowed: finite")
    return history
