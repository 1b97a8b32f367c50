"""The deployment files: checked by their own tools, then run as compose would run them.

No container engine runs here, so the slow case starts each compose service's own
command on this machine, against a real Postgres, with the instance settings the
image carries (deploy/dagster.yaml), and builds a preset through the daemon.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from mfn_pipeline.lib.settings import load_settings
from mfn_pipeline.lib.warehouse import Warehouse

from .servers import answers_server_info, free_port, wait_until_healthy

PROJECT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
DEPLOY = PROJECT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SERVICES = {"postgres", "code", "webserver", "daemon"}
MFN_SERVICES = ("code", "webserver", "daemon")
PASSWORD = "deploy-test-password"  # pragma: allowlist secret (a one-test cluster)
BUILD_S = 300.0


def tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, check=False
    )


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (PROJECT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_passes_hadolint() -> None:
    result = tool("hadolint", PROJECT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_slim_runs_as_non_root_and_checks_the_webserver() -> None:
    instructions = dockerfile_instructions()
    bases = [arg for op, arg in instructions if op == "ARG" and arg.startswith("PYTHON_IMAGE=")]
    assert len(bases) == 1
    assert bases[0].endswith("-slim-bookworm")
    user = [arg for op, arg in instructions if op == "USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    healthcheck = next(arg for op, arg in instructions if op == "HEALTHCHECK")
    assert "http://127.0.0.1:3000/server_info" in healthcheck
    command = next(arg for op, arg in reversed(instructions) if op == "CMD")
    assert '"dagster-webserver"' in command


def test_dockerignore_sends_no_local_state_to_the_build() -> None:
    rules = [
        line
        for line in (PROJECT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*", "everything is excluded unless named"
    included = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for local_state in (".venv", "data", ".dagster_home", "test-artifacts", "deploy/.env"):
        assert local_state not in included
    # Everything the Dockerfile copies from the context is let in.
    copied = [
        source
        for op, arg in dockerfile_instructions()
        if op == "COPY" and "--from" not in arg
        for source in arg.split()[:-1]
    ]
    for source in copied:
        assert source.rstrip("/") in included, source


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.compose-spec", COMPOSE),
        ("vendor.github-workflows", PROJECT / ".github" / "workflows" / "ci.yml"),
    ],
)
def test_files_match_their_published_schema(schema: str, path: Path) -> None:
    result = tool("check-jsonschema", "--builtin-schema", schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_publishes_the_ui_on_loopback_and_holds_no_secret() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published == ["127.0.0.1:3000:3000"]
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if "PASSWORD" in key or "SECRET" in key:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?.+\}", value), (name, key, value)
    template = (DEPLOY / "env.example").read_text()
    for line in template.splitlines():
        if re.match(r"[A-Z_]*(PASSWORD|SECRET)[A-Z_]*=", line):
            assert line.endswith("="), f"env.example gives a value: {line}"


# --- the services, run as compose runs them ------------------------------------------


@dataclass(frozen=True)
class Postgres:
    port: int
    data: Path


def postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "PostgreSQL is missing: `make test` installs Debian's postgresql"
    return found[-1].parent


def as_postgres(*command: str | Path | int) -> list[str]:
    """The server refuses to run as root; Debian's package made a postgres user."""
    if os.geteuid() != 0:
        return [str(part) for part in command]
    return ["runuser", "-u", "postgres", "--", *map(str, command)]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pg = postgres_bin()
    # Not under pytest's temporary folder: that is private to root, and the server is not.
    root = Path(tempfile.mkdtemp(prefix="mfn-postgres-"))
    data, sockets, password = root / "data", root / "sockets", root / "password"
    sockets.mkdir()
    password.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        shutil.chown(password, "postgres")
    subprocess.run(
        as_postgres(
            pg / "initdb", "-D", data, "-U", "dagster", f"--pwfile={password}",
            "--auth-host=scram-sha-256", "--auth-local=trust",
        ),
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
    subprocess.run(
        as_postgres(pg / "pg_ctl", "-D", data, "-o", options, "-w", "-l", root / "log", "start"),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            as_postgres(
                pg / "createdb", "-h", sockets, "-p", str(port), "-U", "dagster", "dagster"
            ),
            check=True,
            capture_output=True,
        )
        yield Postgres(port=port, data=data)
    finally:
        subprocess.run(as_postgres(pg / "pg_ctl", "-D", data, "-m", "fast", "stop"), check=False)


def service_command(name: str, ports: Mapping[str, int]) -> list[str]:
    """A compose service's command, with its fixed ports moved to free ones."""
    command: list[str] = compose()["services"][name]["command"]
    return [str(ports.get(part, part)) if part.isdigit() else part for part in command]


@pytest.mark.slow
def test_services_build_a_preset_through_the_daemon_on_postgres(
    postgres: Postgres, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = (DEPLOY / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(
        instance.replace("/srv/mfn/dagster_home", str(home))  # the image's path, moved here
    )
    ports = {"4000": free_port(), "3000": free_port()}
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=ports["4000"])
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))

    environment = compose()["x-mfn"]["environment"]
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        DAGSTER_HOME=str(home),
        DAGSTER_PG_HOST="127.0.0.1",
        DAGSTER_PG_PORT=str(postgres.port),
        DAGSTER_PG_DB="dagster",
        DAGSTER_PG_USER="dagster",
        DAGSTER_PG_PASSWORD=PASSWORD,
        MFN_ENV="prod",  # as the image sets it
        MFN_WAREHOUSE=str(tmp_path / "warehouse"),
        MFN_CATALOG=str(tmp_path / "mfn.duckdb"),
    )
    assert {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_PASSWORD"} <= set(environment)

    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        image_workspace, local_workspace = (
            "/srv/mfn/workspace.yaml",
            str(tmp_path / "workspace.yaml"),
        )
        command = [
            part.replace(image_workspace, local_workspace) for part in service_command(name, ports)
        ]
        log = tmp_path / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        processes.append(process)
        return process, log

    try:
        code, code_log = start("code")
        health = [str(BIN / "dagster"), "api", "grpc-health-check", "--port", str(ports["4000"])]
        wait_until_healthy(
            code,
            lambda: (
                subprocess.run(health, env=env, capture_output=True, check=False).returncode == 0
            ),
            "code server",
            code_log,
        )
        webserver, web_log = start("webserver")
        url = f"http://127.0.0.1:{ports['3000']}"
        wait_until_healthy(webserver, lambda: answers_server_info(url), "webserver", web_log)
        daemon, daemon_log = start("daemon")

        client = DagsterGraphQLClient("127.0.0.1", port_number=ports["3000"])
        run_id = client.submit_job_execution(
            "build_all_presets_job",
            repository_location_name="mfn",
            tags={"dagster/partition": "small"},
        )
        deadline = time.monotonic() + BUILD_S
        status = client.get_run_status(run_id)
        while status not in {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE}:
            assert time.monotonic() < deadline, f"run {run_id} still {status}"
            assert daemon.poll() is None, daemon_log.read_text()
            time.sleep(2)
            status = client.get_run_status(run_id)
        assert status == DagsterRunStatus.SUCCESS, code_log.read_text()[-4000:]

        liveness = subprocess.run(
            [str(BIN / "dagster-daemon"), "liveness-check"],
            env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert liveness.returncode == 0, liveness.stdout + liveness.stderr
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # The run and its events live in Postgres, the data in the warehouse.
    with (
        # psycopg2's own `with` ends the transaction only; closing() closes the session.
        contextlib.closing(
            psycopg2.connect(
                host="127.0.0.1",
                port=postgres.port,
                dbname="dagster",
                user="dagster",
                password=PASSWORD,
            )
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
        assert cursor.fetchone()[0] > 0
    warehouse = Warehouse(root=str(tmp_path / "warehouse"), catalog=str(tmp_path / "mfn.duckdb"))
    dataset = warehouse.read("mfn_dataset", "small")
    assert dataset.height == load_settings().presets["small"].num_samples
