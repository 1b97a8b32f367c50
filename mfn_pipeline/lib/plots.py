"""Scatter plots of one data-set column against another, as standalone SVG.

SVG keeps text and axes crisp in a README or a browser without a plotting library:
each run is a dot, and the mean at each distinct x value is joined by a line.
"""

from __future__ import annotations

from html import escape

import numpy as np
from numpy.typing import NDArray

WIDTH, HEIGHT = 640, 400
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 40, 55
TICKS = 5
DOT, LINE = "#3b528b", "#21918c"


def _ticks(low: float, high: float) -> NDArray[np.float64]:
    return np.linspace(low, high, TICKS)


def _span(values: NDArray[np.float64]) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * 0.05 or max(abs(low) * 0.05, 0.5)
    return low - pad, high + pad


def scatter_svg(
    x: NDArray[np.float64], y: NDArray[np.float64], x_label: str, y_label: str, title: str
) -> str:
    """Dots of (x, y) with the mean of y at each distinct x joined by a line."""
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"x and y must be non-empty and equal in length, got {x.size}, {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite to be plotted")
    x_low, x_high = _span(x)
    y_low, y_high = _span(y)
    inner_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    inner_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def px(value: float) -> float:
        return MARGIN_LEFT + (value - x_low) / (x_high - x_low) * inner_w

    def py(value: float) -> float:
        return MARGIN_TOP + (y_high - value) / (y_high - y_low) * inner_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{inner_w}" height="{inner_h}" '
        'fill="none" stroke="#444"/>',
    ]
    for value in _ticks(x_low, x_high):
        parts.append(
            f'<text x="{px(value):.1f}" y="{HEIGHT - MARGIN_BOTTOM + 18}" '
            f'text-anchor="middle">{value:.3g}</text>'
        )
    for value in _ticks(y_low, y_high):
        parts.append(
            f'<text x="{MARGIN_LEFT - 8}" y="{py(value) + 4:.1f}" '
            f'text-anchor="end">{value:.3g}</text>'
        )
    parts.append(
        f'<text x="{MARGIN_LEFT + inner_w / 2}" y="{HEIGHT - 12}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="16" y="{MARGIN_TOP + inner_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {MARGIN_TOP + inner_h / 2})">{escape(y_label)}</text>'
    )
    parts += [
        f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="3" fill="{DOT}" fill-opacity="0.45"/>'
        for a, b in zip(x.tolist(), y.tolist(), strict=True)
    ]
    levels = np.unique(x)
    means = [float(y[x == level].mean()) for level in levels]
    path = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(levels.tolist(), means, strict=True))
    parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2.5"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
