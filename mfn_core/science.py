"""Physical and fractal sanity references (docs/model.md, section 6).

The Nernst potential, an iterated-function-system (IFS) generator and box-counting
of point sets: known answers that the pipeline checks the library against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from mfn_core._jit import STRICT
from mfn_core.errors import ParamError
from mfn_core.features import _box_dimension, box_sizes
from mfn_core.params import is_finite_number, shown

GAS_CONSTANT = 8.314  # J / (mol K)
FARADAY = 96485.33  # C / mol
BODY_TEMPERATURE_K = 310.0
MIN_CONCENTRATION = 1e-6  # mol / L; keeps the logarithm finite
IFS_SCALE_RANGE = (0.2, 0.5)
IFS_BURN_IN = 100  # chaos-game iterations dropped before the points settle on the attractor
MAX_ION_CHARGE = 8  # well past any ion's charge; a larger z is a typing mistake

FloatArray = NDArray[np.float64]


def nernst_potential(
    z: int, c_out: float, c_in: float, temperature_k: float = BODY_TEMPERATURE_K
) -> float:
    """Equilibrium potential in volts, E = RT/(zF) ln(c_out/c_in); concentrations in mol/L."""
    if isinstance(z, bool) or not isinstance(z, int) or z == 0 or abs(z) > MAX_ION_CHARGE:
        raise ParamError(
            f"z = {shown(z)} is invalid; allowed: a non-zero integer ion charge in "
            f"[-{MAX_ION_CHARGE}, {MAX_ION_CHARGE}]"
        )
    for name, value in (("c_out", c_out), ("c_in", c_in)):
        if not is_finite_number(value) or value < 0:
            raise ParamError(
                f"{name} = {shown(value)} is invalid; allowed: a finite number >= 0 mol/L"
            )
    if not is_finite_number(temperature_k) or temperature_k <= 0:
        raise ParamError(
            f"temperature_k = {shown(temperature_k)} is invalid; allowed: a finite number > 0 K"
        )
    ratio = max(c_out, MIN_CONCENTRATION) / max(c_in, MIN_CONCENTRATION)
    return GAS_CONSTANT * temperature_k / (z * FARADAY) * math.log(ratio)


@dataclass(frozen=True)
class IFSResult:
    """Points of an IFS attractor and the mean ln|det J| of the maps the chaos game used."""

    points: FloatArray  # (num_points, 2)
    mean_log_det: float


def random_contractive_maps(num_maps: int, seed: int) -> FloatArray:
    """Affine maps x -> s R(theta) x + t with s in [0.2, 0.5], as (num_maps, 2, 3) arrays."""
    _check_count("num_maps", num_maps, 1, 64)
    rng = np.random.default_rng(_check_count("seed", seed, 0, 2**63 - 1))
    maps = np.empty((num_maps, 2, 3))
    for k in range(num_maps):
        scale = rng.uniform(*IFS_SCALE_RANGE)
        theta = rng.uniform(0.0, 2.0 * math.pi)
        cos, sin = math.cos(theta), math.sin(theta)
        maps[k, :, :2] = scale * np.array([[cos, -sin], [sin, cos]])
        maps[k, :, 2] = rng.uniform(-1.0, 1.0, size=2)
    return maps


@numba.njit(**STRICT)
def _chaos_game(
    maps: FloatArray, choices: NDArray[np.int64], burn_in: int, points: FloatArray
) -> float:
    log_dets = np.empty(maps.shape[0])
    for k in range(maps.shape[0]):
        det = maps[k, 0, 0] * maps[k, 1, 1] - maps[k, 0, 1] * maps[k, 1, 0]
        log_dets[k] = math.log(abs(det))
    x = 0.0
    y = 0.0
    total = 0.0
    for step in range(choices.shape[0]):
        m = maps[choices[step]]
        x, y = m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]
        total += log_dets[choices[step]]
        if step >= burn_in:
            points[step - burn_in, 0] = x
            points[step - burn_in, 1] = y
    return float(total / choices.shape[0])


def iterate_ifs(maps: FloatArray, num_points: int, seed: int) -> IFSResult:
    """Run the chaos game on ``maps`` ((k, 2, 3) affine maps) and return the attractor."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[1:] != (2, 3) or maps.shape[0] < 1:
        raise ParamError(f"maps shape {maps.shape} is invalid; allowed: (k, 2, 3) with k >= 1")
    if not np.isfinite(maps).all():
        raise ParamError("maps hold NaN or Inf; allowed: finite affine maps")
    dets = np.abs(maps[:, 0, 0] * maps[:, 1, 1] - maps[:, 0, 1] * maps[:, 1, 0])
    if (dets == 0).any() or (dets >= 1).any():
        raise ParamError(f"maps have |det J| = {dets.tolist()}; allowed: 0 < |det J| < 1")
    _check_count("num_points", num_points, 1, 10_000_000)
    rng = np.random.default_rng(_check_count("seed", seed, 0, 2**63 - 1))
    choices = rng.integers(0, maps.shape[0], size=num_points + IFS_BURN_IN)
    points = np.empty((num_points, 2))
    mean_log_det = _chaos_game(maps, choices, IFS_BURN_IN, points)
    return IFSResult(points, float(mean_log_det))


def generate_ifs(num_points: int = 20_000, num_maps: int = 4, seed: int = 0) -> IFSResult:
    """A random contractive IFS (the 4.1 generator) and its attractor."""
    return iterate_ifs(random_contractive_maps(num_maps, seed), num_points, seed)


def point_box_dimension(points: FloatArray, min_level: int = 2, max_level: int = 7) -> float:
    """Box-counting dimension of a 2-D point set.

    The points' bounding square is cut into 2^k x 2^k boxes for k in
    [min_level, max_level]; the slope of ln(occupied boxes) against ln(2^k) is returned.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
        raise ParamError(f"points shape {points.shape} is invalid; allowed: (n, 2) with n >= 2")
    if not np.isfinite(points).all():
        raise ParamError("points hold NaN or Inf; allowed: finite coordinates")
    if not 0 <= min_level < max_level <= 16:
        raise ParamError(
            f"levels [{shown(min_level)}, {shown(max_level)}] are invalid; "
            "allowed: 0 <= min < max <= 16"
        )
    low = points.min(axis=0)
    extent = float((points.max(axis=0) - low).max())
    if extent == 0:
        raise ParamError("points all coincide; allowed: a set with positive extent")
    unit = (points - low) / extent
    levels = np.arange(min_level, max_level + 1)
    counts = []
    for level in levels:
        boxes = np.minimum((unit * 2**level).astype(np.int64), 2**level - 1)
        counts.append(len(np.unique(boxes[:, 0] * 2**level + boxes[:, 1])))
    slope, _ = np.polyfit(levels * math.log(2), np.log(counts), 1)
    return float(slope)


def box_dimension(mask: NDArray[np.bool_]) -> tuple[float, float]:
    """D_box and its fit R^2 for a square boolean grid, exactly as the D_box feature."""
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ParamError(
            f"mask of dtype {mask.dtype} and shape {mask.shape} is invalid; "
            "allowed: a square boolean array"
        )
    if mask.shape[0] < 2:
        raise ParamError(f"mask shape {mask.shape} is too small; allowed: N >= 2")
    d, r2 = _box_dimension(np.ascontiguousarray(mask), box_sizes(mask.shape[0]))
    return float(d), float(r2)


def _check_count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParamError(
            f"{name} = {shown(value)} is invalid; allowed: an integer in [{low}, {high}]"
        )
    return value
