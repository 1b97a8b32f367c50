"""Runs of the code location: fixed resources, a time limit on each run, dead runs failed.

The slow cases start a real `dg dev` (webserver, daemon, code server) on a
private Dagster home with configs/dagster.yaml, launch runs the way the UI does
(GraphQL launchRun of the implicit asset job) and kill real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psutil
import pytest
import yaml
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.system_config.objects import ResolvedRunConfig
from dagster._core.test_utils import create_run_for_test

from mfn_pipeline.definitions import definitions_for
from mfn_pipeline.defs.resources import run_time_limit_s
from mfn_pipeline.lib.settings import load_settings
from mfn_pipeline.lib.supervision import (
    RUN_TIME_LIMIT_TAG,
    WORKER_HOST_TAG,
    WORKER_PID_TAG,
    WORKER_RUN_TAG,
    WORKER_STARTED_TAG,
    Worker,
    fail_dead_runs,
    limited,
    supervision_tags,
)

from ..servers import answers_server_info, free_port, wait_until_healthy
from .conftest import PROJECT, project_settings

BIN = Path(sys.executable).parent
ASSETS = ("simulation_runs", "fractal_features", "mfn_dataset", "preset_summary", "builds")
# Run config a launch could use to point the warehouse at any file the server can write.
REDIRECTING = {
    "warehouse": {"config": {"root": "{target}", "catalog": "{target}/mfn.duckdb"}},
    "settings": {"config": {"environment": {"warehouse": "{target}", "catalog": "{target}/c"}}},
}
DETECTION_S = 180.0  # the sensor looks every 30 s; the daemon may be slow on a busy machine
BUILD_S = 300.0
ENDED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""


# ---------------------------------------------------------------- fast cases


def redirecting_config(target: Path, resource: str) -> dict[str, Any]:
    text = json.dumps(REDIRECTING[resource]).replace("{target}", str(target))
    return {"resources": {resource: json.loads(text)}}


@pytest.mark.parametrize("resource", sorted(REDIRECTING))
def test_run_config_cannot_set_any_resource(resource: str, tmp_path: Path) -> None:
    defs = definitions_for(project_settings())
    for job in (
        defs.resolve_implicit_global_asset_job_def(),
        defs.resolve_job_def("build_all_presets_job"),
    ):
        with pytest.raises(
            dg.DagsterInvalidConfigError,
            match=f"unexpected config entr.* at path root:resources:{resource}:config",
        ):
            ResolvedRunConfig.build(job, redirecting_config(tmp_path, resource))


def test_a_launch_may_shorten_its_run_time_limit_but_never_lengthen_or_drop_it() -> None:
    assert limited({}, 4500) == "4500"
    assert limited({RUN_TIME_LIMIT_TAG: "60"}, 4500) == "60"
    assert limited({RUN_TIME_LIMIT_TAG: "99999999"}, 4500) == "4500"
    assert limited({RUN_TIME_LIMIT_TAG: "0"}, 4500) == "4500"
    assert limited({RUN_TIME_LIMIT_TAG: "soon"}, 4500) == "4500"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = create_run_for_test(instance, job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED)
    # "{run}" stands for the run's own id, which exists only now.
    instance.add_run_tags(
        run.run_id, {key: value.replace("{run}", run.run_id) for key, value in tags.items()}
    )
    tagged = instance.get_run_by_id(run.run_id)
    assert tagged is not None
    return tagged


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return "\n".join(event.dagster_event.message or "" for event in events if event.dagster_event)


def test_dead_runs_of_this_host_fail_and_the_others_are_left(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        here = socket.gethostname()
        worker = {
            WORKER_HOST_TAG: here,
            WORKER_PID_TAG: str(sleeper.pid),
            WORKER_STARTED_TAG: f"{psutil.Process(sleeper.pid).create_time():.2f}",
            WORKER_RUN_TAG: "{run}",
        }
        alive = started_run(instance, worker)
        killed = started_run(instance, worker)
        reused = started_run(instance, {**worker, WORKER_STARTED_TAG: "1000.00"})  # pid reused
        gone = {**worker, WORKER_STARTED_TAG: "1000.00"}
        elsewhere = started_run(instance, {**gone, WORKER_HOST_TAG: "another-host"})
        inherited = started_run(instance, {**gone, WORKER_RUN_TAG: "a-parent-run"})
        untagged = started_run(instance, {})
        # The second run's worker dies: a process that ran and was killed.
        victim = subprocess.Popen(["sleep", "600"])
        victim_started = psutil.Process(victim.pid).create_time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        instance.add_run_tags(
            killed.run_id,
            {WORKER_PID_TAG: str(victim.pid), WORKER_STARTED_TAG: f"{victim_started:.2f}"},
        )

        failed = fail_dead_runs(instance)

        assert sorted(failed) == sorted([killed.run_id, reused.run_id])
        status = {run.run_id: run.status for run in instance.get_runs()}
        assert status[killed.run_id] == status[reused.run_id] == DagsterRunStatus.FAILURE
        for run in (alive, elsewhere, inherited, untagged):
            assert status[run.run_id] == DagsterRunStatus.STARTED
        assert f"pid {victim.pid} on {here}" in failure_message(instance, killed.run_id)
        assert "no longer exists" in failure_message(instance, killed.run_id)
        assert fail_dead_runs(instance) == []


def test_in_process_tags_name_this_process_and_the_environment_limit() -> None:
    tags = supervision_tags("some-run", {}, run_time_limit_s(project_settings().environment))
    worker = Worker.this_process()
    assert tags[WORKER_PID_TAG] == str(os.getpid())
    assert tags[RUN_TIME_LIMIT_TAG] == str(run_time_limit_s(project_settings().environment))
    assert not worker.is_gone()


# -------------------------------------------------------------------- a real dg dev

# A preset that builds for minutes: long enough to be killed or stopped mid-run.
SLOW_PRESET = {"name": "slow", "grid_size": 96, "steps": 5000, "num_samples": 400}


@dataclass(frozen=True)
class Dev:
    url: str
    process: subprocess.Popen[bytes]
    root: Path
    env: dict[str, str]
    log: Path

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer: dict[str, Any] = json.load(response)
        assert "errors" not in answer, answer
        return answer["data"]  # type: ignore[no-any-return]

    def launch(
        self,
        preset: str,
        tags: dict[str, str] | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Launch a run of every mfn asset for one preset as the UI's Materialize does."""
        params = {
            "selector": {
                "repositoryLocationName": "mfn",
                "repositoryName": "__repository__",
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": [asset]} for asset in ASSETS],
            },
            "runConfigData": run_config or {},
            "executionMetadata": {
                "tags": [
                    {"key": key, "value": value}
                    for key, value in {"dagster/partition": preset, **(tags or {})}.items()
                ]
            },
        }
        launched: dict[str, Any] = self.graphql(LAUNCH, {"params": params})["launchRun"]
        return launched


def run_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    assert run is not None, run_id
    return run


def wait_for(
    what: str, condition: Callable[[], bool], timeout_s: float, log: Path | None = None
) -> float:
    """Seconds until ``condition`` held; fails after ``timeout_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            tail = log.read_text()[-3000:] if log else ""
            pytest.fail(f"{what}: not within {timeout_s:.0f} s\n{tail}")
        time.sleep(1)
    return time.monotonic() - start


def prepared(root: Path) -> dict[str, str]:
    """A private Dagster home (configs/dagster.yaml), configs with the slow preset, data."""
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "configs" / "dagster.yaml", home / "dagster.yaml")
    configs = root / "configs"
    shutil.copytree(PROJECT / "configs", configs)
    preset = yaml.safe_load((configs / "presets" / "small.yaml").read_text())
    preset.update(SLOW_PRESET)
    (configs / "presets" / "slow.yaml").write_text(yaml.safe_dump(preset))
    return dict(
        os.environ,
        DAGSTER_HOME=str(home),
        MFN_CONFIG_DIR=str(configs),
        MFN_WAREHOUSE=str(root / "warehouse"),
        MFN_CATALOG=str(root / "mfn.duckdb"),
    )


@contextlib.contextmanager
def dagster_dev(root: Path, env: dict[str, str], name: str = "dagster_dev") -> Iterator[Dev]:
    """`dg dev` (webserver, daemon, code server) in its own process group."""
    port = free_port()
    log = root / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [BIN / "dg", "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Dev(f"http://127.0.0.1:{port}", process, root, env, log)
    try:
        wait_until_healthy(process, lambda: answers_server_info(running.url), "dg dev", log)
        yield running
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    root = tmp_path_factory.mktemp("runs")
    with dagster_dev(root, prepared(root)) as running:
        yield running


def ended(instance: dg.DagsterInstance, run_id: str) -> Callable[[], bool]:
    return lambda: run_of(instance, run_id).status in ENDED


@pytest.mark.slow
def test_ui_launch_cannot_redirect_the_warehouse(dev: Dev) -> None:
    target = dev.root / "elsewhere"
    with dev.instance() as instance:
        before = len(instance.get_runs())
        for resource in sorted(REDIRECTING):
            launched = dev.launch("small", run_config=redirecting_config(target, resource))
            assert launched["__typename"] == "RunConfigValidationInvalid", launched
            messages = " ".join(error["message"] for error in launched["errors"])
            assert "unexpected config entr" in messages
        assert len(instance.get_runs()) == before  # no run was even created
    assert not target.exists()


@pytest.mark.slow
def test_every_ui_launched_run_carries_the_time_limit_and_its_worker(dev: Dev) -> None:
    limit = str(run_time_limit_s(project_settings().environment))
    with dev.instance() as instance:
        plain = dev.launch("small")["run"]["runId"]
        longer = dev.launch("small", tags={RUN_TIME_LIMIT_TAG: "99999999"})["run"]["runId"]
        for run_id in (plain, longer):
            wait_for(f"run {run_id}", ended(instance, run_id), BUILD_S, dev.log)
            run = run_of(instance, run_id)
            assert run.status == DagsterRunStatus.SUCCESS, dev.log.read_text()[-3000:]
            assert run.job_name == "__ASSET_JOB"
            assert run.tags[RUN_TIME_LIMIT_TAG] == limit
            assert run.tags[WORKER_RUN_TAG] == run_id
            assert Worker.of(run) is not None


@pytest.mark.slow
def test_run_monitoring_stops_a_run_past_its_time_limit(dev: Dev) -> None:
    with dev.instance() as instance:
        run_id = dev.launch("slow", tags={RUN_TIME_LIMIT_TAG: "5"})["run"]["runId"]
        took = wait_for(f"run {run_id}", ended(instance, run_id), DETECTION_S, dev.log)
        run = run_of(instance, run_id)
        assert run.status == DagsterRunStatus.FAILURE
        assert run.tags[RUN_TIME_LIMIT_TAG] == "5"
        messages = [
            event.dagster_event.message or ""
            for event in instance.all_logs(run_id)
            if event.dagster_event is not None
        ]
        assert any("maximum runtime of 5 seconds" in message for message in messages), messages
        # Stopped, not only marked: the process that executed it ends too.
        worker = Worker.of(run)
        assert worker is not None
        wait_for("the stopped run's worker to end", worker.is_gone, 120.0, dev.log)
        print(f"stopped {took:.0f} s after launch")  # noqa: T201


def mfn_build(dev: Dev, preset: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [BIN / "mfn", "build", preset],
        cwd=dev.root,
        env=dev.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, sweep workers included
    )


def started_with_worker(
    instance: dg.DagsterInstance, run_id: str | None = None
) -> dg.DagsterRun | None:
    """The newest STARTED run whose worker is recorded (or ``run_id`` once it is)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    for run in runs:
        if (run_id is None or run.run_id == run_id) and Worker.of(run) is not None:
            return run
    return None


@pytest.mark.slow
def test_a_killed_mfn_build_is_failed_and_the_queue_moves_on(dev: Dev) -> None:
    with dev.instance() as instance:
        build = mfn_build(dev, "slow")
        wait_for("mfn build's run", lambda: started_with_worker(instance) is not None, BUILD_S)
        dead = started_with_worker(instance)
        assert dead is not None
        assert dead.tags[WORKER_PID_TAG] == str(build.pid)
        queued = dev.launch("small")["run"]["runId"]
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
        # One run at a time: the queued run waits for the dead one (unless the sensor,
        # which looks every 30 s, has already failed it; the start times say so below).
        time.sleep(5)
        if run_of(instance, dead.run_id).status == DagsterRunStatus.STARTED:
            assert run_of(instance, queued).status == DagsterRunStatus.QUEUED

        took = wait_for(
            "the killed build's run failed",
            lambda: run_of(instance, dead.run_id).status == DagsterRunStatus.FAILURE,
            DETECTION_S,
            dev.log,
        )
        message = failure_message(instance, dead.run_id)
        assert f"pid {build.pid} on {socket.gethostname()}" in message
        assert "no longer exists" in message
        print(f"dead run failed {took:.0f} s after the kill")  # noqa: T201

        wait_for(f"queued run {queued}", ended(instance, queued), BUILD_S, dev.log)
        assert run_of(instance, queued).status == DagsterRunStatus.SUCCESS
        failed = instance.get_run_record_by_id(dead.run_id)
        after = instance.get_run_record_by_id(queued)
        assert failed is not None
        assert failed.end_time is not None
        assert after is not None
        assert after.start_time is not None
        assert after.start_time >= failed.end_time


@pytest.mark.slow
def test_a_killed_run_worker_is_failed_and_the_queue_moves_on(dev: Dev) -> None:
    with dev.instance() as instance:
        victim = dev.launch("slow")["run"]["runId"]
        wait_for(
            "the launched run's worker",
            lambda: started_with_worker(instance, victim) is not None,
            BUILD_S,
            dev.log,
        )
        queued = dev.launch("small")["run"]["runId"]
        worker = psutil.Process(int(run_of(instance, victim).tags[WORKER_PID_TAG]))
        # As the OOM killer would: the worker and its sweep's processes, nothing else.
        for process in [*worker.children(recursive=True), worker]:
            process.kill()
        took = wait_for(
            "the killed worker's run failed",
            lambda: run_of(instance, victim).status == DagsterRunStatus.FAILURE,
            DETECTION_S,
            dev.log,
        )
        print(f"dead run failed {took:.0f} s after the kill")  # noqa: T201
        wait_for(f"queued run {queued}", ended(instance, queued), BUILD_S, dev.log)
        assert run_of(instance, queued).status == DagsterRunStatus.SUCCESS


@pytest.mark.slow
def test_a_run_orphaned_by_a_crashed_code_server_is_failed_after_a_restart(
    tmp_path: Path,
) -> None:
    # An OOM-killed code server or a restarted container: nothing that launched the
    # run is left to notice that its worker is gone, and `dg dev` does not
    # restart a dead code server by itself; the next start of the services does.
    env = prepared(tmp_path)
    with dagster_dev(tmp_path, env, "first") as dev, dev.instance() as instance:
        victim = dev.launch("slow")["run"]["runId"]
        wait_for(
            "the launched run's worker",
            lambda: started_with_worker(instance, victim) is not None,
            BUILD_S,
            dev.log,
        )
        worker = psutil.Process(int(run_of(instance, victim).tags[WORKER_PID_TAG]))
        code_server = worker.parent()
        assert code_server is not None
        for process in [*worker.children(recursive=True), worker, code_server]:
            process.kill()
        time.sleep(5)
        assert run_of(instance, victim).status == DagsterRunStatus.STARTED
    with dagster_dev(tmp_path, env, "second") as dev, dev.instance() as instance:
        took = wait_for(
            "the orphaned run failed",
            lambda: run_of(instance, victim).status == DagsterRunStatus.FAILURE,
            DETECTION_S,
            dev.log,
        )
        assert "no longer exists" in failure_message(instance, victim)
        print(f"orphaned run failed {took:.0f} s after the restart")  # noqa: T201


@pytest.mark.slow
def test_a_cli_materialize_with_processes_per_step_tags_its_run_worker(tmp_path: Path) -> None:
    # `dg launch`, prod's multiprocess executor: the worker recorded is
    # the process that runs the steps' processes, not a step's own.
    shutil.copy(PROJECT / "configs" / "dagster.yaml", tmp_path / "dagster.yaml")
    env = dict(
        os.environ,
        DAGSTER_HOME=str(tmp_path),
        MFN_ENV="prod",
        MFN_WAREHOUSE=str(tmp_path / "warehouse"),
        MFN_CATALOG=str(tmp_path / "mfn.duckdb"),
    )
    command = ["launch", "-m", "mfn_pipeline.definitions", "--assets", "*", "--partition", "small"]
    subprocess.run([BIN / "dg", *command], cwd=tmp_path, env=env, check=True, capture_output=True)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        [run] = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS
        prod = load_settings(env_name="prod").environment
        assert run.tags[RUN_TIME_LIMIT_TAG] == str(run_time_limit_s(prod))
        worker = Worker.of(run)
        assert worker is not None
        assert worker.is_gone()  # the command has exited
        engine = [
            event.dagster_event.message or ""
            for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
            if event.dagster_event is not None
        ]
        assert any(f"parent process (pid: {worker.pid})" in message for message in engine), engine
