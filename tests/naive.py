"""Slow, obviously-correct NumPy twins of the compiled model and features.

Written straight from docs/model.md, one array operation per sentence of the spec, so a
reader can check them line by line. The compiled code in ``mfn_core`` is asserted
equal to these: bit for bit on the simulation, within 1e-9 relative on features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

V_MIN, V_MAX = -0.095, 0.040
Array = NDArray[np.float64]


@dataclass
class ReferenceRun:
    history: Array  # (T, N, N) frames 1..T, volts
    growth_events: int
    turing_activations: int
    clamping_events: int
    lyapunov: float


def laplacian(u: Array, boundary: str) -> Array:
    if boundary == "periodic":
        up, down = np.roll(u, 1, axis=0), np.roll(u, -1, axis=0)
        left, right = np.roll(u, 1, axis=1), np.roll(u, -1, axis=1)
        return ((up + down) + left) + right - 4 * u
    if boundary == "neumann":
        p = np.pad(u, 1, mode="edge")
    elif boundary == "dirichlet":
        p = np.pad(u, 1, mode="constant", constant_values=0.0)
    else:
        raise ValueError(boundary)
    up, down = p[:-2, 1:-1], p[2:, 1:-1]
    left, right = p[1:-1, :-2], p[1:-1, 2:]
    if boundary == "dirichlet":
        return ((down + up) + right) + left - 4 * u
    return ((up + down) + left) + right - 4 * u


def simulate(p: dict[str, Any]) -> ReferenceRun:
    N, T = p["grid_size"], p["steps"]
    rng = np.random.default_rng(p["seed"])
    V = rng.normal(-0.070, 0.005, size=(N, N))
    a = rng.uniform(0, 0.1, size=(N, N))
    i = rng.uniform(0, 0.1, size=(N, N))
    history = np.empty((T, N, N))
    growth = turing = clamped = 0
    for t in range(T):
        if rng.random() < p["spike_probability"]:
            row = rng.integers(0, N)
            col = rng.integers(0, N)
            V[row, col] += rng.normal(0.020, 0.005)
            growth += 1
        V = V + p["alpha"] * laplacian(V, p["boundary"])
        if p["turing_enabled"]:
            da = p["d_activator"] * laplacian(a, p["boundary"]) + p["r_activator"] * (
                a * (1 - a) - i
            )
            di = p["d_inhibitor"] * laplacian(i, p["boundary"]) + p["r_inhibitor"] * (a - i)
            a = a + da
            i = i + di
            active = a > p["turing_threshold"]
            V[active] += 0.005
            turing += int(active.sum())
            a = np.clip(a, 0, 1)
            i = np.clip(i, 0, 1)
        if p["quantum_jitter"]:
            V = V + rng.normal(0, np.sqrt(p["jitter_var"]), size=(N, N))
        clipped = np.clip(V, V_MIN, V_MAX)
        clamped += int((clipped != V).sum())
        V = clipped
        for name, arr in (("V", V), ("a", a), ("i", i)):
            if not np.isfinite(arr).all():
                raise FloatingPointError(f"step {t + 1}: {name} not finite")
        history[t] = V
    return ReferenceRun(history, growth, turing, clamped, lyapunov(history))


def lyapunov(history: Array) -> float:
    logs = []
    for t in range(1, len(history)):
        norm = float(np.linalg.norm(history[t] - history[t - 1]))
        if norm > 1e-10:
            logs.append(np.log(norm))
    return float(np.mean(logs)) if logs else 0.0


def box_sizes(N: int) -> list[int]:
    s_max = min(2 * 2 ** (5 - 1), N // 2)
    s_max = max(s_max, 2)
    return sorted({int(s) for s in np.geomspace(2, s_max, 5)})


def box_dimension(mask: NDArray[np.bool_]) -> tuple[float, float]:
    N = mask.shape[0]
    sizes, counts = [], []
    for s in box_sizes(N):
        m = N // s
        if m < 1:
            continue
        boxes = mask[: m * s, : m * s].reshape(m, s, m, s).any(axis=(1, 3))
        count = int(boxes.sum())
        if count > 0:
            sizes.append(s)
            counts.append(count)
    if len(sizes) < 2:
        return 0.0, 0.0
    x = np.log(1.0 / np.array(sizes, dtype=float))
    y = np.log(np.array(counts, dtype=float))
    slope, intercept = np.polyfit(x, y, 1)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    if ss_tot == 0:
        return float(slope), 0.0
    ss_res = float(((y - (slope * x + intercept)) ** 2).sum())
    return float(slope), float(np.clip(1 - ss_res / ss_tot, 0, 1))


def components(mask: NDArray[np.bool_]) -> list[int]:
    """Sizes of 4-connected components, by flood fill."""
    N, M = mask.shape
    seen = np.zeros_like(mask)
    sizes = []
    for r0 in range(N):
        for c0 in range(M):
            if not mask[r0, c0] or seen[r0, c0]:
                continue
            seen[r0, c0] = True
            stack, size = [(r0, c0)], 0
            while stack:
                r, c = stack.pop()
                size += 1
                for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                    if 0 <= rr < N and 0 <= cc < M and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        stack.append((rr, cc))
            sizes.append(size)
    return sizes


def features(history: Array) -> dict[str, float]:
    """The 18 canonical features from a (T, N, N) history in volts."""
    final = history[-1]
    T = history.shape[0]
    out: dict[str, float] = {}
    out["D_box"], out["D_r2"] = box_dimension(final > -0.060)
    mv = final * 1000
    out["V_min"], out["V_max"] = float(mv.min()), float(mv.max())
    out["V_mean"], out["V_std"] = float(mv.mean()), float(mv.std())
    if out["V_std"] <= 1e-10:
        out["V_skew"] = out["V_kurt"] = 0.0
    else:
        z = mv - mv.mean()
        out["V_skew"] = float((z**3).mean() / out["V_std"] ** 3)
        out["V_kurt"] = float((z**4).mean() / out["V_std"] ** 4 - 3)
    if T < 2:
        out["dV_mean"] = out["dV_max"] = out["T_stable"] = out["E_trend"] = 0.0
    else:
        frames = history * 1000
        d = np.abs(np.diff(frames, axis=0))
        out["dV_mean"], out["dV_max"] = float(d.mean()), float(d.max())
        s = d.reshape(T - 1, -1).std(axis=1)
        out["T_stable"] = float(T)
        if T > 10:
            run = 0
            for k, value in enumerate(s):
                run = run + 1 if value < 0.001 else 0
                if run == 10:
                    out["T_stable"] = float(k - 10 + 2)
                    break
        energy = (frames**2).sum(axis=(1, 2))
        out["E_trend"] = float(np.polyfit(np.arange(T, dtype=float), energy, 1)[0])
    low = components(final > -0.060)
    out["f_active"] = float((final > -0.060).mean())
    out["N_clusters_low"] = float(len(low))
    out["N_clusters_med"] = float(len(components(final > -0.050)))
    out["N_clusters_high"] = float(len(components(final > -0.040)))
    out["max_cluster_size"] = float(max(low, default=0))
    out["cluster_size_std"] = float(np.std(low)) if len(low) >= 2 else 0.0
    return out


def extended_features(final: Array) -> dict[str, float]:
    p90 = np.percentile(final, 90)
    top = final > p90
    d, r2 = box_dimension(top)
    out = {"D_box_rel": d, "D_r2_rel": r2, "N_clusters_rel": float(len(components(top)))}
    lo, hi = float(final.min()), float(final.max())
    if lo == hi or not np.isfinite(64 / (hi - lo)):
        # Constant, or a range too small for 64 finite-sized bins (NumPy refuses it).
        out["H_entropy"] = 0.0
    else:
        counts, _ = np.histogram(final, bins=64, range=(lo, hi))
        prob = counts[counts > 0] / counts.sum()
        out["H_entropy"] = float(-(prob * np.log2(prob)).sum())
    return out
