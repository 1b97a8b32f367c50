"""The Dagster UI, driven in headless Chromium against a `dg dev` this test starts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from mfn_core.columns import column_docs
from mfn_pipeline.lib.settings import load_settings
from mfn_pipeline.lib.supervision import STARTED_BY_TAG, STARTED_BY_UI

from ..servers import answers_server_info, free_port, wait_until_healthy
from .conftest import PROJECT, catalog_connection

DG = str(Path(sys.executable).parent / "dg")  # the one installed beside this Python
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, installed by `make test`
ARTIFACTS = Path(os.environ.get("MFN_TEST_ARTIFACTS", PROJECT / "test-artifacts")) / "ui"
ASSETS = ("simulation_runs", "fractal_features", "mfn_dataset", "preset_summary", "builds")
# The machine has no route to the internet: Chromium must not try to reach it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_S = 120.0
BUILD_S = 300.0


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    root: Path


def stop(server: Server) -> None:
    """Interrupt `dg dev` as Ctrl-C would and wait for its whole process group."""
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=60) == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(server.process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(server.process.pid, signal.SIGKILL)
    pytest.fail("dg dev's code server or daemon outlived it by 60 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("ui")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "configs" / "dagster.yaml", home / "dagster.yaml")
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        MFN_WAREHOUSE=str(root / "warehouse"),
        MFN_CATALOG=str(root / "mfn.duckdb"),
    )
    port = free_port()
    log = root / "dg_dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [DG, "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the test can then see every child exit
        )
    running = Server(url=f"http://127.0.0.1:{port}", process=process, root=root)
    try:
        wait_until_healthy(
            process, lambda: answers_server_info(running.url), "dg dev", log, STARTUP_S
        )
        yield running
    finally:
        if process.poll() is None:
            stop(running)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


UI_WAIT_MS = 30_000


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    opened = context.new_page()
    opened.set_default_timeout(UI_WAIT_MS)
    # Assertions wait as long as actions: on a busy machine the partition list of the
    # Materialize dialog took more than Playwright's default 5 s to appear.
    expect.set_options(timeout=UI_WAIT_MS)
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def dismiss_welcome(page: Page) -> None:
    """A fresh instance greets its first visitor with a newsletter form."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.click(timeout=5_000)
    except PlaywrightTimeoutError:
        return


def test_ui_shows_the_assets_and_partitions_and_materializes_small(
    server: Server, page: Page
) -> None:
    page.goto(f"{server.url}/asset-groups/mfn")
    for asset in ASSETS:
        expect(page.get_by_text(asset, exact=True).first).to_be_visible()
    dismiss_welcome(page)
    screenshot(page, "asset_graph")

    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog").first
    expect(dialog).to_contain_text(f"materialize {len(ASSETS)} assets")
    dialog.get_by_text("Select a partition or create one").click()
    settings = load_settings()
    for preset in settings.presets:
        expect(page.get_by_text(preset, exact=True).first).to_be_visible()
    screenshot(page, "partitions")
    page.get_by_text("small", exact=True).first.click()
    page.keyboard.press("Escape")  # closes the partition list, not the dialog
    expect(dialog).to_contain_text("1 partition")
    dialog.get_by_role("button", name="Launch 1 run").click()

    # The toast that confirms the launch links to the run's own page.
    toast = page.get_by_role("region", name="Notifications alt+T")
    expect(toast).to_contain_text("Launched run")
    toast.get_by_text("View", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(f"{server.url}/runs/") + "[0-9a-f-]{36}$"))
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=BUILD_S * 1000)
    expect(page.get_by_text("partition: small").first).to_be_visible()
    assert screenshot(page, "run_succeeded").stat().st_size > 0
    # How the run was started: the project's own tag, added when the run started.
    page.reload()
    page.get_by_role("button", name="View tags and config").click()
    tags = page.get_by_role("dialog").filter(has_text=STARTED_BY_TAG)
    expect(tags.get_by_text(f"{STARTED_BY_TAG}: {STARTED_BY_UI}").first).to_be_visible()
    screenshot(page, "run_tags")
    page.keyboard.press("Escape")

    with catalog_connection(server.root / "mfn.duckdb") as catalog:
        rows = catalog.execute(
            "SELECT count(*) FROM dataset WHERE preset = ?", ["small"]
        ).fetchall()
    assert rows == [(settings.presets["small"].num_samples,)]


def test_ui_shows_column_descriptions_and_the_sample_field(server: Server, page: Page) -> None:
    # Runs after the build above (tests of a module run in file order).
    page.goto(f"{server.url}/assets/mfn_dataset")
    dismiss_welcome(page)
    v_mean = next(doc for doc in column_docs("mfn_dataset") if doc.name == "V_mean")
    assert "Unit: mV" in v_mean.description
    expect(page.get_by_text(v_mean.description).first).to_be_visible()
    screenshot(page, "columns")

    page.goto(f"{server.url}/assets/simulation_runs?view=events")
    sample_field = page.get_by_role("row").filter(has_text="sample_field")
    sample_field.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has_text="sample_field")
    picture = dialog.locator("img").first
    expect(picture).to_be_visible()
    assert (picture.get_attribute("src") or "").startswith("data:image/png;base64,")
    # Decoded and drawn by the browser, not a broken-image icon.
    assert picture.evaluate("image => image.complete && image.naturalWidth") > 100
    expect(dialog).to_contain_text("small sim_id 0: final field")
    expect(dialog).to_contain_text(" mV")
    screenshot(page, "sample_field")
