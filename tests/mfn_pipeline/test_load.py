"""Load: every preset rebuilt three times under a reader (sweep memory: test_sweep_memory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import run_load

from .conftest import project_settings


@pytest.mark.slow
def test_three_backfills_of_every_preset_under_a_reader_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    report = run_load(3, sorted(project_settings().presets), tmp_path)
    assert report.builds_failed == []
    assert report.problems == []  # every view holds each preset once, builds has 3 records
    assert report.rows_built == 3 * sum(p.num_samples for p in project_settings().presets.values())
    assert report.reader["failures"] == 0
    assert report.reader["torn"] == 0
    queries = report.reader["queries"]
    assert isinstance(queries, int)
    assert queries > 100
