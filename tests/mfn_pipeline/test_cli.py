"""The mfn command, run as users run it: against a real catalog and a real Dagster instance."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from mfn_pipeline import cli
from mfn_pipeline.defs import assets
from mfn_pipeline.defs.partitions import SETTINGS
from mfn_pipeline.lib.settings import Environment

from .conftest import PROJECT


def use(environment: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the command at this environment (its own warehouse and catalog)."""
    settings = dataclasses.replace(SETTINGS, environment=environment)
    monkeypatch.setattr(cli, "_settings", lambda: settings)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Environment, Path]]:
    """`mfn build small` once into a private warehouse, catalog and Dagster home."""
    root = tmp_path_factory.mktemp("cli")
    environment = dataclasses.replace(
        SETTINGS.environment, warehouse=str(root / "warehouse"), catalog=root / "mfn.duckdb"
    )
    (root / "home").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(root / "home"))
        use(environment, patch)
        out = io.StringIO()
        assert cli.main(["build", "small"], out) == cli.EXIT_OK
        assert "built" in out.getvalue()
        yield environment, root / "home"


@pytest.fixture
def built(built_once: tuple[Environment, Path], monkeypatch: pytest.MonkeyPatch) -> Environment:
    environment, home = built_once
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    use(environment, monkeypatch)
    return environment


def run(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return cli.main(args, out), out.getvalue()


def test_presets_lists_every_preset() -> None:
    code, text = run(["presets"])
    assert code == 0
    for name, preset in SETTINGS.presets.items():
        assert name in text
        assert f"{preset.grid_size}x{preset.grid_size}" in text
    assert "r_activator: 0.05, 0.055" in text


def test_build_records_the_run_in_the_instance(built_once: tuple[Environment, Path]) -> None:
    with dg.DagsterInstance.from_config(str(built_once[1])) as instance:
        runs = instance.get_runs()
    assert len(runs) >= 1
    assert {run.tags.get("dagster/partition") for run in runs} == {"small"}


def test_build_shows_progress_on_stderr(
    built: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["build", "small"], io.StringIO()) == 0
    err = capsys.readouterr().err
    assert "10/10 runs" in err
    assert "runs/s" in err


def test_build_fails_and_names_each_failed_check(
    built: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = SETTINGS.presets["small"]
    expect = dataclasses.replace(
        small.expect,
        ranges={**small.expect.ranges, "V_mean": (0.0, 1.0)},
        constant={k: v for k, v in small.expect.constant.items() if k != "f_active"},
    )
    monkeypatch.setitem(
        SETTINGS.presets,
        "small",
        dataclasses.replace(small, expect=expect),
    )
    code, text = run(["build", "small"])
    assert code == cli.EXIT_FAILURE
    assert "CHECKS FAILED" in text
    lines = text.splitlines()
    assert (
        "FAILED  small: check mfn_dataset.expected_value_ranges: V_mean: 10 row(s) outside [0, 1]"
        in "\n".join(lines)
    )
    # Warnings are listed too, but do not fail the build on their own.
    assert any(
        line.startswith("warning small: check fractal_features.no_degenerate_feature_columns")
        and "f_active = 0.0" in line
        for line in lines
    )
    monkeypatch.setitem(SETTINGS.presets, "small", small)
    assert run(["build", "small"])[0] == cli.EXIT_OK


def test_build_names_the_step_that_failed_and_why(
    built: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below the one second a configuration file can set, so the sweep cannot finish in time.
    limits = dataclasses.replace(built.limits, wall_clock_s=1e-6)  # type: ignore[arg-type]
    hurried = dataclasses.replace(built, limits=limits)
    use(hurried, monkeypatch)
    code, text = run(["build", "small"])
    assert code == cli.EXIT_FAILURE
    (line,) = [line for line in text.splitlines() if line.startswith("FAILED  small: step")]
    assert line.startswith("FAILED  small: step simulation_runs: preset small: the sweep passed")
    assert "wall-clock limit" in line


def test_build_names_the_error_under_dagsters_wrapper(
    built: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> pl.DataFrame:
        raise ZeroDivisionError("the features broke")

    monkeypatch.setattr(assets, "features_table", broken)
    code, text = run(["build", "small"])
    assert code == cli.EXIT_FAILURE
    assert "FAILED  small: step fractal_features: ZeroDivisionError: the features broke" in text


def test_sql_prints_an_aligned_table(built: Environment) -> None:
    code, text = run(["sql", "SELECT preset, count(*) AS n FROM dataset GROUP BY preset"])
    assert code == 0
    assert "small" in text
    assert "10" in text


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_sql_writes_files(built: Environment, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    code, _ = run(
        ["sql", "SELECT sim_id FROM dataset ORDER BY sim_id", "--format", fmt, "--out", str(target)]
    )
    assert code == 0
    if fmt == "csv":
        frame = pl.read_csv(target)
    elif fmt == "json":
        frame = pl.read_json(target)
    else:
        frame = pl.read_parquet(target)
    assert frame["sim_id"].to_list() == list(range(10))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("CREATE TABLE t AS SELECT 1", "CREATE statements are refused"),
        ("DROP VIEW dataset", "DROP statements are refused"),
        ("COPY (SELECT 1) TO '/tmp/mfn-copy.csv'", "COPY statements are refused"),
        ("ATTACH '/tmp/other.duckdb'", "ATTACH statements are refused"),
        ("SELECT 1; SELECT 2", "got 2 statements"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("INSERT INTO mfn_catalog_info VALUES ('x')", "INSERT statements are refused"),
        ("UPDATE mfn_catalog_info SET signature = 'x'", "UPDATE statements are refused"),
        ("DELETE FROM mfn_catalog_info", "DELETE statements are refused"),
        ("INSTALL httpfs", "LOAD statements are refused"),  # DuckDB files INSTALL as LOAD
        ("LOAD httpfs", "LOAD statements are refused"),
        ("PRAGMA enable_external_access", "PRAGMA statements are refused"),
        ("CALL pragma_version()", "CALL statements are refused"),
        ("EXPORT DATABASE '/tmp/mfn-export'", "EXPORT statements are refused"),
        ("DETACH mfn", "DETACH statements are refused"),
        ("SELECT 1; DROP VIEW dataset", "got 2 statements"),
        ("SELECT * FROM read_text('/etc/passwd')", "Permission Error"),
        ("SELECT * FROM read_parquet('/etc/*.parquet')", "Permission Error"),
        ("SELECT * FROM read_csv_auto('/root/.bashrc')", "Permission Error"),
        ("SELECT * FROM glob('/etc/*')", "Permission Error"),
        ("SELECT * FROM 'https://example.com/x.csv'", "Permission Error"),
        ("SELECT * FROM sqlite_scan('/tmp/x.db', 't')", "the query failed: Catalog Error"),
        ("SELECT no_such_column FROM dataset", "the query failed: Binder Error"),
    ],
)
def test_sql_refuses_anything_but_reading_the_catalog(
    built: Environment, query: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = built.catalog.read_bytes()
    code, _ = run(["sql", query])
    assert code == cli.EXIT_FAILURE
    assert message in capsys.readouterr().err
    assert built.catalog.read_bytes() == before
    assert not Path("/tmp/mfn-copy.csv").exists()
    assert not Path("/tmp/mfn-export").exists()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_the_dataset(built: Environment, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"small.{fmt}"
    code, text = run(["export", "small", "--format", fmt, "--out", str(target)])
    assert code == 0
    assert "10 rows" in text
    frame = pl.read_parquet(target) if fmt == "parquet" else pl.read_csv(target)
    assert frame.height == 10
    assert "D_box_rel" in frame.columns


def test_unknown_preset_is_a_usage_error_listing_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["export", "nope", "--out", "x.parquet"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err
    assert "small" in err
    assert "transition" in err


def test_console_script_help_on_every_command() -> None:
    mfn = Path(sys.executable).with_name("mfn")
    if not mfn.exists():  # an older editable install: install the entry point now
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(PROJECT)],
            check=True,
        )
    for command in ([], ["presets"], ["build"], ["sql"], ["export"], ["show"], ["plot"]):
        result = subprocess.run(
            [str(mfn), *command, "--help"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ},
        )
        assert result.returncode == 0, result.stderr
        assert "usage: mfn" in result.stdout
    bad = subprocess.run([str(mfn), "frobnicate"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2


def test_show_draws_the_final_field(built: Environment, tmp_path: Path) -> None:
    target = tmp_path / "field.png"
    code, text = run(["show", "small", "3", "--out", str(target)])
    assert code == 0
    assert "32x32" in text
    with Image.open(target) as image:
        assert image.size == (256, 256)  # 32 cells x 8 pixels
        pixels = np.asarray(image.convert("RGB"))
    stored = pl.read_parquet(Path(built.warehouse) / "simulation_runs" / "small.parquet")
    field = np.asarray(stored.filter(pl.col("sim_id") == 3)["field"][0]).reshape(32, 32)
    hottest = np.unravel_index(np.argmax(field), field.shape)
    coldest = np.unravel_index(np.argmin(field), field.shape)
    assert tuple(pixels[hottest[0] * 8, hottest[1] * 8]) == (253, 231, 37)
    assert tuple(pixels[coldest[0] * 8, coldest[1] * 8]) == (68, 1, 84)


def test_show_unknown_run_lists_the_range(
    built: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["show", "small", "99"]) == cli.EXIT_USAGE
    assert "allowed: 0..9" in capsys.readouterr().err


def test_plot_writes_an_svg_with_one_dot_per_run(built: Environment, tmp_path: Path) -> None:
    target = tmp_path / "plot.svg"
    code, _ = run(["plot", "small", "seed", "V_mean", "--out", str(target)])
    assert code == 0
    root = ElementTree.parse(target).getroot()
    circles = root.findall("{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 10
    assert root.findall("{http://www.w3.org/2000/svg}polyline")
    assert "V_mean against seed" in target.read_text()


def test_plot_unknown_column_lists_the_columns(
    built: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plot", "small", "seed", "D_bax"]) == cli.EXIT_USAGE
    assert "'D_bax' is not a data set column; allowed: sim_id" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["sql", "export", "show", "plot"])
def test_no_out_file_lands_in_the_warehouse_or_over_the_catalog(
    built: Environment, command: str
) -> None:
    args = {
        "sql": ["sql", "SELECT * FROM dataset", "--format", "parquet"],
        "export": ["export", "small"],
        "show": ["show", "small", "0"],
        "plot": ["plot", "small", "alpha", "D_box_rel"],
    }[command]
    warehouse = Path(built.warehouse)
    before = {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()}
    catalog = built.catalog.read_bytes()
    for target in (
        warehouse / "mfn_dataset" / "export.parquet",
        warehouse / "mfn_dataset" / "small.parquet",
        built.catalog,
    ):
        code, _ = run([*args, "--out", str(target)])
        assert code == cli.EXIT_USAGE
    assert {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()} == before
    assert built.catalog.read_bytes() == catalog
