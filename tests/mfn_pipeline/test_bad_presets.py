"""One bad preset file fails only itself: in the code location, the CLI, the UI, the nightly build.

Everything here runs against a copy of configs/ in which medium.yaml was cut off
half-way through (as an editor or a copy interrupted mid-write leaves it), beside an
editor's lock link and backups. (A .yml file is covered in test_settings.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..servers import answers_server_info, free_port, wait_until_healthy
from .conftest import PROJECT

BIN = Path(sys.executable).parent
GOOD = ["benchmark", "large", "small", "transition"]
HALF_WRITTEN = "medium"
# The copy ends here, inside the expect: block, half-way through a range.
CUT_AFTER = "lyapunov: [-8.0, "


def cut_line() -> int:
    """The line the half-written file ends on (the YAML error names it)."""
    text = (PROJECT / "configs" / "presets" / f"{HALF_WRITTEN}.yaml").read_text()
    return text[: text.index(CUT_AFTER)].count("\n") + 1


@dataclass(frozen=True)
class Broken:
    """A configs/ copy with one half-written preset, and the environment to use it."""

    configs: Path
    env: dict[str, str]

    @property
    def bad_file(self) -> Path:
        return self.configs / "presets" / f"{HALF_WRITTEN}.yaml"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            env=self.env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )


def break_configs(root: Path) -> Path:
    configs = root / "configs"
    shutil.copytree(PROJECT / "configs", configs)
    presets = configs / "presets"
    medium = presets / f"{HALF_WRITTEN}.yaml"
    text = medium.read_text()
    medium.write_text(text[: text.index(CUT_AFTER) + len(CUT_AFTER)])
    # What editors leave beside a file being edited: none of these is a preset.
    (presets / ".#small.yaml").symlink_to("user@host.4242:1763900000")
    shutil.copy(presets / "small.yaml", presets / "small.yaml~")
    shutil.copy(presets / "small.yaml", presets / "#small.yaml#")
    return configs


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Broken:
    root = tmp_path_factory.mktemp("broken")
    (root / "home").mkdir()
    env = dict(
        os.environ,
        MFN_CONFIG_DIR=str(break_configs(root)),
        MFN_WAREHOUSE=str(root / "warehouse"),
        MFN_CATALOG=str(root / "mfn.duckdb"),
        DAGSTER_HOME=str(root / "home"),
    )
    return Broken(root / "configs", env)


def expected_message(broken: Broken) -> str:
    return (
        f"{broken.bad_file}: not valid YAML: line {cut_line()}, column 22: expected the node "
        "content, but found '<stream end>'"
    )


def test_the_code_location_loads_and_validates(broken: Broken) -> None:
    result = broken.run(str(BIN / "dg"), "check", "defs")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All definitions loaded successfully." in result.stdout


# Loads the definitions as the code server does, then asks them what the UI and the
# daemon would: partitions, the note on the assets, the nightly tick, a bad run.
INSPECT = """
import datetime as dt, json, warnings
import dagster as dg
from mfn_pipeline.definitions import BUILD_JOB, defs
from mfn_pipeline.defs.partitions import PROBLEMS_METADATA_KEY
warnings.simplefilter("ignore", dg.BetaWarning)
loaded = defs()
repo = loaded.get_repository_def()
node = repo.asset_graph.get(dg.AssetKey("simulation_runs"))
with dg.DagsterInstance.ephemeral() as instance:
    cursor = None
    for hour, minute in ((1, 59), (2, 0)):
        tick = dg.evaluate_automation_conditions(
            defs=loaded,
            instance=instance,
            evaluation_time=dt.datetime(2026, 11, 24, hour, minute, tzinfo=dt.UTC),
            cursor=cursor,
        )
        cursor = tick.cursor
    result = loaded.resolve_job_def(BUILD_JOB).execute_in_process(
        partition_key="medium", instance=instance, raise_on_error=False
    )
failures = [e.step_failure_data for e in result.all_events if e.is_step_failure]
print(json.dumps({
    "partitions": node.partitions_def.get_partition_keys(),
    "note": node.metadata[PROBLEMS_METADATA_KEY].value,
    "requested": sorted(tick.get_requested_partitions(dg.AssetKey("simulation_runs"))),
    "success": result.success,
    "failed_steps": [e.step_key for e in result.all_events if e.is_step_failure],
    "failure": [f.user_failure_data.description for f in failures if f.user_failure_data],
    "retries": sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"),
}))
"""


def test_the_bad_preset_stays_a_partition_whose_runs_fail_with_its_message(
    broken: Broken,
) -> None:
    result = broken.run(sys.executable, "-c", INSPECT)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["partitions"] == sorted([*GOOD, HALF_WRITTEN])
    # The nightly build still asks for it, so the morning shows it failed.
    assert seen["requested"] == sorted([*GOOD, HALF_WRITTEN])
    assert seen["success"] is False
    assert seen["failed_steps"] == ["simulation_runs"]
    (failure,) = seen["failure"]
    assert failure.startswith(expected_message(broken))
    assert seen["retries"] == 0
    # Every asset's page in the UI notes the file and its problem.
    assert f"| {HALF_WRITTEN}.yaml | {HALF_WRITTEN} | {expected_message(broken)}" in seen["note"]
    assert "small.yaml~" not in seen["note"]
    assert ".#small" not in seen["note"]


def test_mfn_presets_lists_every_preset_and_the_bad_one_with_its_message(
    broken: Broken,
) -> None:
    result = broken.run(str(BIN / "mfn"), "presets")
    assert result.returncode == 1, result.stderr
    rows = {line.split("┆")[0].strip("│ "): line for line in result.stdout.splitlines()}
    for name in GOOD:
        assert "┆ ok " in rows[name]
    assert "┆ NOT LOADED ┆" in rows[HALF_WRITTEN]
    assert result.stderr.splitlines() == [
        f"mfn presets: NOT LOADED: {expected_message(broken)}"
        f" (while parsing a flow node on line {cut_line()})"
    ]


@pytest.mark.slow
def test_mfn_build_and_sql_work_for_the_good_presets_and_name_the_bad_one(
    broken: Broken,
) -> None:
    good = broken.run(str(BIN / "mfn"), "build", "benchmark")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "built" in good.stdout
    bad = broken.run(str(BIN / "mfn"), "build", HALF_WRITTEN)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"FAILED  {HALF_WRITTEN}: step simulation_runs: {expected_message(broken)}" in bad.stdout
    query = broken.run(
        str(BIN / "mfn"),
        "sql",
        "SELECT preset, count(*) AS n FROM dataset GROUP BY 1",
        "--format",
        "csv",
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.replace('"', "").splitlines() == ["preset,n", "benchmark,5"]


def test_an_invalid_environment_file_still_stops_everything(tmp_path: Path) -> None:
    configs = break_configs(tmp_path)
    dev = configs / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("executor: in_process", "executor: threads"))
    env = dict(os.environ, MFN_CONFIG_DIR=str(configs), DAGSTER_HOME=str(tmp_path))
    broken = Broken(configs, env)
    presets = broken.run(str(BIN / "mfn"), "presets")
    assert presets.returncode == 1
    assert presets.stderr.startswith(
        f"mfn presets: {dev}: executor = 'threads' is not a known choice"
    )
    load = broken.run(str(BIN / "dg"), "check", "defs")
    assert load.returncode != 0
    assert f"{dev}: executor = 'threads' is not a known choice" in load.stdout + load.stderr


GRAPHQL = """{
  assetNodes { assetKey { path } partitionKeys
    metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } }
}"""


@pytest.fixture
def webserver(broken: Broken, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = tmp_path / "webserver.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-m",
                "mfn_pipeline.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=PROJECT,
            env=broken.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, lambda: answers_server_info(url), "dagster-webserver", log)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


@pytest.mark.slow
def test_the_ui_lists_the_bad_partition_and_shows_the_note(broken: Broken, webserver: str) -> None:
    query = urllib.parse.urlencode({"query": GRAPHQL})
    with urllib.request.urlopen(f"{webserver}/graphql?{query}", timeout=60) as response:
        data = json.load(response)["data"]
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == {
        "simulation_runs",
        "fractal_features",
        "mfn_dataset",
        "preset_summary",
        "builds",
    }
    for node in nodes.values():
        assert node["partitionKeys"] == sorted([*GOOD, HALF_WRITTEN])
        notes = [
            e["mdStr"] for e in node["metadataEntries"] if e["label"] == "preset files not loaded"
        ]
        assert len(notes) == 1
        assert expected_message(broken) in notes[0]
