"""Security properties of the repository as shipped: no secret, local-only defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


def test_no_secret_in_any_tracked_file() -> None:
    # The image copies only tracked sources and configs (.dockerignore), so this covers it too.
    scan = subprocess.run(
        [str(BIN / "detect-secrets"), "scan"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(scan.stdout)["results"]
    assert results == {}, json.dumps(results, indent=1)


def test_the_local_ui_binds_loopback_only() -> None:
    makefile = (PROJECT / "Makefile").read_text()
    recipe = re.search(r"^ui:.*\n\t(.+)$", makefile, flags=re.MULTILINE)
    assert recipe is not None
    assert "dg dev" in recipe.group(1)
    assert re.search(r"-h 127\.0\.0\.1\b", recipe.group(1))
