"""Figures of fields and data-set columns, drawn off-screen with matplotlib's Agg renderer.

Every figure is its own :class:`~matplotlib.figure.Figure` on its own Agg canvas and
never passes through pyplot: pyplot keeps open figures in process-wide state, which a
Dagster step or a command has no reason to share or to clean up after.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import matplotlib as mpl
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

from mfn_core.columns import unit_of

ImageFormat = Literal["png", "svg"]
FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)
MV_PER_V = 1000.0  # the stored field is in volts; figures speak mV, as the V_* features do
DPI = 100
COLORMAP = "viridis"  # perceptually ordered: dark at the field's minimum, yellow at its maximum
DOT, LINE = "#3b528b", "#21918c"  # shades of the field's colour map, as are the bars
BARS = ("#3b528b", "#5ec962")
# A mean line joins the means of y at each x only where x is a swept setting: a few
# values (two at least, to join), each shared by several runs. Through a continuous x
# it would zig-zag through every dot.
MAX_MEAN_LEVELS = 20


class FigureError(ValueError):
    """A figure cannot be drawn or written as asked."""


def format_of(path: Path) -> ImageFormat:
    """The image format ``path`` asks for by its extension."""
    suffix = path.suffix.lower().removeprefix(".")
    for allowed in FORMATS:
        if suffix == allowed:
            return allowed
    raise FigureError(
        f"{path}: a figure cannot be written as {path.suffix or 'a file without extension'!r}; "
        f"allowed: {', '.join('.' + name for name in FORMATS)}"
    )


def render(figure: Figure, image_format: ImageFormat) -> bytes:
    """``figure`` encoded as PNG or SVG."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    if image_format == "png":
        figure.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()
    # SVG options exist only as rcParams: a fixed id salt and no date keep a redrawn
    # figure byte-identical, and text stays text (searchable, small) rather than paths.
    with mpl.rc_context({"svg.hashsalt": "mfn", "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def column_label(column: str) -> str:
    """An axis label: a stored column's name and, where it has one, its unit."""
    unit = unit_of(column)
    return f"{column} ({unit})" if unit else column


def field_figure(field_v: NDArray[np.float64], preset: str, sim_id: int) -> Figure:
    """The (N, N) field ``field_v`` (volts) as an image with a colour bar in mV."""
    if field_v.ndim != 2 or field_v.size == 0 or not np.isfinite(field_v).all():
        raise FigureError(
            f"field of shape {field_v.shape} cannot be drawn; allowed: a finite 2-D array"
        )
    figure = Figure(figsize=(4.4, 3.6), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    # Nearest-neighbour keeps every grid cell a crisp square, as the model sees it.
    image = axes.imshow(field_v * MV_PER_V, cmap=COLORMAP, interpolation="nearest")
    axes.set_title(f"{preset}, sim_id {sim_id}: final field")
    axes.set_xlabel("column (cell)")
    axes.set_ylabel("row (cell)")
    figure.colorbar(image, ax=axes, label="membrane potential (mV)")
    return figure


def scatter_figure(
    x: NDArray[np.float64], y: NDArray[np.float64], x_label: str, y_label: str, title: str
) -> Figure:
    """Dots of (x, y), one per run, and where x takes a few repeated values (a swept
    setting), the mean of y at each of them joined by a line."""
    if x.shape != y.shape or x.size == 0:
        raise FigureError(
            f"x and y must be non-empty and equal in length, got {x.size} and {y.size}"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise FigureError(f"{x_label} and {y_label} must be finite to be plotted")
    figure = Figure(figsize=(6.4, 4.0), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(x, y, s=18, color=DOT, alpha=0.45, linewidths=0, gid="runs", label="run")
    levels = np.unique(x)
    if 2 <= levels.size <= MAX_MEAN_LEVELS and 2 * levels.size < x.size:
        means = [float(y[x == level].mean()) for level in levels]
        axes.plot(levels, means, color=LINE, linewidth=2.5, gid="means", label="mean at each value")
    axes.set_title(title)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.legend(frameon=False)
    axes.grid(alpha=0.3)
    return figure


def histograms_figure(
    columns: Sequence[tuple[str, NDArray[np.float64]]], title: str, bins: int = 20
) -> Figure:
    """Side by side, a histogram of each (axis label, values) over the values' own range."""
    figure = Figure(figsize=(3.6 * len(columns), 2.8), dpi=DPI, layout="constrained")
    panels = figure.subplots(1, len(columns), squeeze=False)[0]
    for k, (axes, (x_label, values)) in enumerate(zip(panels, columns, strict=True)):
        finite = values[np.isfinite(values)]
        if finite.size:
            axes.hist(finite, bins=bins, color=BARS[k % len(BARS)])
        else:
            axes.text(0.5, 0.5, "no finite values", ha="center", transform=axes.transAxes)
        axes.set_xlabel(x_label)
        axes.set_ylabel("runs")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    return figure


def markdown_image(png: bytes, caption: str) -> str:
    """Markdown that shows ``png`` inline (the Dagster UI renders it in metadata)."""
    return f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def field_markdown(field_v: NDArray[np.float64], preset: str, sim_id: int) -> str:
    """The field's figure as inline Markdown, captioned with its range in mV."""
    low, high = float(field_v.min()) * MV_PER_V, float(field_v.max()) * MV_PER_V
    caption = f"{preset} sim_id {sim_id}: final field, {low:.1f} to {high:.1f} mV"
    png = render(field_figure(field_v, preset, sim_id), "png")
    return markdown_image(png, caption) + f"\n\n{caption}"


def histograms_markdown(frame: pl.DataFrame, columns: Sequence[str], preset: str) -> str:
    """Histograms of ``columns`` of ``frame`` as inline Markdown."""
    title = f"{', '.join(columns)} across preset {preset} ({frame.height} runs)"
    panels = [(column_label(name), frame[name].cast(pl.Float64).to_numpy()) for name in columns]
    png = render(histograms_figure(panels, title), "png")
    return markdown_image(png, title) + f"\n\n{title}; each over its own range."
