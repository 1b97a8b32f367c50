"""`mfn sql` against real partitions: the sandbox, the limits, every result type, the errors."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mfn_pipeline import cli
from mfn_pipeline.lib import catalog
from mfn_pipeline.lib.catalog import QueryFailedError, QueryRefusedError
from mfn_pipeline.lib.settings import Environment
from mfn_pipeline.lib.warehouse import Warehouse, WarehouseError

from .conftest import PROJECT, build, project_settings

SMALL_RUNS = project_settings().presets["small"].num_samples


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small preset built once for real; tests copy it and never change this one."""
    root = tmp_path_factory.mktemp("sql")
    environment = dataclasses.replace(
        project_settings().environment,
        warehouse=str(root / "warehouse"),
        catalog=root / "mfn.duckdb",
    )
    with dg.DagsterInstance.ephemeral() as instance:
        assert build("small", environment, instance).success
    return root


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def local(built_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Environment:
    """A private copy of the built warehouse and catalog; the command points at it."""
    shutil.copytree(built_warehouse / "warehouse", tmp_path / "warehouse")
    shutil.copy(built_warehouse / "mfn.duckdb", tmp_path / "mfn.duckdb")
    environment = dataclasses.replace(
        project_settings().environment,
        warehouse=str(tmp_path / "warehouse"),
        catalog=tmp_path / "mfn.duckdb",
    )
    use(environment, monkeypatch)
    return environment


def use(environment: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(project_settings(), environment=environment)
    monkeypatch.setattr(cli, "_settings", lambda: settings)


@pytest.fixture
def memory_root(local: Environment) -> Iterator[str]:
    """The same partitions in fsspec's in-memory file system, as a URL warehouse."""
    fs = fsspec.filesystem("memory")
    root = f"/mfn-{uuid.uuid4().hex}"
    base = Path(local.warehouse)
    for path in base.rglob("*.parquet"):
        fs.pipe_file(f"{root}/{path.relative_to(base)}", path.read_bytes())
    yield root
    fs.rm(root, recursive=True)


WAREHOUSE_KINDS = ("local", "file-url", "memory-url")


@pytest.fixture(params=WAREHOUSE_KINDS)
def any_warehouse(
    request: pytest.FixtureRequest, local: Environment, monkeypatch: pytest.MonkeyPatch
) -> Environment:
    """The built partitions behind a local path, a file:// URL or a memory:// URL."""
    if request.param == "local":
        return local
    if request.param == "file-url":
        url = Path(local.warehouse).as_uri()
    else:
        url = f"memory://{request.getfixturevalue('memory_root')}"
    environment = dataclasses.replace(local, warehouse=url)
    use(environment, monkeypatch)
    return environment


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    out = io.StringIO()
    code = cli.main(args, out)
    return code, out.getvalue(), capsys.readouterr().err


# --- nothing a query says can write a file or read outside the partitions ----------


def stored(environment: Environment, table: str) -> str:
    """Where the built partition small of ``table`` is, as a path or URL of its warehouse."""
    warehouse = Warehouse(root=environment.warehouse, catalog=str(environment.catalog))
    name = warehouse.stored_file(table, "small").name
    return f"{environment.warehouse.rstrip('/')}/{table}/small/{name}"


def attacks(environment: Environment, tmp_path: Path, outside: Path) -> list[str]:
    """Statements that would write or read files if any file system were reachable."""
    warehouse = environment.warehouse.rstrip("/")
    partition = stored(environment, "mfn_dataset")
    fake = f"{warehouse}/mfn_dataset/fake.parquet"
    cat = str(environment.catalog)
    copy = "COPY (SELECT 1 AS x) TO"
    return [
        f"{copy} '{partition}' (FORMAT parquet)",
        f"{copy} '{fake}' (FORMAT parquet)",
        f"{copy} '{cat}' (FORMAT csv)",
        f"{copy} '{outside}'",
        f"{copy} '{tmp_path}/new.csv'",
        f"{copy} 'relative.csv'",
        f"EXPLAIN ANALYZE {copy} '{partition}' (FORMAT parquet)",
        f"EXPLAIN ANALYZE {copy} '{fake}' (FORMAT parquet)",
        f"EXPLAIN ANALYZE {copy} '{outside}'",
        f"EXPORT DATABASE '{tmp_path}/export'",
        f"EXPORT DATABASE '{outside}'",
        f"ATTACH '{tmp_path}/new.duckdb' AS other",
        f"ATTACH '{cat}' AS cat",
        f"ATTACH '{cat}' AS cat (READ_ONLY)",
        f"ATTACH '{outside}' AS outside",
        "INSTALL httpfs",
        "LOAD httpfs",
        f"LOAD '{tmp_path}/evil.duckdb_extension'",
        "SET enable_external_access = true",
        "SET disabled_filesystems = ''",
        "SET lock_configuration = false",
        f"SET temp_directory = '{tmp_path}/spill'",
        f"SET profiling_output = '{outside}'",
        "RESET enable_external_access",
        "PRAGMA enable_profiling",
        "PRAGMA enable_external_access",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        f"SELECT * FROM read_parquet('{partition}')",
        f"SELECT * FROM '{partition}'",
        "SELECT * FROM 'x.parquet'",
        f"SELECT * FROM parquet_metadata('{partition}')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT * FROM 'https://example.com/x.csv'",
        "CALL duckdb_extensions()",
        "SELECT * FROM duckdb_extensions()",
        f"CALL parquet_schema('{partition}')",
        "SELECT * FROM secret_frame",
        "SELECT * FROM os",
        f"SELECT 1; {copy} '{outside}'",
        f"CREATE TABLE t AS SELECT 1; {copy} '{fake}' (FORMAT parquet)",
        "CHECKPOINT",
    ]


# Statements that must be refused outright: they would read a file or change settings.
MUST_FAIL = ("COPY", "EXPLAIN", "EXPORT", "ATTACH", "INSTALL", "LOAD", "SET", "RESET", "PRAGMA")


def test_no_statement_writes_or_reads_a_file_whatever_its_type(
    any_warehouse: Environment, tmp_path: Path
) -> None:
    # Run through the session directly: no statement-type check stands in front.
    secret_frame = pa.table({"password": ["hunter2"]})  # a Python name a replacement scan finds
    assert secret_frame.num_rows == 1
    outside = Path(f"/tmp/mfn-sql-{uuid.uuid4().hex}.csv")
    before = snapshot(tmp_path)
    memory = fsspec.filesystem("memory")
    memory_before = {p: memory.cat_file(p) for p in memory.find("/")}
    answered, refusals = [], []
    for sql in attacks(any_warehouse, tmp_path, outside):
        with catalog.open_warehouse(any_warehouse, catalog.Limits(timeout_s=30)) as session:
            try:
                _, batches = session.execute(sql).stream("text")
                rows = [row for batch in batches for row in batch.to_pylist()]
            except (QueryRefusedError, QueryFailedError) as exc:
                refusals.append(str(exc))
                continue
        assert not sql.startswith(MUST_FAIL), f"{sql} ran: {rows}"
        answered.append(sql)
    assert all("\n" not in refusal for refusal in refusals)
    # What may run touches only the in-memory database.
    assert answered == ["CHECKPOINT"]
    assert snapshot(tmp_path) == before
    assert not outside.exists()
    assert not Path("relative.csv").exists()
    assert {p: memory.cat_file(p) for p in memory.find("/")} == memory_before


def test_the_command_refuses_writes_and_foreign_reads_with_any_warehouse(
    any_warehouse: Environment, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    partition = stored(any_warehouse, "mfn_dataset")
    local_partition = Path(local.warehouse) / "mfn_dataset"
    before = snapshot(local_partition)
    for sql in (
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS sim_id) TO '{partition}' (FORMAT parquet)",
        "SELECT * FROM read_csv('/etc/passwd')",
    ):
        code, _, err = run(["sql", sql], capsys)
        assert code == cli.EXIT_FAILURE
        assert err.count("\n") == 1
        assert "Permission Error" in err
        assert "mfn sql reads only its views" in err
    assert snapshot(local_partition) == before


@pytest.mark.parametrize(
    "sql",
    [
        "SUMMARIZE SELECT sim_id FROM dataset",
        "DESCRIBE dataset",
        "FROM dataset SELECT count(*)",
        "PIVOT (SELECT preset, sim_id FROM dataset) ON preset USING count(*)",
        "EXPLAIN SELECT * FROM dataset",
    ],
)
def test_read_only_statement_forms_answer(
    sql: str, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sql", sql], capsys)
    assert (code, err) == (cli.EXIT_OK, "")
    assert out.startswith("┌")


def test_every_warehouse_kind_answers_from_its_partitions(
    any_warehouse: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["sql", "SELECT preset, count(*) AS n FROM dataset GROUP BY preset", "--format", "csv"],
        capsys,
    )
    assert (code, err) == (cli.EXIT_OK, "")
    assert list(csv.reader(io.StringIO(out))) == [["preset", "n"], ["small", str(SMALL_RUNS)]]
    code, out, _ = run(["sql", "SHOW TABLES", "--format", "csv"], capsys)
    views = ["builds", "dataset", "features", "preset_summary", "runs"]
    assert list(csv.reader(io.StringIO(out))) == [["name"], *([v] for v in views)]


# --- limits: time, memory, printed rows ----------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM range(1000000000000)",
        "SELECT count(*) FROM range(1000000) a, range(1000000) b",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    ],
)
def test_a_runaway_query_stops_at_the_time_limit(
    sql: str, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sql", sql, "--timeout", "0.5"], capsys)
    assert code == cli.EXIT_FAILURE
    assert out == ""
    assert err.count("\n") == 1
    assert "time limit of 0.5 s" in err
    assert f"{catalog.TIMEOUT_FLAG} SECONDS" in err


def test_a_query_past_the_memory_limit_fails_saying_how_to_raise_it(
    local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT list(range) FROM range(1000000000)"
    code, _, err = run(["sql", sql, "--memory-limit", "64MB"], capsys)
    assert code == cli.EXIT_FAILURE
    assert err.count("\n") == 1
    assert "memory than its limit of 64MB" in err
    assert catalog.MEMORY_FLAG in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--timeout", "0"), ("--timeout", "soon"), ("--memory-limit", "lots"), ("--max-rows", "-1")],
)
def test_a_bad_limit_is_a_usage_error(
    flag: str, value: str, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["sql", "SELECT 1", flag, value])
    assert usage.value.code == cli.EXIT_USAGE
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_printed_rows_stop_at_the_cap_and_say_so(
    fmt: str, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["sql", "SELECT range AS n FROM range(30000000)", "--format", fmt, "--max-rows", "7"],
        capsys,
    )
    assert code == cli.EXIT_OK
    if fmt == "csv":
        assert list(csv.reader(io.StringIO(out))) == [["n"], *([str(i)] for i in range(7))]
    elif fmt == "json":
        assert json.loads(out) == [{"n": i} for i in range(7)]
    else:
        assert "│ 6 " in out
        assert "│ 7 " not in out
    assert err == (
        f"mfn sql: showed the first 7 rows; more exist: print more with {catalog.ROWS_FLAG} N, "
        "or write every row to a file with --out FILE\n"
    )
    # Exactly the cap: nothing more exists, so nothing is said.
    code, out, err = run(
        ["sql", "SELECT range AS n FROM range(7)", "--format", fmt, "--max-rows", "7"], capsys
    )
    assert (code, err) == (cli.EXIT_OK, "")


PROBE = """
import sys
from mfn_pipeline.cli import main
from mfn_pipeline.lib.metering import peak_resident_bytes
code = main(sys.argv[1:])
sys.stderr.write(f"peak_kib={peak_resident_bytes() // 1024}\\n")
sys.exit(code)
"""


def peak_kib(args: list[str], tmp_path: Path) -> int:
    """Peak resident memory of an `mfn` process running ``args``, in KiB."""
    env = {
        **os.environ,
        "MFN_WAREHOUSE": str(tmp_path / "warehouse"),
        "MFN_CATALOG": str(tmp_path / "mfn.duckdb"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stderr.rsplit("peak_kib=", 1)[1])


def test_a_huge_result_prints_and_streams_in_bounded_memory(tmp_path: Path) -> None:
    def rows(n: int) -> str:
        return f"SELECT range AS n, range * 0.5 AS half FROM range({n})"

    small = peak_kib(["sql", rows(1), "--format", "csv"], tmp_path)
    printed = peak_kib(["sql", rows(30_000_000), "--format", "csv"], tmp_path)
    # 30 million rows are about 480 MB as Arrow and GBs as text: only the cap is fetched.
    assert printed / small < 1.25, (small, printed)

    written = {}
    for n in (3_000_000, 30_000_000):
        target = tmp_path / f"{n}.parquet"
        written[n] = peak_kib(
            ["sql", rows(n), "--format", "parquet", "--out", str(target)], tmp_path
        )
        assert pq.ParquetFile(target).metadata.num_rows == n
    # Streamed in row groups: ten times the rows, about the same peak.
    assert written[30_000_000] / written[3_000_000] < 1.25, written


# --- every result type renders ---------------------------------------------------------

# One column per DuckDB type family, with extreme values; the second row is all NULL.
TYPED_VALUES = {
    "interval": "INTERVAL '1 year 2 months 3 days 04:05:06.789'",
    "union_": "union_value(num := 2)::UNION(num INTEGER, s VARCHAR)",
    "date_inf": "'infinity'::DATE",
    "date_min": "'5877642-06-25 (BC)'::DATE",
    "ts_ninf": "'-infinity'::TIMESTAMP",
    "ts_max": "'294247-01-10 04:00:54.775806'::TIMESTAMP",
    "tstz_inf": "'infinity'::TIMESTAMPTZ",
    "tstz": "'2020-01-01 12:00:00+05'::TIMESTAMPTZ",
    "hugeint_max": "170141183460469231731687303715884105727::HUGEINT",
    "hugeint_min": "(-170141183460469231731687303715884105727 - 1)::HUGEINT",
    "uhugeint_max": "340282366920938463463374607431768211455::UHUGEINT",
    "ubigint_max": "18446744073709551615::UBIGINT",
    "decimal": "12345678901234567890123456789.123456789::DECIMAL(38,9)",
    "bit": "'101010'::BIT",
    "blob": "'\\xAA\\x00ab'::BLOB",
    "enum": "'ok'::ENUM('sad', 'ok')",
    "time": "'12:34:56.789'::TIME",
    "timetz": "'12:34:56+02'::TIMETZ",
    "uuid": "'0b5c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3'::UUID",
    "bignum": "123456789012345678901234567890123456789012345::BIGNUM",
    "list": "[1, NULL, 3]",
    "list_uhugeint": "[340282366920938463463374607431768211455::UHUGEINT]",
    "struct": "{'a': 1, 'b': [1.5]}",
    "map": "MAP {'k': 1}",
    "array": "[1, 2, 3]::INTEGER[3]",
    "double_nan": "'nan'::DOUBLE",
    "double_inf": "'-inf'::DOUBLE",
    "float": "0.1::FLOAT",
    "text": "'quo\"te, comma\nnew line'",
    "null": "NULL",
}
TYPED_SQL = (
    "SELECT "
    + ", ".join(
        f"CASE WHEN i = 1 THEN {value} END AS {name}" for name, value in TYPED_VALUES.items()
    )
    + " FROM range(1, 3) t(i) ORDER BY i"
)


def duckdb_text() -> list[list[str | None]]:
    """DuckDB's own text of every value, from a plain connection."""
    text = duckdb.connect().sql(TYPED_SQL).query("r", "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM r")
    assert text is not None
    rows = text.fetchall()
    return [list(row) for row in rows]


def test_every_type_prints_as_duckdb_text_in_csv(
    local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sql", TYPED_SQL, "--format", "csv"], capsys)
    assert (code, err) == (cli.EXIT_OK, "")
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header == list(TYPED_VALUES)
    expected = duckdb_text()
    assert rows[0] == ["" if v is None else v for v in expected[0]]  # NULL: an empty field
    assert rows[1] == [""] * len(TYPED_VALUES)
    assert expected[0][header.index("uhugeint_max")] == "340282366920938463463374607431768211455"


@pytest.mark.parametrize("name", list(TYPED_VALUES))
def test_every_type_prints_as_duckdb_text_in_a_table(
    name: str, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sql", f"SELECT {TYPED_VALUES[name]} AS v"], capsys)
    assert (code, err) == (cli.EXIT_OK, "")
    ((text,),) = duckdb.connect().sql(f"SELECT CAST({TYPED_VALUES[name]} AS VARCHAR)").fetchall()
    for line in (text or "null").splitlines():
        assert line in out


def test_every_type_is_valid_json_with_exact_numbers(
    local: Environment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def strict(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    code, out, err = run(["sql", TYPED_SQL, "--format", "json"], capsys)
    assert (code, err) == (cli.EXIT_OK, "")
    rows = json.loads(out, parse_constant=strict)
    target = tmp_path / "typed.json"
    assert run(["sql", TYPED_SQL, "--format", "json", "--out", str(target)], capsys)[0] == 0
    assert json.loads(target.read_text(), parse_constant=strict) == rows
    first, second = rows
    assert list(first) == list(TYPED_VALUES)
    assert first["uhugeint_max"] == 2**128 - 1
    assert first["hugeint_min"] == -(2**127)
    assert first["ubigint_max"] == 2**64 - 1
    assert first["list_uhugeint"] == [2**128 - 1]
    assert first["interval"] == "1 year 2 months 3 days 04:05:06.789"
    assert first["date_inf"] == "infinity"
    assert first["list"] == [1, None, 3]
    assert first["struct"] == {"a": 1, "b": [1.5]}
    assert first["double_nan"] is None  # JSON has no NaN or infinity
    assert first["text"] == 'quo"te, comma\nnew line'
    assert set(second.values()) == {None}


def test_every_type_survives_parquet(
    local: Environment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "typed.parquet"
    code, _, err = run(["sql", TYPED_SQL, "--format", "parquet", "--out", str(target)], capsys)
    assert (code, err) == (cli.EXIT_OK, "")
    table = pq.read_table(target)
    assert table.column_names == list(TYPED_VALUES)
    # Read back by DuckDB, every value has the text it had (types Parquet lacks are text).
    back = duckdb.connect()
    back.register("back", table)
    text = back.sql("SELECT CAST(COLUMNS(*) AS VARCHAR) FROM back").fetchall()
    assert [list(row) for row in text] == duckdb_text()
    assert table.schema.field("uhugeint_max").type == pa.string()
    assert table.schema.field("double_inf").type == pa.float64()
    assert table.schema.field("list").type == pa.list_(pa.int32())


def test_repeated_column_names_get_a_suffix_in_every_format(
    local: Environment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sql = 'SELECT 1 AS a, 2 AS a, 3 AS "a.b"'
    assert json.loads(run(["sql", sql, "--format", "json"], capsys)[1]) == [
        {"a": 1, "a_1": 2, "a.b": 3}
    ]
    assert "a_1" in run(["sql", sql], capsys)[1]
    target = tmp_path / "dup.parquet"
    assert run(["sql", sql, "--format", "parquet", "--out", str(target)], capsys)[0] == 0
    assert pq.read_table(target).column_names == ["a", "a_1", "a.b"]


# --- every failure is one line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT no_such_column FROM dataset", 'Binder Error: Referenced column "no_such_column"'),
        ("SELECT * FROM no_such_table", "views: builds, dataset, features, preset_summary, runs"),
        ("SELECT * FROMM dataset", "Parser Error: syntax error"),
        ("SELECT 'abc'::INTEGER", "Conversion Error"),
    ],
)
def test_a_failing_query_is_one_line(
    sql: str, message: str, local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["sql", sql], capsys)
    assert code == cli.EXIT_FAILURE
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("mfn sql: ")
    assert message in err


def damage_pages(path: Path) -> None:
    """Overwrite the data pages and keep the footer: the file passes footer validation."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(4, len(data) - footer, 3):
        data[i] = 0xFF
    path.write_bytes(bytes(data))
    assert pq.ParquetFile(path).metadata.num_rows == SMALL_RUNS


def test_a_damaged_partition_is_named_with_its_rebuild(
    local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(stored(local, "mfn_dataset"))
    damage_pages(path)
    code, out, err = run(["sql", "SELECT * FROM dataset"], capsys)
    assert code == cli.EXIT_FAILURE
    assert err.count("\n") == 1
    assert f"{path}: not a readable Parquet file" in err
    assert "mfn build small" in err
    # Views that do not read the damaged file still answer.
    code, out, _ = run(["sql", "SELECT count(*) AS n FROM runs", "--format", "csv"], capsys)
    assert (code, out.split()) == (cli.EXIT_OK, ['"n"', f'"{SMALL_RUNS}"'])


def test_a_file_left_out_of_a_view_is_a_warning_and_the_rest_answers(
    local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    stray = Path(local.warehouse) / "mfn_dataset" / "medium.parquet"
    stray.write_bytes(b"")
    code, out, err = run(["sql", "SELECT count(*) AS n FROM dataset", "--format", "csv"], capsys)
    assert code == cli.EXIT_OK
    assert out.split() == ['"n"', f'"{SMALL_RUNS}"']
    assert err.startswith("mfn sql: warning: ")
    assert str(stray) in err


def test_a_damaged_catalog_is_a_note_and_queries_still_answer(
    local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    local.catalog.write_bytes(b"\x00garbage" * 64)
    code, out, err = run(["sql", "SELECT count(*) AS n FROM dataset", "--format", "csv"], capsys)
    assert code == cli.EXIT_OK
    assert out.split() == ['"n"', f'"{SMALL_RUNS}"']
    assert err.startswith("mfn sql: warning: ")
    assert str(local.catalog) in err


def test_a_view_whose_every_file_was_left_out_names_the_file_and_its_fix(
    local: Environment,
) -> None:
    path = Path(stored(local, "simulation_runs"))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WarehouseError) as refused:
        catalog.query(local, "SELECT count(*) FROM runs")
    assert str(refused.value).startswith(f"view runs has no readable file: {path}: ")
    assert "mfn build small" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_before_any_build_a_view_query_says_what_to_do(
    environment: Environment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use(environment, monkeypatch)
    code, _, err = run(["sql", "SELECT * FROM dataset"], capsys)
    assert code == cli.EXIT_FAILURE
    assert "build a preset first (mfn build small)" in err
    assert run(["sql", "SELECT 42 AS answer"], capsys)[:2] == (
        cli.EXIT_OK,
        "┌────────┐\n│ answer │\n╞════════╡\n│ 42     │\n└────────┘\n",
    )


def test_ctrl_c_is_one_line_and_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "all.csv"
    env = {**os.environ, "MFN_WAREHOUSE": str(tmp_path / "wh"), "MFN_CATALOG": str(tmp_path / "c")}
    sql = "SELECT * FROM range(10000000000)"
    command = [sys.executable, "-m", "mfn_pipeline.cli", "sql", sql, "--format", "csv"]
    query = subprocess.Popen(
        [*command, "--out", str(target)],
        env=env,
        cwd=PROJECT,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / f".{target.name}.partial"
    deadline = time.monotonic() + 120
    while not partial.exists() and query.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert partial.exists(), "the query never started writing"
    query.send_signal(signal.SIGINT)
    _, err = query.communicate(timeout=60)
    assert query.returncode == cli.EXIT_FAILURE
    assert err == "mfn sql: the query was interrupted (Ctrl-C)\n"
    assert sorted(tmp_path.iterdir()) == []


def test_a_notebook_holding_the_catalog_read_write_does_not_block_a_query(
    local: Environment, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
            "sys.stdin.read()",
            str(local.catalog),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        code, out, err = run(
            ["sql", "SELECT count(*) AS n FROM dataset", "--format", "csv"], capsys
        )
    finally:
        holder.communicate(timeout=60)
    assert code == cli.EXIT_OK
    assert out.split() == ['"n"', f'"{SMALL_RUNS}"']
    assert err.startswith("mfn sql: warning: ")
    assert "read_only=True" in err
