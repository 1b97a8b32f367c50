"""Figures: decoded as a viewer decodes them (pillow for PNG, an XML parser for SVG)."""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import dagster as dg
import numpy as np
import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import NDArray
from PIL import Image

from mfn_pipeline import cli
from mfn_pipeline.lib import figures
from mfn_pipeline.lib.settings import Environment
from mfn_pipeline.lib.warehouse import Warehouse

from .conftest import build, placed, project_settings

SVG = "{http://www.w3.org/2000/svg}"
# Dagster keeps every materialization's metadata in its event log: an inline picture
# should stay a small part of an event.
METADATA_PNG_BUDGET_BYTES = 64 * 1024


def field_volts(n: int = 16, seed: int = 7) -> NDArray[np.float64]:
    """A field within the model's clamp, in volts as stored, with one hottest and one
    coldest cell."""
    values = np.random.default_rng(seed).uniform(-0.09, 0.035, (n, n))
    values[2, 5], values[n - 3, 1] = 0.040, -0.095
    return values


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def expected_size(figure: Figure) -> tuple[int, int]:
    width, height = figure.get_size_inches() * figure.dpi
    return round(width), round(height)


def pixel_at(pixels: NDArray[np.uint8], axes: Axes, x: float, y: float) -> NDArray[np.uint8]:
    """The picture's pixel at data point (x, y) of ``axes`` (display y runs upwards)."""
    column, row = axes.transData.transform((x, y))
    pixel: NDArray[np.uint8] = pixels[int(pixels.shape[0] - row), int(column)]
    return pixel


def texts(svg: bytes) -> list[str]:
    root = ElementTree.fromstring(svg)
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def test_field_png_has_cells_in_their_colours_and_a_colour_bar_in_mv() -> None:
    field = field_volts()
    figure = figures.field_figure(field, "small", 3)
    image = decoded(figures.render(figure, "png"))
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.size == expected_size(figure)
    pixels = np.asarray(image)
    field_axes = figure.axes[0]
    (drawn,) = field_axes.get_images()
    # The bar spans the field's own range, converted from volts to mV.
    assert drawn.get_clim() == pytest.approx((field.min() * 1000.0, field.max() * 1000.0))
    assert drawn.colorbar is not None
    assert drawn.colorbar.ax.get_ylabel() == "membrane potential (mV)"
    assert "small" in field_axes.get_title()
    assert "sim_id 3" in field_axes.get_title()
    # Each cell is drawn in its value's colour: the hottest cell in the top colour of
    # the bar, the coldest in the bottom one (row 0 at the top, as the array reads).
    for (row, column), end in (
        (np.unravel_index(np.argmax(field), field.shape), 1.0),
        (np.unravel_index(np.argmin(field), field.shape), 0.0),
    ):
        colour = np.rint(np.asarray(drawn.get_cmap()(end)) * 255)
        drawn_colour = pixel_at(pixels, field_axes, float(column), float(row))
        assert np.abs(drawn_colour - colour).max() <= 1
    # The bar itself shows both ends of the colour map.
    bar = drawn.colorbar.ax
    for value, end in ((field.min() * 1000.0, 0.0), (field.max() * 1000.0, 1.0)):
        inside = value + (0.5 - end) * 0.02 * (field.max() - field.min()) * 1000.0
        colour = np.rint(np.asarray(drawn.get_cmap()(end)) * 255)
        assert np.abs(pixel_at(pixels, bar, 0.5, inside) - colour).max() <= 8


def test_field_svg_carries_its_labels_as_text() -> None:
    svg = figures.render(figures.field_figure(field_volts(), "transition", 40), "svg")
    words = texts(svg)
    assert "membrane potential (mV)" in words
    assert any("transition" in w and "sim_id 40" in w for w in words)
    assert figures.render(figures.field_figure(field_volts(), "transition", 40), "svg") == svg


@pytest.mark.parametrize(
    "bad", [np.zeros(5), np.zeros((0, 0)), np.array([[0.0, np.nan], [0.0, 0.0]])]
)
def test_field_that_cannot_be_drawn_is_refused(bad: NDArray[np.float64]) -> None:
    with pytest.raises(figures.FigureError, match="allowed: a finite 2-D array"):
        figures.field_figure(bad, "small", 0)


def scatter_data() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.repeat([0.05, 0.06, 0.08], 4)
    y = 1.5 + 2.0 * x + np.random.default_rng(3).normal(0.0, 0.01, x.size)
    return x, y


def test_scatter_svg_has_one_dot_per_run_a_mean_line_and_labels() -> None:
    x, y = scatter_data()
    svg = figures.render(figures.scatter_figure(x, y, "r_activator", "D_box", "D_box vs r"), "svg")
    root = ElementTree.fromstring(svg)
    groups = {node.get("id"): node for node in root.iter(f"{SVG}g")}
    assert len(list(groups["runs"].iter(f"{SVG}use"))) == x.size
    (line,) = groups["means"].iter(f"{SVG}path")
    assert line.get("d", "").count("L") == np.unique(x).size - 1
    words = texts(svg)
    assert {"r_activator", "D_box", "D_box vs r"} <= set(words)


@pytest.mark.parametrize(
    "x",
    [
        np.random.default_rng(5).uniform(0.0, 1.0, 12),  # continuous: every value once
        np.repeat(np.arange(6.0), 2),  # half the runs share a value with another: not a sweep
        np.full(12, 0.15),  # one value: no line to join
    ],
)
def test_scatter_draws_no_mean_line_unless_x_is_a_sweep(x: NDArray[np.float64]) -> None:
    y = 1.5 + 2.0 * x
    svg = figures.render(figures.scatter_figure(x, y, "V_mean", "D_box", "D_box vs V"), "svg")
    ids = {node.get("id") for node in ElementTree.fromstring(svg).iter(f"{SVG}g")}
    assert "runs" in ids
    assert "means" not in ids
    assert "mean at each value" not in texts(svg)


def test_scatter_png_decodes_at_the_figure_size() -> None:
    x, y = scatter_data()
    figure = figures.scatter_figure(x, y, "r_activator", "D_box", "D_box vs r")
    image = decoded(figures.render(figure, "png"))
    assert image.size == expected_size(figure)
    # Not blank: the dots' colour is there, on a white ground.
    pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 2
    assert (pixels == 255).all(axis=1).any()


def test_scatter_refuses_unequal_or_non_finite_columns() -> None:
    with pytest.raises(figures.FigureError, match="equal in length"):
        figures.scatter_figure(np.zeros(3), np.zeros(2), "a", "b", "t")
    with pytest.raises(figures.FigureError, match="finite"):
        figures.scatter_figure(np.array([0.0, np.inf]), np.zeros(2), "a", "b", "t")


def test_histograms_label_each_panel_and_bin_over_its_own_range() -> None:
    constant, spread = np.full(10, 1.0), np.linspace(1.5, 1.7, 10)
    figure = figures.histograms_figure([("D_box", constant), ("D_box_rel", spread)], "title")
    left, right = figure.axes
    assert (left.get_xlabel(), right.get_xlabel()) == ("D_box", "D_box_rel")
    assert left.get_ylabel() == right.get_ylabel() == "runs"

    def filled(axes: Axes) -> list[float]:
        return [
            h for h in (p.get_height() for p in axes.patches if isinstance(p, Rectangle)) if h > 0
        ]

    assert filled(left) == [constant.size]  # one full bar
    assert len(filled(right)) > 1
    assert sum(filled(right)) == spread.size
    image = decoded(figures.render(figure, "png"))
    assert image.size == expected_size(figure)


@pytest.mark.parametrize(
    ("column", "label"),
    [("V_mean", "V_mean (mV)"), ("D_box", "D_box (dimensionless)"), ("seed", "seed")],
)
def test_axis_labels_name_the_unit(column: str, label: str) -> None:
    assert figures.column_label(column) == label


def test_markdown_image_round_trips_the_png() -> None:
    png = figures.render(figures.field_figure(field_volts(), "small", 0), "png")
    markdown = figures.markdown_image(png, "caption")
    assert markdown.startswith("![caption](data:image/png;base64,")
    assert base64.b64decode(markdown.split("base64,", 1)[1].rstrip(")")) == png


@pytest.mark.parametrize("name", ["field.png", "FIELD.PNG", "plot.svg", "a.b.svg"])
def test_format_follows_the_extension(name: str) -> None:
    assert figures.format_of(Path(name)) == Path(name).suffix.lower().lstrip(".")


@pytest.mark.parametrize("name", ["field.jpg", "field", "plot.pdf", "out.parquet"])
def test_other_extensions_are_refused(name: str) -> None:
    with pytest.raises(figures.FigureError) as refused:
        figures.format_of(Path(name))
    message = str(refused.value)
    assert name in message
    assert "allowed: .png, .svg" in message
    assert "\n" not in message


# A real build of the small preset, then the pictures it and the command draw.


@pytest.fixture(scope="module")
def built_small(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Environment, dg.ExecuteInProcessResult]]:
    root = tmp_path_factory.mktemp("figures")
    environment = dataclasses.replace(
        project_settings().environment,
        warehouse=str(root / "warehouse"),
        catalog=root / "mfn.duckdb",
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = build("small", environment, instance)
        assert result.success
        yield environment, result


@pytest.fixture
def command(
    built_small: tuple[Environment, dg.ExecuteInProcessResult], monkeypatch: pytest.MonkeyPatch
) -> Environment:
    """The mfn command, pointed at the built warehouse and catalog."""
    environment = built_small[0]
    settings = placed(environment)
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    return environment


def embedded_png(markdown: str) -> Image.Image:
    encoded = markdown.split("data:image/png;base64,", 1)[1].split(")", 1)[0]
    assert len(base64.b64decode(encoded)) <= METADATA_PNG_BUDGET_BYTES
    return decoded(base64.b64decode(encoded))


def test_materializations_carry_pictures(
    built_small: tuple[Environment, dg.ExecuteInProcessResult],
) -> None:
    result = built_small[1]
    (runs,) = result.asset_materializations_for_node("simulation_runs")
    field_markdown = str(runs.metadata["sample_field"].value)
    assert "mV" in field_markdown
    field = np.asarray(embedded_png(field_markdown).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(field, axis=0)) > 16  # a field of many values, not a blank
    (features,) = result.asset_materializations_for_node("fractal_features")
    histograms = embedded_png(str(features.metadata["D_box_histograms"].value))
    assert histograms.width > histograms.height  # two panels side by side
    # small's D_box is constant (one bar) while D_box_rel spreads over several bins:
    # more pixel columns carry the right panel's bar colour than the left's.
    pixels = np.asarray(histograms.convert("RGB")).astype(np.int64)
    half = pixels.shape[1] // 2
    left = columns_in_colour(pixels[:, :half], figures.BARS[0])
    right = columns_in_colour(pixels[:, half:], figures.BARS[1])
    assert 0 < left < right


def columns_in_colour(pixels: NDArray[np.int64], colour: str) -> int:
    """How many pixel columns show ``colour`` (#rrggbb) somewhere."""
    rgb = np.rint(np.asarray(to_rgb(colour)) * 255)
    return int((np.abs(pixels - rgb) <= 2).all(axis=2).any(axis=0).sum())


def run(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(args, out), out.getvalue()


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_show_draws_the_stored_field(command: Environment, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"field{suffix}"
    code, text = run(["show", "small", "3", "--out", str(target)])
    assert code == cli.EXIT_OK
    stored = Warehouse(root=command.warehouse, catalog=str(command.catalog)).read(
        "simulation_runs", "small", ["sim_id", "grid_size", "field"]
    )
    row = stored.filter(pl.col("sim_id") == 3).row(0, named=True)
    n = row["grid_size"]
    field = np.asarray(row["field"]).reshape(n, n)
    assert f"{n}x{n}" in text
    assert f"{field.min() * 1000.0:.1f} to {field.max() * 1000.0:.1f} mV" in text
    expected = figures.render(figures.field_figure(field, "small", 3), figures.format_of(target))
    if suffix == ".svg":
        assert target.read_bytes() == expected
        assert "membrane potential (mV)" in texts(target.read_bytes())
    else:
        with Image.open(target) as image, decoded(expected) as drawn:
            assert image.size == drawn.size
            assert np.array_equal(np.asarray(image), np.asarray(drawn))


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_plot_draws_one_dot_per_run(command: Environment, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"plot{suffix}"
    code, _ = run(["plot", "small", "seed", "V_mean", "--out", str(target)])
    assert code == cli.EXIT_OK
    runs = (
        Warehouse(root=command.warehouse, catalog=str(command.catalog))
        .read("mfn_dataset", "small", ["seed"])
        .height
    )
    if suffix == ".svg":
        root = ElementTree.parse(target).getroot()
        groups = {node.get("id"): node for node in root.iter(f"{SVG}g")}
        assert len(list(groups["runs"].iter(f"{SVG}use"))) == runs
        words = texts(target.read_bytes())
        assert "seed" in words  # a seed has no unit
        assert "V_mean (mV)" in words
        assert any("V_mean against seed" in w for w in words)
    else:
        with Image.open(target) as image:
            assert image.format == "PNG"
            assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 2


@pytest.mark.parametrize("name", ["field.jpg", "field"])
@pytest.mark.parametrize("args", [["show", "small", "3"], ["plot", "small", "seed", "V_mean"]])
def test_command_refuses_other_extensions_before_reading(
    command: Environment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    args: list[str],
) -> None:
    target = tmp_path / name
    assert cli.main([*args, "--out", str(target)]) == cli.EXIT_USAGE
    error = capsys.readouterr().err
    assert str(target) in error
    assert "allowed: .png, .svg" in error
    assert error.count("\n") == 1
    assert not target.exists()


@pytest.mark.parametrize("args", [["show", "small", "0"], ["plot", "small", "alpha", "D_box"]])
def test_command_writes_no_figure_into_the_warehouse(command: Environment, args: list[str]) -> None:
    warehouse = Path(command.warehouse)
    before = sorted(warehouse.rglob("*"))
    target = warehouse / "mfn_dataset" / "figure.png"
    code, _ = run([*args, "--out", str(target)])
    assert code == cli.EXIT_USAGE
    assert sorted(warehouse.rglob("*")) == before
