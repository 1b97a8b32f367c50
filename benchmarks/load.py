"""Load: every preset rebuilt several times with the multiprocess executor under a reader.

    python -m benchmarks.load [--rounds 3] [--presets small medium ...]

Each round materializes every asset of every preset (`dg launch`,
prod environment: multiprocess executor) into one scratch warehouse, while a
separate process queries the catalog in a loop, reconnecting each time as a user
would. Afterwards every view must hold each preset exactly once, and the reader
must have had no failed query and seen only whole partitions. Prints rows/s, the
peak memory of the build processes and what the reader saw; exits 1 on any loss,
duplicate or failed query.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from mfn_pipeline.lib.settings import load_settings

PROJECT = Path(__file__).parents[1]
READER = """
import json, sys, time, duckdb, pathlib
catalog, stop, out = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
whole = json.loads(sys.argv[4])
queries = failures = torn = 0
errors = []
while not stop.exists():
    if not pathlib.Path(catalog).exists():
        time.sleep(0.05)
        continue
    try:
        with duckdb.connect(catalog, read_only=True) as con:
            # As users open it: the views name files relative to the catalog's folder.
            con.execute("SET file_search_path = ?", [str(pathlib.Path(catalog).parent)])
            views = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
            for view in sorted(views & {"runs", "dataset"}):
                for preset, n in con.execute(
                    f"SELECT preset, count(*) FROM {view} GROUP BY preset"
                ).fetchall():
                    queries += 1
                    torn += n != whole[preset]
    except Exception as exc:
        failures += 1
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.02)
json.dump({"queries": queries, "failures": failures, "torn": torn, "errors": errors[:5]},
          open(out, "w"))
"""


@dataclass
class LoadReport:
    rounds: int
    presets: list[str]
    seconds: float = 0.0
    rows_built: int = 0
    builds_failed: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    reader: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows_built / self.seconds if self.seconds else 0.0


def run_load(rounds: int, presets: list[str], scratch: Path) -> LoadReport:
    """Rebuild ``presets`` ``rounds`` times under a looping reader; report what happened."""
    catalog = scratch / "mfn.duckdb"
    (scratch / "dagster_home").mkdir()
    (scratch / "dagster_home" / "dagster.yaml").write_text(
        (PROJECT / "configs" / "dagster.yaml").read_text()
    )
    env = {
        **os.environ,
        "MFN_ENV": "prod",
        "MFN_WAREHOUSE": str(scratch / "warehouse"),
        "MFN_CATALOG": str(catalog),
        "DAGSTER_HOME": str(scratch / "dagster_home"),
    }
    whole = {name: preset.num_samples for name, preset in load_settings().presets.items()}
    stop, reader_out = scratch / "stop", scratch / "reader.json"
    report = LoadReport(rounds=rounds, presets=presets)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(catalog), str(stop), str(reader_out), json.dumps(whole)]
    )
    dg = str(Path(sys.executable).parent / "dg")
    materialize = [dg, "launch", "-m", "mfn_pipeline.definitions", "--assets", "*"]
    start = time.perf_counter()
    try:
        for round_number in range(1, rounds + 1):
            for preset in presets:
                done = subprocess.run(
                    [*materialize, "--partition", preset],
                    cwd=PROJECT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    report.builds_failed.append(f"round {round_number} {preset}")
                    report.problems.append(done.stderr[-2000:])
                else:
                    report.rows_built += whole[preset]
    finally:
        report.seconds = time.perf_counter() - start
        stop.touch()
        reader.wait(timeout=60)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    report.peak_rss_mib = children.ru_maxrss / 1024  # KiB on Linux
    report.reader = json.loads(reader_out.read_text())
    _check_tables(report, catalog, presets, whole)
    return report


def _check_tables(
    report: LoadReport, catalog: Path, presets: list[str], whole: dict[str, int]
) -> None:
    with duckdb.connect(str(catalog), read_only=True) as con:
        con.execute("SET file_search_path = ?", [str(catalog.parent)])
        for view in ("runs", "features", "dataset"):
            counts = dict(
                con.execute(f"SELECT preset, count(*) FROM {view} GROUP BY preset").fetchall()
            )
            distinct = dict(
                con.execute(
                    f"SELECT preset, count(DISTINCT sim_id) FROM {view} GROUP BY preset"
                ).fetchall()
            )
            for preset in presets:
                if counts.get(preset) != whole[preset] or distinct.get(preset) != whole[preset]:
                    report.problems.append(
                        f"{view}/{preset}: {counts.get(preset)} rows, "
                        f"{distinct.get(preset)} distinct sim_ids, expected {whole[preset]}"
                    )
        builds = dict(con.execute("SELECT preset, count(*) FROM builds GROUP BY preset").fetchall())
    for preset in presets:
        if builds.get(preset) != report.rounds:
            report.problems.append(
                f"builds/{preset}: {builds.get(preset)} records, expected {report.rounds}"
            )
    if report.reader.get("failures") or report.reader.get("torn"):
        report.problems.append(f"reader: {report.reader}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=sorted(load_settings().presets))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mfn-load-") as scratch:
        report = run_load(args.rounds, args.presets, Path(scratch))
    print(
        f"{report.rounds} rounds of {', '.join(report.presets)} "
        f"(multiprocess executor, SQLite instance), reader reconnecting every query"
    )
    print(f"  builds:  {report.rounds * len(report.presets)} run, "
          f"{len(report.builds_failed)} failed")  # fmt: skip
    print(
        f"  rows:    {report.rows_built} in {report.seconds:.1f} s = {report.rows_per_s:.1f} rows/s"
    )
    print(f"  memory:  peak RSS of one build process {report.peak_rss_mib:.0f} MiB")
    print(
        f"  reader:  {report.reader.get('queries')} queries, "
        f"{report.reader.get('failures')} failed, "
        f"{report.reader.get('torn')} partial partitions seen"
    )
    for problem in report.problems:
        print(f"  PROBLEM: {problem}")
    return 1 if report.problems or report.builds_failed else 0


if __name__ == "__main__":
    sys.exit(main())
