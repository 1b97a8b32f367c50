"""Load: every preset rebuilt three times under a reader, and a 10,000-run sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.load import run_load
from benchmarks.sweep_memory import measure
from mfn_pipeline.partitions import SETTINGS


@pytest.mark.slow
def test_three_backfills_of_every_preset_under_a_reader_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    report = run_load(3, sorted(SETTINGS.presets), tmp_path)
    assert report.builds_failed == []
    assert report.problems == []  # every view holds each preset once, builds has 3 records
    assert report.rows_built == 3 * sum(p.num_samples for p in SETTINGS.presets.values())
    assert report.reader["failures"] == 0
    assert report.reader["torn"] == 0
    queries = report.reader["queries"]
    assert isinstance(queries, int)
    assert queries > 100


@pytest.mark.slow
def test_a_10000_run_sweep_needs_barely_more_memory_than_100_runs() -> None:
    short, long = measure(100), measure(10_000)
    assert (short.runs, long.runs) == (100, 10_000)
    assert long.failed == 0
    # Side by side in one run: rows grow 100x, the peak must not follow.
    assert long.peak_rss_mib < 1.5 * short.peak_rss_mib, (short, long)
