"""Where the warehouse and catalog are taken from, and locations that are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfn_pipeline.lib.settings import ConfigError, load_settings

from .conftest import PROJECT


@pytest.mark.parametrize("kind", ["a text file", "a partition", "a device"])
def test_a_warehouse_that_is_not_a_folder_is_refused_at_load(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = {
        "a text file": tmp_path / "notes.txt",
        "a partition": tmp_path / "small.parquet",
        "a device": Path("/dev/null"),
    }[kind]
    if kind != "a device":
        target.write_bytes(b"mine")
    monkeypatch.setenv("MFN_WAREHOUSE", str(target))
    monkeypatch.setenv("MFN_CATALOG", str(tmp_path / "mfn.duckdb"))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    assert f"$MFN_WAREHOUSE): warehouse = '{target}' is " in message
    assert "allowed: a folder" in message
    if kind != "a device":
        assert target.read_bytes() == b"mine"


@pytest.mark.parametrize("variable", ["MFN_WAREHOUSE", "MFN_CATALOG"])
def test_an_empty_location_variable_is_refused_not_ignored(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "  ")
    with pytest.raises(ConfigError, match=rf"\${variable} is set but empty; allowed: a path"):
        load_settings()


def test_relative_location_variables_are_taken_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MFN_WAREHOUSE", "mine/warehouse")
    monkeypatch.setenv("MFN_CATALOG", "mine/mfn.duckdb")
    environment = load_settings().environment
    assert environment.warehouse == str(tmp_path / "mine" / "warehouse")
    assert environment.catalog == tmp_path / "mine" / "mfn.duckdb"
    # The environment file's own relative locations still belong to the project.
    monkeypatch.delenv("MFN_WAREHOUSE")
    monkeypatch.delenv("MFN_CATALOG")
    assert load_settings().environment.catalog == PROJECT / "data" / "mfn.duckdb"


@pytest.mark.parametrize("command", [["catalog"], ["sql", "SELECT count(*) FROM dataset"]])
def test_an_unreachable_url_warehouse_is_one_line(command: list[str], tmp_path: Path) -> None:
    # Port 1 on the loopback: nothing listens, so the connection is refused at once.
    done = subprocess.run(
        [sys.executable, "-m", "mfn_pipeline.cli", *command],
        env={
            **os.environ,
            "MFN_WAREHOUSE": "ftp://127.0.0.1:1/warehouse",
            "MFN_CATALOG": str(tmp_path / "mfn.duckdb"),
        },
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"mfn {command[0]}: the file system or object store refused")
    assert "Connection refused" in line
    assert "ftp://127.0.0.1:1/warehouse" in line
