"""Helpers for tests that start real servers (Dagster, Postgres) on this machine."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers_server_info(url: str) -> bool:
    """Whether a Dagster webserver at ``url`` answers its /server_info endpoint."""
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_healthy(
    process: subprocess.Popen[bytes],
    healthy: Callable[[], bool],
    what: str,
    log: Path,
    timeout_s: float = 120.0,
) -> None:
    """Poll ``healthy`` until it holds; fail with ``log`` if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        if healthy():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} was not healthy in {timeout_s:.0f} s:\n{log.read_text()}")
