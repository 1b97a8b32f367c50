"""The catalog file: any DuckDB client opens it, it moves with its folder, it views only
the product's own files, and it never replaces a file that is not the product's catalog.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from mfn_pipeline.lib.catalog import catalog_problem, refresh_catalog
from mfn_pipeline.lib.settings import ConfigError, Environment, load_settings
from mfn_pipeline.lib.warehouse import VIEWS, Warehouse, WarehouseError, view_files

from .conftest import PROJECT, build, catalog_connection, contract_frame, project_settings

TABLES = [table for table in VIEWS.values() if table != "builds"]
EXPECTED_ROWS = {"runs": 5, "features": 5, "dataset": 5, "preset_summary": 2, "builds": 2}


def fill(warehouse: Warehouse) -> None:
    """Two presets in every table and a build record each, as builds leave them."""
    for preset, rows in (("small", 3), ("medium", 2)):
        for table in TABLES:
            n = 1 if table == "preset_summary" else rows
            warehouse.write(table, preset, contract_frame(table, preset, rows=n))
        record = contract_frame("builds", preset, build_id=f"run-{preset}")
        warehouse.write_record("builds", preset, f"run-{preset}", record)
    refresh_catalog(warehouse.root, Path(warehouse.catalog))


def counts(catalog: Path) -> dict[str, int]:
    with catalog_connection(catalog) as con:
        return {
            view: con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0] for view in VIEWS
        }


# --- every DuckDB client from 1.1 on ----------------------------------------------------

CLIENTS = PROJECT / ".cache" / "duckdb-clients"
# Each environment gets what pip resolves for these; 1.5.x is the newest 1.x line
# (duckdb-cli brings the `duckdb` executable) and 1.1 the oldest client promised.
CLIENT_REQUIREMENTS = {
    "v1.5": ("duckdb-cli==1.5.*", "duckdb==1.5.*"),
    "v1.1": ("duckdb==1.1.*",),
}


@pytest.fixture(scope="session")
def duckdb_clients() -> dict[str, Path]:
    """A virtual environment per DuckDB line, installed once into the project's cache."""
    CLIENTS.mkdir(parents=True, exist_ok=True)
    venvs = {}
    with open(CLIENTS / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be installing
        for name, requirements in CLIENT_REQUIREMENTS.items():
            venv = CLIENTS / name
            stamp = venv / "installed.json"
            if not stamp.exists() or json.loads(stamp.read_text()) != list(requirements):
                shutil.rmtree(venv, ignore_errors=True)
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
                subprocess.run(
                    [str(venv / "bin" / "pip"), "install", "--quiet", *requirements],
                    check=True,
                    timeout=600,
                )
                stamp.write_text(json.dumps(list(requirements)))
            venvs[name] = venv
    return venvs


CLIENT_COUNT = """
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
if sys.argv[2]:
    con.execute("SET file_search_path = ?", [sys.argv[2]])
views = sys.argv[3].split(",")
# Every column decodes; a zoned timestamp as text, since 1.x needs pytz for its objects.
rows = {v: con.execute(f"SELECT * REPLACE (CAST(finished_at AS VARCHAR) AS finished_at) FROM {v}"
                       if v == "builds" else f"SELECT * FROM {v}").fetchall() for v in views}
print(json.dumps({"version": duckdb.__version__, **{v: len(r) for v, r in rows.items()}}))
"""


def test_every_duckdb_client_from_1_1_on_opens_the_catalog(
    warehouse: Warehouse, duckdb_clients: dict[str, Path], tmp_path: Path
) -> None:
    fill(warehouse)
    catalog = Path(warehouse.catalog)
    views = ",".join(VIEWS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = {}
    for name, venv in duckdb_clients.items():
        python = str(venv / "bin" / "python")
        # From the catalog's own folder, and from anywhere with file_search_path.
        for cwd, search in ((catalog.parent, ""), (elsewhere, str(catalog.parent))):
            args = [python, "-c", CLIENT_COUNT, str(catalog), search, views]
            done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
            assert done.returncode == 0, (name, cwd, done.stderr[-2000:])
            report = json.loads(done.stdout)
            seen[name] = report.pop("version")
            assert report == EXPECTED_ROWS, (name, cwd)
    assert seen["v1.1"].startswith("1.1.")
    assert seen["v1.5"].startswith("1.5.")

    cli = str(duckdb_clients["v1.5"] / "bin" / "duckdb")
    query = " UNION ALL ".join(f"SELECT '{v}' AS view, count(*) AS n FROM {v}" for v in VIEWS)
    for cwd, setup in (
        (catalog.parent, []),
        (elsewhere, ["-cmd", f"SET file_search_path = '{catalog.parent}'"]),
    ):
        done = subprocess.run(
            [cli, "-readonly", "-json", *setup, str(catalog), "-c", query],
            cwd=cwd, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert {row["view"]: row["n"] for row in json.loads(done.stdout)} == EXPECTED_ROWS
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v1.5.")


# --- a catalog that moves with its folder -------------------------------------------


def test_views_name_files_relative_to_the_catalog_folder(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    fill(warehouse)
    with catalog_connection(warehouse.catalog) as con:
        sql = " ".join(
            row[0]
            for row in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()
        )
    assert "'warehouse/mfn_dataset/small/" in sql
    assert str(tmp_path) not in sql


def test_a_copied_data_folder_reads_its_own_files_and_a_moved_one_still_works(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    original = Warehouse(root=str(data / "warehouse"), catalog=str(data / "mfn.duckdb"))
    fill(original)
    copy = tmp_path / "copy" / "data"
    shutil.copytree(data, copy)
    # A changed value in the original must not show in the copy, nor the other way.
    original.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[41]))
    copied = Warehouse(root=str(copy / "warehouse"), catalog=str(copy / "mfn.duckdb"))
    copied.write("mfn_dataset", "small", contract_frame("mfn_dataset", sim_id=[42]))
    for warehouse in (original, copied):
        refresh_catalog(warehouse.root, Path(warehouse.catalog))
    query = "SELECT sim_id FROM dataset WHERE preset = 'small'"
    with catalog_connection(copy / "mfn.duckdb") as con:
        assert con.execute(query).fetchall() == [(42,)]
    with catalog_connection(data / "mfn.duckdb") as con:
        assert con.execute(query).fetchall() == [(41,)]

    moved = tmp_path / "moved"
    data.rename(moved)
    with catalog_connection(moved / "mfn.duckdb") as con:
        assert con.execute(query).fetchall() == [(41,)]
    assert counts(moved / "mfn.duckdb")["runs"] == EXPECTED_ROWS["runs"]


def test_a_warehouse_beside_the_catalog_folder_is_named_with_dotdot(tmp_path: Path) -> None:
    warehouse = Warehouse(
        root=str(tmp_path / "store"), catalog=str(tmp_path / "sql" / "mfn.duckdb")
    )
    fill(warehouse)
    with catalog_connection(warehouse.catalog) as con:
        (sql,) = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'runs'").fetchall()[
            0
        ]
    assert "'../store/simulation_runs/medium/" in sql
    assert counts(Path(warehouse.catalog)) == EXPECTED_ROWS
    # Both folders moved together keep working.
    (tmp_path / "moved").mkdir()
    for name in ("store", "sql"):
        (tmp_path / name).rename(tmp_path / "moved" / name)
    assert counts(tmp_path / "moved" / "sql" / "mfn.duckdb") == EXPECTED_ROWS


def test_a_catalog_reached_through_a_symlinked_folder_names_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    # '..' from the linked folder leads to the real folder's parent, not tmp_path.
    warehouse = Warehouse(root=str(tmp_path / "wh"), catalog=str(tmp_path / "link" / "mfn.duckdb"))
    fill(warehouse)
    assert counts(real / "mfn.duckdb") == EXPECTED_ROWS


# --- only the product's own files reach a view ---------------------------------------


def test_foreign_files_are_left_out_with_a_reason_and_the_catalog_still_builds(
    warehouse: Warehouse, caplog: pytest.LogCaptureFixture
) -> None:
    fill(warehouse)
    root = Path(warehouse.root)
    # A valid Parquet file of another schema (a stray export), one with a foreign name,
    # one whose footer does not decode, and a partition of an older layout.
    pl.DataFrame({"sim_id": [1], "note": ["export"]}).write_parquet(
        root / "mfn_dataset" / "extra.parquet"
    )
    contract_frame("mfn_dataset").write_parquet(root / "mfn_dataset" / "Copy of small.parquet")
    (root / "simulation_runs" / "broken.parquet").write_bytes(b"PAR1 not really")
    older = contract_frame("fractal_features", "large").drop("H_entropy")
    older.write_parquet(root / "fractal_features" / "large.parquet")
    retyped = contract_frame("preset_summary", "large").with_columns(pl.col("runs").cast(pl.Int32))
    retyped.write_parquet(root / "preset_summary" / "large.parquet")
    caplog.set_level(logging.WARNING, "mfn_pipeline.lib.warehouse")

    refreshed = refresh_catalog(warehouse.root, Path(warehouse.catalog))
    assert not refreshed.rebuilt  # none of them reaches a view, so the views stay as they are
    skipped = "\n".join(refreshed.views.skipped)
    for name, why in (
        ("extra.parquet", "missing D_box"),
        ("Copy of small.parquet", "its name is not a preset's"),
        ("broken.parquet", "not a readable Parquet file"),
        ("fractal_features/large.parquet", "missing H_entropy"),
        ("preset_summary/large.parquet", "runs is Int32, expected Int64"),
    ):
        (line,) = [line for line in refreshed.views.skipped if name in line]
        assert why in line
        assert "left out of view" in line
        assert "move it out of the warehouse" in line or "mfn build" in line
        assert line in caplog.text
    assert len(refreshed.views.skipped) == 5, skipped
    assert counts(Path(warehouse.catalog)) == EXPECTED_ROWS  # no NULL rows, no retyped column
    with catalog_connection(warehouse.catalog) as con:
        (kind,) = con.execute("SELECT typeof(runs) FROM preset_summary LIMIT 1").fetchall()[0]
    assert kind == "BIGINT"


def test_a_build_shows_the_files_the_catalog_leaves_out(
    environment: Environment, warehouse: Warehouse, instance: dg.DagsterInstance
) -> None:
    stray = Path(warehouse.root) / "preset_summary" / "export.parquet"
    stray.parent.mkdir(parents=True)
    pl.DataFrame({"x": [1]}).write_parquet(stray)

    result = build("small", environment, instance)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("preset_summary")
    listed = materialization.metadata["catalog_skipped_files"].value
    assert f"{stray}: left out of view preset_summary" in str(listed)
    assert counts_of(warehouse, "preset_summary") == 1


def test_copies_and_exports_of_a_partition_are_left_out(warehouse: Warehouse) -> None:
    fill(warehouse)
    root = Path(warehouse.root)
    small = Path(warehouse.stored_file("mfn_dataset", "small").path)
    # `mfn export small --out <warehouse>/mfn_dataset/export.parquet`, a copy saved
    # under another preset's name, and a build record filed under another preset.
    shutil.copy(small, root / "mfn_dataset" / "export.parquet")
    shutil.copy(small, root / "mfn_dataset" / "large.parquet")
    (root / "builds" / "large").mkdir()
    shutil.copy(root / "builds" / "small" / "run-small.parquet", root / "builds" / "large")
    # No statistics in the footer: the rows are read instead.
    pl.read_parquet(small).write_parquet(
        root / "mfn_dataset" / "benchmark.parquet", statistics=False
    )

    refreshed = refresh_catalog(warehouse.root, Path(warehouse.catalog))
    for name, owner in (
        ("mfn_dataset/export.parquet", "export"),
        ("mfn_dataset/large.parquet", "large"),
        ("builds/large/run-small.parquet", "large"),
        ("mfn_dataset/benchmark.parquet", "benchmark"),
    ):
        (line,) = [line for line in refreshed.views.skipped if name in line]
        assert f"its rows belong to preset 'small', not {owner!r}" in line
    assert counts(Path(warehouse.catalog)) == EXPECTED_ROWS  # small is not counted twice


def counts_of(warehouse: Warehouse, view: str) -> int:
    with catalog_connection(warehouse.catalog) as con:
        return int(con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0])


def test_build_records_of_an_older_layout_stay_viewed_and_foreign_ones_do_not(
    warehouse: Warehouse,
) -> None:
    fill(warehouse)
    folder = Path(warehouse.root) / "builds" / "small"
    contract_frame("builds", build_id="old").select("build_id", "preset", "runs").write_parquet(
        folder / "old.parquet"
    )
    contract_frame("builds", build_id="odd").with_columns(
        pl.col("runs").cast(pl.String)
    ).write_parquet(folder / "odd.parquet")
    pl.DataFrame({"preset": ["small"]}).write_parquet(folder / "nokey.parquet")
    contract_frame("builds").write_parquet(Path(warehouse.root) / "builds" / "loose.parquet")
    files = view_files(warehouse.root)
    assert sorted(Path(f).name for f in files.files["builds"]) == [
        "old.parquet", "run-medium.parquet", "run-small.parquet",
    ]  # fmt: skip
    assert len(files.skipped) == 3
    refresh_catalog(warehouse.root, Path(warehouse.catalog))
    with catalog_connection(warehouse.catalog) as con:
        rows = con.execute("SELECT build_id, code_version FROM builds ORDER BY 1").fetchall()
    assert rows == [("old", None), ("run-medium", "x"), ("run-small", "x")]


def test_the_signature_follows_the_list_of_files(warehouse: Warehouse) -> None:
    fill(warehouse)
    catalog = Path(warehouse.catalog)
    assert not refresh_catalog(warehouse.root, catalog).rebuilt
    warehouse.write_record("builds", "small", "run-2", contract_frame("builds", build_id="run-2"))
    assert refresh_catalog(warehouse.root, catalog).rebuilt
    assert counts(catalog)["builds"] == 3
    (Path(warehouse.root) / "builds" / "small" / "run-2.parquet").unlink()
    assert refresh_catalog(warehouse.root, catalog).rebuilt
    assert counts(catalog)["builds"] == 2


# --- never overwrite a file that is not the product's catalog -----------------------


def foreign_duckdb(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE notes AS SELECT 'mine' AS text")


@pytest.fixture
def locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The warehouse (set in the environment) and the folder around it."""
    warehouse = tmp_path / "warehouse"
    monkeypatch.setenv("MFN_WAREHOUSE", str(warehouse))
    return warehouse, tmp_path


REFUSED: dict[str, tuple[str, str]] = {
    "a text file": ("notes.txt", "is not a DuckDB database"),
    "a partition's Parquet file": ("(the built partition small)", "is not a DuckDB database"),
    "a folder": ("folder", "is a folder, not a file"),
    "another DuckDB database": (
        "other.duckdb",
        "a DuckDB database without the table mfn_catalog_info",
    ),
    "a symlink": ("link.duckdb", "is a symbolic link"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_catalog_path_that_is_not_the_products_catalog_is_refused_before_any_write(
    case: str, locations: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, tmp_path = locations
    warehouse = Warehouse(root=str(root), catalog=str(tmp_path / "mfn.duckdb"))
    fill(warehouse)
    name, message = REFUSED[case]
    target = tmp_path / name
    if case == "a partition's Parquet file":
        target = Path(warehouse.stored_file("mfn_dataset", "small").path)
    elif case == "a text file":
        target.write_text("my notes\n")
    elif case == "a folder":
        target.mkdir()
    elif case == "another DuckDB database":
        foreign_duckdb(target)
    elif case == "a symlink":
        target.symlink_to(tmp_path / "notes.txt")
        (tmp_path / "notes.txt").write_text("my notes\n")
    monkeypatch.setenv("MFN_CATALOG", str(target))

    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert len(str(refused.value).splitlines()) == 1
    assert str(target) in str(refused.value)
    assert message in str(refused.value)
    assert "$MFN_CATALOG" in str(refused.value)

    # Checked again right before a write: nothing is replaced, not even the partition.
    partitions = {p: p.read_bytes() for p in root.rglob("*.parquet")}
    before = target.read_bytes() if target.is_file() else None
    with pytest.raises(WarehouseError, match=message):
        refresh_catalog(str(root), target, force=True)
    # A build whose catalog path changed after its configuration loaded stops at its
    # first step, before that step writes a partition.
    monkeypatch.delenv("MFN_CATALOG")
    environment = dataclasses.replace(
        project_settings().environment, warehouse=str(root), catalog=target
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = build("small", environment, instance)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "simulation_runs"
    assert message in str(failure.event_specific_data)
    assert {p: p.read_bytes() for p in root.rglob("*.parquet")} == partitions
    assert (target.read_bytes() if target.is_file() else None) == before


@pytest.mark.parametrize("damage", ["zero bytes", "cut", "overwritten blocks"])
def test_an_empty_or_damaged_catalog_is_named_and_rebuilt(
    damage: str, warehouse: Warehouse, locations: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(warehouse)
    catalog = Path(warehouse.catalog)
    if damage == "zero bytes":
        catalog.write_bytes(b"")
        expected = "the catalog is empty (0 bytes)"
    elif damage == "cut":
        catalog.write_bytes(catalog.read_bytes()[:9000])  # DuckDB's magic bytes, then a cut
        expected = "the catalog is damaged"
    else:
        # Junk over everything after the headers, the marker table's name included:
        # DuckDB says "checksum ... in block ...", which is damage, not a lock.
        data = bytearray(catalog.read_bytes())
        data[4096:] = random.Random(0).randbytes(len(data) - 4096)
        catalog.write_bytes(bytes(data))
        expected = "the catalog is damaged"
    problem = catalog_problem(catalog)
    assert problem is not None
    assert expected in problem
    assert "it is rebuilt by the next build, or now with: mfn catalog" in problem
    assert len(problem.splitlines()) == 1
    monkeypatch.setenv("MFN_CATALOG", str(catalog))
    load_settings()  # ours to replace: accepted
    assert refresh_catalog(warehouse.root, catalog).rebuilt
    assert catalog_problem(catalog) is None
    assert counts(catalog) == EXPECTED_ROWS


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # read-write, as a notebook that forgot read_only
print("held", flush=True)
time.sleep(120)
"""


def test_a_catalog_held_read_write_elsewhere_says_open_it_read_only(warehouse: Warehouse) -> None:
    fill(warehouse)
    catalog = Path(warehouse.catalog)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(catalog)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        problem = catalog_problem(catalog)
        assert problem is not None
        assert "another process holds the catalog open read-write" in problem
        assert "read_only=True" in problem
        assert f"PID {holder.pid}" in problem
        # It is still this product's catalog: a build replaces it all the same.
        warehouse.write("mfn_dataset", "large", contract_frame("mfn_dataset", "large"))
        assert refresh_catalog(warehouse.root, catalog).rebuilt
        assert counts(catalog)["dataset"] == EXPECTED_ROWS["dataset"] + 1
    finally:
        holder.kill()
        holder.wait()


def test_a_foreign_database_held_elsewhere_is_not_replaced(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    foreign_duckdb(other)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(other)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        before = other.read_bytes()
        assert "without the table mfn_catalog_info" in str(catalog_problem(other))
        warehouse = Warehouse(root=str(tmp_path / "warehouse"), catalog=str(other))
        warehouse.write("mfn_dataset", "small", contract_frame("mfn_dataset"))
        with pytest.raises(WarehouseError, match="without the table mfn_catalog_info"):
            refresh_catalog(warehouse.root, other)
        assert other.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MFN_WAREHOUSE", "wb[1]/wh"),
        ("MFN_WAREHOUSE", "data/*/wh"),
        ("MFN_CATALOG", "cat{a,b}/mfn.duckdb"),
        ("MFN_CATALOG", "what?.duckdb"),
    ],
)
def test_locations_with_glob_characters_are_refused_at_load(
    variable: str, value: str, locations: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, tmp_path = locations
    monkeypatch.setenv(variable, str(tmp_path / value))
    with pytest.raises(ConfigError, match="DuckDB reads as a file pattern") as refused:
        load_settings()
    assert f"${variable}" in str(refused.value)
    assert len(str(refused.value).splitlines()) == 1


@pytest.mark.parametrize(
    "inside",
    ["mfn_dataset/mfn.duckdb", "builds/small/mfn.duckdb", ".", "simulation_runs", "builds"],
)
def test_a_catalog_inside_the_warehouse_tables_or_equal_to_it_is_refused(
    inside: str, locations: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = locations
    monkeypatch.setenv("MFN_CATALOG", str(root / inside))
    with pytest.raises(ConfigError, match="MFN_CATALOG"):
        load_settings()
    monkeypatch.setenv("MFN_CATALOG", str(root / "mfn.duckdb"))  # its top folder is fine
    assert load_settings().environment.catalog == root / "mfn.duckdb"


# --- leftovers of killed rebuilds -----------------------------------------------------

REBUILDER = """
import sys
from pathlib import Path
from mfn_pipeline.lib.catalog import refresh_catalog
print("ready", flush=True)
while True:
    refresh_catalog(sys.argv[1], Path(sys.argv[2]), force=True)
"""


def test_killed_rebuilds_leave_temporary_files_that_the_next_rebuild_removes(
    warehouse: Warehouse,
) -> None:
    fill(warehouse)
    catalog = Path(warehouse.catalog)
    folder = catalog.parent

    def leftovers() -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".tmp.wal")))

    seen = []
    for trial in range(12):
        rebuilder = subprocess.Popen(
            [sys.executable, "-c", REBUILDER, warehouse.root, str(catalog)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert rebuilder.stdout is not None
        assert rebuilder.stdout.readline().strip() == "ready"
        time.sleep(0.2 + 0.017 * trial)
        rebuilder.send_signal(signal.SIGKILL)
        assert rebuilder.wait(timeout=30) == -signal.SIGKILL
        seen += leftovers()
        if seen:
            break
    assert seen, "no kill landed inside a rebuild"
    other = folder / ".other.duckdb.0123456789abcdef0123456789abcdef.tmp"
    other.write_bytes(b"someone else's")
    refresh_catalog(warehouse.root, catalog)
    assert leftovers() == [other.name]  # only this catalog's own leftovers go
    assert catalog_problem(catalog) is None
    assert counts(catalog) == EXPECTED_ROWS


# --- mfn catalog --------------------------------------------------------------------


def mfn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfn_pipeline.cli", *args],
        env={**os.environ, **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_mfn_catalog_rebuilds_now_and_lists_views_and_skipped_files(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    fill(warehouse)
    catalog = Path(warehouse.catalog)
    catalog.write_bytes(b"")
    stray = Path(warehouse.root) / "mfn_dataset" / "export.parquet"
    pl.DataFrame({"x": [1]}).write_parquet(stray)
    env = {"MFN_WAREHOUSE": warehouse.root, "MFN_CATALOG": str(catalog)}
    done = mfn("catalog", env=env)
    assert done.returncode == 0, done.stderr
    assert "the catalog is empty (0 bytes)" in done.stdout
    for view in VIEWS:
        assert view in done.stdout
    assert f"skipped {stray}: left out of view dataset" in done.stdout
    assert counts(catalog) == EXPECTED_ROWS

    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    refused = mfn("catalog", env={**env, "MFN_CATALOG": str(notes)})
    assert refused.returncode == 1
    assert "is not a DuckDB database" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert notes.read_text() == "mine\n"
