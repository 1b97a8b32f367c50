"""The warehouse and catalog: atomic partitions, views, concurrent builds and readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from upath import UPath

from mfn_pipeline.lib import warehouse as storage
from mfn_pipeline.lib.catalog import refresh_catalog
from mfn_pipeline.lib.warehouse import Warehouse, WarehouseError

from .conftest import PROJECT, catalog_connection, contract_frame, project_settings


def test_a_write_adds_a_generation_and_the_newest_is_the_partition(warehouse: Warehouse) -> None:
    first = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", rows=2))
    second = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[3]))
    folder = Path(warehouse.root) / "mfn_dataset" / "small"
    # No temporary file is left, and no file ever changes content once named.
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.name, second.name])
    assert first.name < second.name
    assert warehouse.stored_file("mfn_dataset", "small") == second
    assert warehouse.read("mfn_dataset", "small")["sim_id"].to_list() == [3]
    assert not Path(warehouse.catalog).exists()  # the step that writes refreshes the catalog
    refresh_catalog(warehouse.root, Path(warehouse.catalog))
    with catalog_connection(warehouse.catalog) as con:
        assert con.execute("SELECT sim_id FROM dataset").fetchall() == [(3,)]


def test_every_stored_file_says_what_each_column_means_and_its_unit(warehouse: Warehouse) -> None:
    path = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset"))
    batches = iter([contract_frame("simulation_runs")])
    streamed = warehouse.write_batches("simulation_runs", "small", batches).path
    record = warehouse.write_record("builds", "small", "run-1", contract_frame("builds"))
    for file, table in ((path, "mfn_dataset"), (streamed, "simulation_runs"), (record, "builds")):
        schema = pq.read_schema(file.path)
        assert schema.metadata[b"table"] == table.encode()
        for name in schema.names:
            assert schema.field(name).metadata[b"description"], (table, name)
    dataset = pq.read_schema(path.path)
    assert dataset.field("V_mean").metadata[b"unit"] == b"mV"
    assert b"volts" in dataset.field("V_mean").metadata[b"description"]
    assert pq.read_schema(streamed.path).field("field").metadata[b"unit"] == b"V"


def test_a_superseded_generation_is_retired_once_it_was_replaced_long_enough_ago(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", rows=1))
    second = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", rows=2))
    assert Path(first.path).exists()  # a reader holding the previous catalog still finds it
    # An hour later, as the next build writes:
    later = time.time_ns() + (storage.SUPERSEDED_KEPT_S + 1) * 1_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: later)
    third = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", rows=3))
    assert not Path(first.path).exists()
    assert Path(second.path).exists()  # replaced just now: kept for its readers
    assert third.name > second.name
    assert warehouse.read("mfn_dataset", "small").height == 3
    assert warehouse.stored_file("mfn_dataset", "small") == third


def test_a_generation_is_named_when_it_lands_so_a_slow_write_replaces_a_quicker_one(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow() -> Iterator[pl.DataFrame]:
        yield contract_frame("mfn_dataset", sim_id=[1])
        # Another build of the preset lands while this stream is being written.
        warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[2]))
        yield contract_frame("mfn_dataset", sim_id=[3])

    streamed = warehouse.write_batches("mfn_dataset", "small", slow())
    assert warehouse.stored_file("mfn_dataset", "small") == streamed.path
    assert warehouse.read("mfn_dataset", "small")["sim_id"].to_list() == [1, 3]
    # The hour a replaced file stays starts when its successor landed, not when it began.
    kept = storage.SUPERSEDED_KEPT_S * 1_000_000_000
    just_under = time.time_ns() + kept - 60 * 1_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: just_under)
    warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[4]))
    assert Path(streamed.path.path).exists()


def test_a_clock_set_back_never_makes_a_new_write_lose_to_an_older_one(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[1]))
    an_hour_ago = time.time_ns() - 3600 * 1_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: an_hour_ago)  # the same ns, twice
    for sim_id in (2, 3):
        path = warehouse.write(
            "mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[sim_id])
        )
        assert warehouse.stored_file("mfn_dataset", "small") == path
    assert warehouse.read("mfn_dataset", "small")["sim_id"].to_list() == [3]


@pytest.mark.parametrize(
    "name",
    ["20261324T000000000000000Z-0123abcd.parquet", "20991231T235959000000000Z-0123abcd.parquet"],
)
def test_a_file_named_like_a_generation_that_is_none_is_passed_over_or_repaired(
    warehouse: Warehouse, name: str
) -> None:
    folder = Path(warehouse.root) / "mfn_dataset" / "small"
    folder.mkdir(parents=True)
    (folder / name).mkdir()  # a folder (or, below, junk bytes) where a file could be
    written = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[1]))
    assert warehouse.stored_file("mfn_dataset", "small") == written
    (folder / name).rmdir()
    (folder / name).write_bytes(b"junk")
    skipped = " ".join(storage.view_files(warehouse.root).skipped)
    assert name in skipped
    # A rebuild is what every message says to do, and it repairs the partition.
    repaired = warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[2]))
    assert warehouse.stored_file("mfn_dataset", "small") == repaired
    assert warehouse.read("mfn_dataset", "small")["sim_id"].to_list() == [2]


def test_a_partition_of_the_earlier_layout_is_read_until_a_build_replaces_it(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = Path(warehouse.root) / "mfn_dataset" / "small.parquet"
    earlier.parent.mkdir(parents=True)
    contract_frame("mfn_dataset", rows=2).write_parquet(earlier)
    assert warehouse.read("mfn_dataset", "small").height == 2
    assert refresh_catalog(warehouse.root, Path(warehouse.catalog)).views.files["dataset"] == (
        str(earlier),
    )
    warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", rows=1))
    assert warehouse.read("mfn_dataset", "small").height == 1
    refresh_catalog(warehouse.root, Path(warehouse.catalog))
    with catalog_connection(warehouse.catalog) as con:
        assert con.execute("SELECT count(*) FROM dataset").fetchall() == [(1,)]
    later = time.time_ns() + (storage.SUPERSEDED_KEPT_S + 1) * 1_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: later)
    warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset", rows=3))
    assert not earlier.exists()


REPLACER = """
import sys, time, numpy as np, polars as pl
from mfn_pipeline.lib.warehouse import Warehouse
warehouse, stop = Warehouse(root=sys.argv[1], catalog=sys.argv[2]), time.time() + float(sys.argv[3])
k = 0
while time.time() < stop:
    n = 1000 + (k % 7) * 997  # each generation has other row groups and offsets
    warehouse.write("mfn_dataset", "small", pl.DataFrame({
        "preset": ["small"] * n, "x": np.random.rand(n), "f": [np.random.rand(40)] * n}))
    k += 1
print(k)
"""


def test_queries_during_rewrites_of_a_partition_never_read_a_mix_of_two_files(
    tmp_path: Path,
) -> None:
    # DuckDB opens a file more than once in one query (its footer, then its row
    # groups): a file renamed over in between was read half old, half new ("Invalid
    # data", "Out of buffer"). Generations never change content once named.
    root, catalog = str(tmp_path / "warehouse"), str(tmp_path / "mfn.duckdb")
    Warehouse(root=root, catalog=catalog).write("mfn_dataset", "small", pl.DataFrame({"x": [0.5]}))
    writer = subprocess.Popen(
        [sys.executable, "-c", REPLACER, root, catalog, "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # it logs each write's catalog refresh
        text=True,
    )
    queries, failures = 0, []
    try:
        while writer.poll() is None:
            files = storage._generations(UPath(root) / "mfn_dataset" / "small")
            listed = ", ".join(f"'{file}'" for file in files[-1:])
            try:
                with duckdb.connect() as con:
                    con.execute(f"SELECT count(*), sum(x) FROM read_parquet([{listed}])").fetchall()
                queries += 1
            except duckdb.Error as exc:
                failures.append(str(exc)[:120])
    finally:
        out = writer.communicate(timeout=60)[0]
    assert writer.returncode == 0
    assert int(out) > 20
    assert queries > 50
    assert failures == []


def test_catalog_is_rebuilt_only_when_its_list_of_files_changes(warehouse: Warehouse) -> None:
    root, catalog = warehouse.root, Path(warehouse.catalog)
    warehouse.write("simulation_runs", "small", contract_frame("simulation_runs"))
    assert refresh_catalog(root, catalog).rebuilt
    inode = catalog.stat().st_ino
    assert not refresh_catalog(root, catalog).rebuilt
    assert catalog.stat().st_ino == inode
    warehouse.write("simulation_runs", "small", contract_frame("simulation_runs", rows=2))
    warehouse.write("simulation_runs", "medium", contract_frame("simulation_runs", "medium"))
    assert refresh_catalog(root, catalog).rebuilt  # views name each partition's current file
    assert catalog.stat().st_ino != inode
    with catalog_connection(catalog) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(3,)]
    warehouse.write_record("builds", "small", "run-1", contract_frame("builds"))
    assert refresh_catalog(root, catalog).rebuilt


def test_a_reader_holding_the_catalog_open_never_blocks_a_build(warehouse: Warehouse) -> None:
    root, catalog = warehouse.root, Path(warehouse.catalog)
    warehouse.write("simulation_runs", "small", contract_frame("simulation_runs"))
    refresh_catalog(root, catalog)
    with catalog_connection(catalog) as held:
        warehouse.write("fractal_features", "small", contract_frame("fractal_features"))
        assert refresh_catalog(root, catalog).rebuilt
        assert held.execute("SELECT count(*) FROM runs").fetchall() == [(1,)]
    with catalog_connection(warehouse.catalog) as con:
        assert con.execute("SELECT count(*) FROM features").fetchall() == [(1,)]


def test_unreadable_partition_names_the_file_and_the_fix(warehouse: Warehouse) -> None:
    with pytest.raises(
        WarehouseError, match="not been built; rebuild the partition: mfn build small"
    ):
        warehouse.read("mfn_dataset", "small")
    path = Path(warehouse.root) / "mfn_dataset" / "small.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(WarehouseError) as excinfo:
        warehouse.read("mfn_dataset", "small")
    assert str(path) in str(excinfo.value)
    assert "--partition small" in str(excinfo.value)


def test_a_failing_file_system_is_not_called_a_damaged_file(warehouse: Warehouse) -> None:
    # The OS refusing to read is not a damaged file: rebuilding would be the wrong fix,
    # and the error stays an OSError, which the build's retry policy retries.
    # (A listing passes over a folder named like a file, so the reader is given one.)
    path = warehouse.write("mfn_dataset", "small", pl.DataFrame({"x": [1.0]}))
    Path(path.path).unlink()
    Path(path.path).mkdir()
    for read in (storage._decoded, lambda *args: list(storage._decoded_batches(*args))):
        with pytest.raises(IsADirectoryError):
            read(path, None, "rebuild")


def test_a_leftover_the_cleanup_cannot_remove_does_not_fail_the_write(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    folder = Path(warehouse.root) / "mfn_dataset" / "small"
    stuck = folder / ".20260101T000000000000000Z-01234567.parquet.0123.tmp"
    stuck.mkdir(parents=True)  # opening it fails with an OSError other than "not found"
    warehouse.write("mfn_dataset", "small", pl.DataFrame({"x": [1.0]}))
    assert warehouse.read("mfn_dataset", "small")["x"].to_list() == [1.0]
    assert stuck.is_dir()
    assert str(stuck) in caplog.text


READER = """
import json, sys, time, duckdb, pathlib
catalog, stop, out, mode = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4]
folder = str(pathlib.Path(catalog).parent)  # the views name files relative to it
queries = errors = 0
seen, failures = [], []
held = None  # mode "held": one connection open for the whole test, as a notebook would


def count(con):
    global queries
    views = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    for view in sorted(views & {"runs", "dataset"}):
        rows = con.execute(f"SELECT preset, count(*) FROM {view} GROUP BY preset").fetchall()
        seen.extend([view, preset, n] for preset, n in rows)
        queries += 1


while not stop.exists():
    if not pathlib.Path(catalog).exists():
        time.sleep(0.05)
        continue
    try:
        if mode == "held":
            if held is None:
                held = duckdb.connect(catalog, read_only=True)
                held.execute("SET file_search_path = ?", [folder])
            count(held)
        else:  # a new connection per query sees each rebuilt catalog
            with duckdb.connect(catalog, read_only=True) as fresh:
                fresh.execute("SET file_search_path = ?", [folder])
                count(fresh)
    except Exception as exc:
        errors += 1
        failures.append(repr(exc))
    time.sleep(0.02)
json.dump({"queries": queries, "errors": errors, "failures": failures[:5], "seen": seen},
          open(out, "w"))
"""


def test_three_builds_at_once_while_a_reader_queries(tmp_path: Path) -> None:
    presets = ["small", "benchmark", "medium"]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "MFN_WAREHOUSE": str(tmp_path / "warehouse"),
        "MFN_CATALOG": str(tmp_path / "mfn.duckdb"),
    }
    Path(env["DAGSTER_HOME"]).mkdir()
    # A deployed instance exists before builds start; creating its SQLite storage from
    # three processes at once would race in Dagster's own schema migration.
    subprocess.run(
        [sys.executable, "-c", "import dagster as dg; i = dg.DagsterInstance.get(); i.get_runs()"],
        env=env,
        check=True,
    )
    stop = tmp_path / "stop"
    outs = {mode: tmp_path / f"reader-{mode}.json" for mode in ("held", "fresh")}
    # Separate processes: within one process DuckDB shares an open database between
    # connections, so a fresh connection would not see a rebuilt catalog.
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, env["MFN_CATALOG"], str(stop), str(out), mode], env=env
        )
        for mode, out in outs.items()
    ]
    dg = Path(sys.executable).with_name("dg")
    builds = [
        subprocess.Popen(
            [
                str(dg),
                "launch",
                "-m",
                "mfn_pipeline.definitions",
                "--assets",
                "*",
                "--partition",
                preset,
            ],
            env=env,
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for preset in presets
    ]
    logs = [build.communicate(timeout=600)[0] for build in builds]
    time.sleep(0.5)  # let the reader see the final state too
    stop.touch()
    for reader in readers:
        reader.wait(timeout=60)
    for build, log in zip(builds, logs, strict=True):
        assert build.returncode == 0, log[-3000:]

    expected = {name: project_settings().presets[name].num_samples for name in presets}
    for mode, out in outs.items():
        report = json.loads(out.read_text())
        assert report["errors"] == 0, (mode, report["failures"])
        assert report["queries"] > 10, mode
        partial = [(v, p, c) for v, p, c in report["seen"] if c != expected[p]]
        assert partial == [], mode  # every query saw whole partitions only
    fresh = json.loads(outs["fresh"].read_text())
    # The fresh reader saw every preset in both tables while the builds went on.
    assert {(v, p) for v, p, _ in fresh["seen"]} == {
        (view, preset) for view in ("runs", "dataset") for preset in presets
    }
    with catalog_connection(env["MFN_CATALOG"]) as con:
        counts = dict(
            con.execute("SELECT preset, count(*) FROM dataset GROUP BY preset").fetchall()
        )
    assert counts == expected


def test_builds_keep_one_record_file_per_build(warehouse: Warehouse) -> None:
    for run in ("run-1", "run-2", "run-1"):
        warehouse.write_record("builds", "small", run, pl.DataFrame({"build_id": [run]}))
    history = warehouse.read_records("builds", "small")
    assert history is not None
    assert sorted(history["build_id"].to_list()) == ["run-1", "run-2"]
    # Records of an older layout (a subset of the contract's columns) stay in the view.
    refresh_catalog(warehouse.root, Path(warehouse.catalog))
    with catalog_connection(warehouse.catalog) as con:
        assert con.execute("SELECT count(*) FROM builds").fetchall() == [(2,)]


def test_a_url_warehouse_stores_partitions_even_when_duckdb_cannot_view_it(
    tmp_path: Path,
) -> None:
    remote = Warehouse(root="memory://mfn-test-warehouse", catalog=str(tmp_path / "mfn.duckdb"))
    frame = pl.DataFrame({"sim_id": [1, 2]})
    path = remote.write("mfn_dataset", "small", frame)
    assert str(path).startswith("memory://")
    assert remote.read("mfn_dataset", "small").equals(frame)


ESCAPES = ["..", "../small", "/etc/passwd", "a/b", "small/../../x", "", ".", "~", "sm all", "Ä"]


@pytest.mark.parametrize("key", ESCAPES)
def test_partition_keys_that_could_leave_the_warehouse_are_refused(
    warehouse: Warehouse, key: str
) -> None:
    frame = pl.DataFrame({"sim_id": [0]})
    with pytest.raises(WarehouseError, match="no path can leave the warehouse"):
        warehouse.write("mfn_dataset", key, frame)
    with pytest.raises(WarehouseError, match="no path can leave the warehouse"):
        warehouse.write_record("builds", "small", key, frame)
    with pytest.raises(WarehouseError, match="no path can leave the warehouse"):
        warehouse.read("mfn_dataset", key)
    assert not Path(warehouse.root).exists()  # nothing was written anywhere


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.sampled_from(["mfn_dataset", "../x", "builds/.."]))
def test_no_key_or_table_name_resolves_outside_the_warehouse(key: str, table: str) -> None:
    warehouse = Warehouse(root="/srv/warehouse", catalog="/srv/mfn.duckdb")
    try:
        path = Path(warehouse.partition_folder(table, key).path)
    except WarehouseError:
        return
    assert path.resolve().is_relative_to("/srv/warehouse")
    assert path.parent == Path("/srv/warehouse") / table
    assert path.name == key
