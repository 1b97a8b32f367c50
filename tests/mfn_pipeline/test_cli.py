"""The mfn command, run as users run it: against a real catalog and a real Dagster instance."""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import io
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
import pytest

from mfn_core.presets import preset_json_schema
from mfn_pipeline import cli
from mfn_pipeline.defs import assets
from mfn_pipeline.lib.settings import Environment, Settings, load_settings
from mfn_pipeline.lib.supervision import STARTED_BY_CLI, STARTED_BY_TAG
from mfn_pipeline.lib.warehouse import Warehouse

from .conftest import PROJECT, placed, project_settings


def use(
    environment: Environment, monkeypatch: pytest.MonkeyPatch, settings: Settings | None = None
) -> None:
    """Point the command at this environment (its own warehouse and catalog)."""
    chosen = placed(environment, settings)
    monkeypatch.setattr(cli, "_settings", lambda: chosen)


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Environment, Path]]:
    """`mfn build small` once into a private warehouse, catalog and Dagster home."""
    root = tmp_path_factory.mktemp("cli")
    environment = dataclasses.replace(
        project_settings().environment,
        warehouse=str(root / "warehouse"),
        catalog=root / "mfn.duckdb",
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
    for name, preset in project_settings().presets.items():
        assert name in text
        assert f"{preset.grid_size}x{preset.grid_size}" in text
    assert "r_activator: 0.05, 0.055" in text


def test_build_records_the_run_in_the_instance(built_once: tuple[Environment, Path]) -> None:
    with dg.DagsterInstance.from_config(str(built_once[1])) as instance:
        runs = instance.get_runs()
    assert len(runs) >= 1
    assert {run.tags.get("dagster/partition") for run in runs} == {"small"}
    assert {run.tags.get(STARTED_BY_TAG) for run in runs} == {STARTED_BY_CLI}


def test_build_shows_progress_on_stderr(
    built: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["build", "small"], io.StringIO()) == 0
    err = capsys.readouterr().err
    assert "small: 10/10 runs" in err
    assert "runs/s" in err
    assert "\r" not in err


def test_build_fails_and_names_each_failed_check(
    built: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = project_settings()
    small = settings.presets["small"]
    expect = dataclasses.replace(
        small.expect,
        ranges={**small.expect.ranges, "V_mean": (0.0, 1.0)},
        constant={k: v for k, v in small.expect.constant.items() if k != "f_active"},
    )
    strict = {**settings.presets, "small": dataclasses.replace(small, expect=expect)}
    use(built, monkeypatch, dataclasses.replace(settings, presets=strict))
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
    use(built, monkeypatch)
    assert run(["build", "small"])[0] == cli.EXIT_OK


def test_build_names_the_step_that_failed_and_why(
    built: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below the one second a configuration file can set, so the sweep cannot finish in time.
    limits = dataclasses.replace(built.limits, wall_clock_s=1e-6)
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
    if fmt == "parquet":  # the file says what each column means, as the warehouse's do
        schema = pq.read_schema(target)
        assert schema.field("V_mean").metadata[b"unit"] == b"mV"
        assert all(schema.field(name).metadata[b"description"] for name in schema.names)


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
    commands = ["presets", "build", "sql", "catalog", "export", "show", "plot", "schema"]
    for command in ([], *([name] for name in commands)):
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
    version = subprocess.run([str(mfn), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout == f"mfn {metadata.version('mfn')}\n"


def test_show_unknown_run_lists_the_range(
    built: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["show", "small", "99"]) == cli.EXIT_USAGE
    assert "allowed: 0..9" in capsys.readouterr().err


def test_plot_unknown_column_lists_the_columns(
    built: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plot", "small", "seed", "D_bax"]) == cli.EXIT_USAGE
    assert "'D_bax' is not a data set column; allowed: sim_id" in capsys.readouterr().err


@pytest.mark.parametrize("column", ["preset", "field_sha256"])
def test_plot_a_column_that_is_not_numeric_lists_the_numeric_ones(
    built: Environment, column: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.main(["plot", "small", column, "D_box", "--out", str(tmp_path / "p.png")])
    assert code == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"mfn plot: {column!r} is not numeric; allowed: sim_id, ")
    assert "D_box" in line
    assert "preset" not in line.split("allowed:")[1]
    assert not (tmp_path / "p.png").exists()


def test_plot_a_misspelt_column_suggests_the_closest(
    built: Environment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.main(["plot", "small", "D_bx", "V_mean", "--out", str(tmp_path / "p.svg")])
    assert code == cli.EXIT_USAGE
    assert capsys.readouterr().err.rstrip().endswith("did you mean 'D_box'?")


def test_build_names_each_preset_once(
    built_once: tuple[Environment, Path], built: Environment
) -> None:
    with dg.DagsterInstance.from_config(str(built_once[1])) as instance:
        before = len(instance.get_runs())
    code, text = run(["build", "small", "small"])
    assert code == cli.EXIT_OK
    assert sum(" small " in line and "built" in line for line in text.splitlines()) == 1
    with dg.DagsterInstance.from_config(str(built_once[1])) as instance:
        assert len(instance.get_runs()) == before + 1


@pytest.mark.parametrize(
    "args",
    [
        ["export", "small", "--format", "csv", "--out"],
        ["sql", "SELECT 1", "--format", "csv", "--out"],
    ],
)
@pytest.mark.parametrize("target", ["presets/small.yaml", "environments/dev.yaml"])
def test_no_out_file_lands_in_the_configuration(
    built: Environment,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    target: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A copy of the configuration, so a failure cannot spoil the project's own.
    shutil.copytree(PROJECT / "configs", tmp_path / "configs")
    use(built, monkeypatch, load_settings(config_dir=tmp_path / "configs"))
    before = (tmp_path / "configs" / target).read_bytes()
    assert cli.main([*args, str(tmp_path / "configs" / target)]) == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.splitlines()
    assert "lies inside the configuration folder" in line
    assert (tmp_path / "configs" / target).read_bytes() == before


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["export", "small", "--format", "csv", "--out", "{dir}"], "name.csv, name.json"),
        (["sql", "SELECT 1", "--out", "{dir}.csv"], "name.csv, name.json"),
        (["show", "small", "0", "--out", "{dir}.png"], "name.png, name.svg"),
        (["plot", "small", "alpha", "D_box", "--out", "{dir}.svg"], "name.png, name.svg"),
    ],
)
def test_an_out_folder_is_refused_as_a_folder(
    built: Environment,
    tmp_path: Path,
    args: list[str],
    allowed: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [arg.format(dir=tmp_path / "out") for arg in args]
    Path(args[-1]).mkdir()
    assert cli.main(args) == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.splitlines()
    assert f"--out {args[-1]} is a folder; name a file (allowed: {allowed}" in line


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
        Path(Warehouse(root=built.warehouse, catalog="").stored_file("mfn_dataset", "small").path),
        built.catalog,
    ):
        code, _ = run([*args, "--out", str(target)])
        assert code == cli.EXIT_USAGE
    assert {p: p.read_bytes() for p in warehouse.rglob("*") if p.is_file()} == before
    assert built.catalog.read_bytes() == catalog


# --- what the command shows on a terminal and elsewhere ------------------------------

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MFN = [sys.executable, "-m", "mfn_pipeline.cli"]


def private_environment(root: Path) -> dict[str, str]:
    """The process environment with a warehouse, catalog and Dagster home under ``root``,
    and no COLUMNS or LINES: the width comes from the terminal, if there is one."""
    (root / "home").mkdir(exist_ok=True)
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {
        **env,
        "MFN_WAREHOUSE": str(root / "warehouse"),
        "MFN_CATALOG": str(root / "mfn.duckdb"),
        "DAGSTER_HOME": str(root / "home"),
    }


def on_a_terminal(command: list[str], env: dict[str, str], columns: int) -> tuple[int, str]:
    """Exit status and everything ``command`` shows on a pseudo-terminal this wide."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    with subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=PROJECT
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                break
            if not chunk:
                break
            chunks.append(chunk)
    os.close(leader)
    return process.returncode, b"".join(chunks).decode()


def visible_lines(shown: str) -> list[str]:
    """The lines a terminal shows, without escape codes (the terminal ends lines with CR LF)."""
    return ANSI_ESCAPE.sub("", shown).replace("\r\n", "\n").split("\n")


def test_build_off_a_terminal_writes_plain_progress_lines(tmp_path: Path) -> None:
    # FORCE_COLOR, as some CI set it, does not turn a log into a terminal.
    env = {**private_environment(tmp_path), "FORCE_COLOR": "1"}
    done = subprocess.run(
        [*MFN, "build", "small"], env=env, cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert done.returncode == cli.EXIT_OK, done.stderr
    assert "\r" not in done.stderr + done.stdout
    assert "\x1b" not in done.stderr + done.stdout
    progress = [line for line in done.stderr.splitlines() if line.startswith("small: ")]
    assert [line.split()[1] for line in progress] == [f"{n}/10" for n in range(1, 11)]
    assert all(line.endswith(" s left") and " runs/s " in line for line in progress)
    assert "┆ built " in done.stdout


def test_build_interrupted_says_so_in_one_line(tmp_path: Path) -> None:
    with subprocess.Popen(
        [*MFN, "build", "small"],
        env=private_environment(tmp_path),
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        shown = []
        for line in process.stderr:
            shown.append(line)
            if line.startswith("small: 1/10 runs"):
                process.send_signal(signal.SIGINT)
                break
        rest, _ = process.communicate()
    err = "".join(shown) + _
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    told = [line for line in err.splitlines() if not line.startswith("small: ")]
    assert len(told) == 1, err
    assert told[0].startswith("mfn build: interrupted while building small; ")
    assert "Traceback" not in err + rest
    assert "FAILED" not in rest


def test_build_on_a_terminal_draws_a_bar_and_fits_the_summary_to_its_width(
    tmp_path: Path,
) -> None:
    code, shown = on_a_terminal([*MFN, "build", "small"], private_environment(tmp_path), 90)
    assert code == cli.EXIT_OK, shown
    assert "\r\x1b[2K" in shown  # the bar's line is erased and drawn again in place
    assert "━" in shown
    assert "10/10" in shown
    lines = visible_lines(shown)
    assert "small: 1/10 runs" not in shown  # no plain lines on a terminal
    table = [line for line in lines if line.startswith(("┌", "│", "╞", "└"))]
    assert any("built" in line for line in table)
    # Unwrapped, the summary is one line per row, wider than this terminal (its run id
    # alone is 36 characters): here its cells wrap onto more lines than 5.
    assert len(table) > 5
    assert max(len(line) for line in table) <= 90


def test_tables_fit_a_narrow_terminal_and_keep_rows_whole_elsewhere(tmp_path: Path) -> None:
    env = private_environment(tmp_path)
    piped = subprocess.run(
        [*MFN, "presets"], env=env, cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert piped.returncode == cli.EXIT_OK, piped.stderr
    rows = [line for line in piped.stdout.splitlines() if line.startswith("│ ")]
    names = ["name", *sorted(project_settings().presets)]
    assert [row.split("┆")[0].strip("│ ") for row in rows] == names  # one line per row
    assert max(len(line) for line in rows) > 80
    code, shown = on_a_terminal([*MFN, "presets"], env, 80)
    assert code == cli.EXIT_OK, shown
    lines = [line for line in visible_lines(shown) if line]
    assert len(lines) > len(rows) + 3  # rows wrapped onto more lines
    assert max(len(line) for line in lines) <= 80
    for name in names:
        assert any(line.startswith(f"│ {name} ") for line in lines)


# --- arguments ------------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (choices,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(choices.choices)


def test_every_argument_has_a_description() -> None:
    root = cli.parser()
    for name, parser in {"mfn": root, **subcommands(root)}.items():
        assert parser.description, f"{name} -h has no description"
        for action in parser._actions:
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"
    assert set(subcommands(root)) >= {"presets", "build", "sql", "catalog", "export", "schema"}


@pytest.mark.parametrize(
    "args",
    [
        ["build", "small", "--all"],
        ["build", "--all", "small"],
        ["sql", "SELECT 1", "--format", "carrots"],
    ],
)
def test_conflicting_arguments_are_usage_errors(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(args)
    assert usage.value.code == cli.EXIT_USAGE
    assert "usage: mfn" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".json", ".CSV"])
def test_export_writes_the_format_its_file_name_says(
    built: Environment, tmp_path: Path, suffix: str
) -> None:
    target = tmp_path / f"small{suffix}"
    code, text = run(["export", "small", "--out", str(target)])
    assert code == cli.EXIT_OK
    assert f"{target}: 10 rows" in text
    reader: dict[str, Callable[[Path], pl.DataFrame]] = {
        ".parquet": pl.read_parquet,
        ".csv": pl.read_csv,
        ".json": pl.read_json,
    }
    frame = reader[suffix.lower()](target)
    assert frame.height == 10
    assert target.read_bytes().startswith(b"PAR1") == (suffix == ".parquet")


def test_sql_writes_the_format_its_file_name_says(built: Environment, tmp_path: Path) -> None:
    target = tmp_path / "ids.json"
    code, _ = run(["sql", "SELECT sim_id FROM dataset ORDER BY sim_id", "--out", str(target)])
    assert code == cli.EXIT_OK
    assert json.loads(target.read_text()) == [{"sim_id": i} for i in range(10)]


def test_a_file_name_without_a_known_extension_takes_format(
    built: Environment, tmp_path: Path
) -> None:
    target = tmp_path / "small.txt"
    assert run(["export", "small", "--format", "csv", "--out", str(target)])[0] == cli.EXIT_OK
    assert pl.read_csv(target).height == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "small", "--format", "parquet", "--out", "{tmp}/small.csv"],
            "--format parquet conflicts with --out {tmp}/small.csv, whose extension says csv",
        ),
        (
            ["export", "small", "--out", "{tmp}/small.txt"],
            "--out {tmp}/small.txt: name the file's format by its extension",
        ),
        (
            ["sql", "SELECT 1", "--format", "json", "--out", "{tmp}/one.parquet"],
            "--format json conflicts with --out {tmp}/one.parquet, whose extension says parquet",
        ),
        (
            ["sql", "SELECT 1", "--format", "table", "--out", "{tmp}/one.csv"],
            "--format table prints to the terminal only; --out {tmp}/one.csv takes csv, json",
        ),
        (
            ["sql", "SELECT 1", "--max-rows", "5", "--out", "{tmp}/one.csv"],
            "--max-rows caps the rows printed and --out writes every row; pass one",
        ),
        (["sql", "SELECT 1", "--format", "parquet"], "--format parquet needs --out FILE"),
    ],
)
def test_an_out_file_that_contradicts_the_arguments_is_refused(
    built: Environment,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, text = run([arg.replace("{tmp}", str(tmp_path)) for arg in args])
    assert (code, text) == (cli.EXIT_USAGE, "")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"mfn {args[0]}: {message.replace('{tmp}', str(tmp_path))}")
    assert list(tmp_path.iterdir()) == []


# --- the preset schema ------------------------------------------------------------------


def test_schema_prints_the_preset_schema_that_every_preset_file_satisfies(
    tmp_path: Path,
) -> None:
    code, text = run(["schema"])
    assert code == cli.EXIT_OK
    assert json.loads(text) == preset_json_schema()
    schema = tmp_path / "preset.schema.json"
    schema.write_text(text)
    presets = sorted((PROJECT / "configs" / "presets").glob("*.yaml"))
    typo = tmp_path / "typo.yaml"
    typo.write_text(presets[0].read_text() + "grid_sise: 32\n")
    checker = [str(Path(sys.executable).with_name("check-jsonschema")), "--schemafile", str(schema)]
    good = subprocess.run(
        [*checker, *map(str, presets)], check=False, capture_output=True, text=True
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = subprocess.run([*checker, str(typo)], check=False, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "grid_sise" in bad.stdout + bad.stderr
