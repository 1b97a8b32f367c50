"""The ``mfn`` command: list presets, build them through Dagster, query and export the data.

Exit status: 0 success, 1 failure (a build, a query, the configuration), 2 usage,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mfn_core.resources import BATCH_TARGET_BYTES
from mfn_pipeline.lib import catalog
from mfn_pipeline.lib.settings import PROJECT_ROOT, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    import dagster as dg
    from dagster_shared.error import SerializableErrorInfo

    from mfn_pipeline.lib import figures

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + 2  # what a shell reports for a program stopped by SIGINT
# The formats of an --out file, by its extension; `mfn sql` also prints a table.
FILE_FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}
FORMATS = ("table", *FILE_FORMATS.values())
NOT_LOADED = "NOT LOADED"


class UsageError(Exception):
    """The command line asks for something that does not exist."""


def _settings() -> Settings:
    """The environment file and every preset, read now (each command reads them once)."""
    return load_settings()


def _known_preset(settings: Settings, name: str) -> str:
    # A preset whose file does not load is still known: building it fails with the
    # file's message, and its data from earlier builds can still be read.
    if name not in settings.partitions:
        raise UsageError(
            f"unknown preset {name!r}; known presets: {', '.join(settings.partitions)}"
        )
    return name


def cmd_presets(args: argparse.Namespace, out: TextIO) -> int:
    """The presets as a table; a file that did not load is a row with its problem.

    Exits 1 when any preset file did not load (after listing every preset), so a
    script or CI job that runs ``mfn presets`` to check the files stops on a broken
    one; the full message of each such file goes to stderr.
    """
    settings = _settings()
    rows = [
        {
            "name": p.name,
            "status": "ok",
            "grid": f"{p.grid_size}x{p.grid_size}",
            "steps": p.steps,
            "runs": p.num_samples,
            "sweep": "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in p.sweep) or "-",
            "description": p.description,
        }
        for p in settings.presets.values()
    ]
    for problem in settings.problems:
        rows.append(
            {
                "name": problem.partition or problem.path.name,
                "status": NOT_LOADED,
                "grid": "-",
                "steps": None,
                "runs": None,
                "sweep": "-",
                "description": problem.message.removeprefix(f"{problem.path}: "),
            }
        )
    rows.sort(key=lambda row: str(row["name"]))
    _print_table(pl.DataFrame(rows), out)
    for problem in settings.problems:
        sys.stderr.write(f"mfn presets: {NOT_LOADED}: {problem.message}\n")
    return EXIT_FAILURE if settings.problems else EXIT_OK


BUILT, CHECKS_FAILED, FAILED = "built", "CHECKS FAILED", "FAILED"


@dataclass(frozen=True)
class BuildOutcome:
    """What one preset's build run says: its status and every failure and warning, in words."""

    status: str
    checks_failed: int
    problems: list[str]
    warnings: list[str]
    interrupted: bool = False

    @classmethod
    def of(cls, preset: str, result: dg.ExecuteInProcessResult) -> BuildOutcome:
        import dagster as dg  # noqa: PLC0415 - only builds need Dagster loaded

        problems: list[str] = []
        warnings: list[str] = []
        checks_failed = 0
        interrupted = False
        for event in result.all_events:
            if event.is_step_failure:
                data = event.step_failure_data
                interrupted |= _interrupted(data.error)
                user = data.user_failure_data
                reason = (user.description if user else None) or _root_cause(data.error)
                first_line = (reason or "failed").strip().splitlines()[0]
                problems.append(f"{preset}: step {event.step_key}: {first_line}")
        # Checks evaluated before a step failed count too: they judged what was stored.
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.passed:
                continue
            line = (
                f"{preset}: check {evaluation.asset_key.to_user_string()}."
                f"{evaluation.check_name}: {evaluation.description or 'failed'}"
            )
            if evaluation.severity == dg.AssetCheckSeverity.WARN:
                warnings.append(line)
            else:
                checks_failed += 1
                problems.append(line)
        status = CHECKS_FAILED if checks_failed else BUILT
        status = status if result.success else FAILED
        return cls(status, checks_failed, problems, warnings, interrupted)


# How Dagster records a step stopped by Ctrl-C (it turns SIGINT into this error).
_INTERRUPTIONS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt"}


def _interrupted(error: SerializableErrorInfo | None) -> bool:
    while error is not None:
        if error.cls_name in _INTERRUPTIONS:
            return True
        error = error.cause
    return False


def _logged_warnings(preset: str, instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What the assets logged at WARNING or above in the run, one line each."""
    return [
        f"{preset}: step {entry.step_key}: {entry.user_message.strip().splitlines()[0]}"
        for entry in instance.all_logs(run_id)
        if not entry.is_dagster_event
        and entry.user_message
        # Dagster stores the level as a number (it accepts names when logging)
        and isinstance(entry.level, int)
        and entry.level >= logging.WARNING
    ]


def _root_cause(error: SerializableErrorInfo | None) -> str | None:
    """The innermost error of a step failure: Dagster wraps what the asset raised."""
    if error is None:
        return None
    while error.cause is not None:
        error = error.cause
    return error.message.strip()  # Dagster's message starts with the class name


def cmd_build(args: argparse.Namespace, out: TextIO) -> int:
    import dagster as dg  # noqa: PLC0415 - only this command needs Dagster loaded

    from mfn_pipeline.definitions import BUILD_JOB, definitions_for  # noqa: PLC0415
    from mfn_pipeline.defs.resources import console_log_config, supervised_run  # noqa: PLC0415
    from mfn_pipeline.lib import progress  # noqa: PLC0415
    from mfn_pipeline.lib.supervision import STARTED_BY_CLI  # noqa: PLC0415

    settings = _settings()
    # Each preset once, in the order named: a second build of it would only repeat the first.
    names = settings.partitions if args.all else list(dict.fromkeys(args.presets))
    if not names:
        raise UsageError("name at least one preset, or pass --all")
    for name in names:
        _known_preset(settings, name)
    if not os.environ.get("DAGSTER_HOME"):
        # The same instance as `make ui`, so builds show up in the UI.
        home = PROJECT_ROOT / ".dagster_home"
        home.mkdir(exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    # The code location as Dagster would load it, from the settings read here.
    job = definitions_for(settings).resolve_job_def(BUILD_JOB)
    # The progress bar, the summary and the warnings below say what Dagster's console
    # lines would; a failure's stack stays in the run's record (the UI, by run id).
    quiet = console_log_config("CRITICAL")
    summary: list[dict[str, object]] = []
    problems: list[str] = []
    warnings: list[str] = []
    with dg.DagsterInstance.get() as instance:
        for name in names:
            start = time.perf_counter()
            # Tagged with this process, so a dead build is failed (supervision.py).
            run_id, tags = supervised_run(settings.environment, STARTED_BY_CLI)
            with progress.shown(sys.stderr):
                result = job.execute_in_process(
                    partition_key=name,
                    instance=instance,
                    raise_on_error=False,
                    run_config=quiet,
                    run_id=run_id,
                    tags=tags,
                )
            outcome = BuildOutcome.of(name, result)
            if outcome.interrupted:
                if summary:
                    _print_table(pl.DataFrame(summary), out)
                sys.stderr.write(
                    f"mfn build: interrupted while building {name}; each of its tables keeps "
                    "its last complete write, presets built before it are kept and later "
                    "ones were not started\n"
                )
                return EXIT_INTERRUPTED
            problems += outcome.problems
            warnings += _logged_warnings(name, instance, result.run_id)
            preset = settings.presets.get(name)
            summary.append(
                {
                    "preset": name,
                    "status": outcome.status,
                    "runs": preset.num_samples if preset else None,
                    "seconds": round(time.perf_counter() - start, 2),
                    "checks_failed": outcome.checks_failed,
                    "checks_warned": len(outcome.warnings),
                    "run_id": result.run_id,
                }
            )
            warnings += outcome.warnings
    _print_table(pl.DataFrame(summary), out)
    # Failures and warnings in full, one per line: the table only counts them.
    for line in problems:
        out.write(f"FAILED  {line}\n")
    for line in warnings:
        out.write(f"warning {line}\n")
    return EXIT_OK if all(row["status"] == BUILT for row in summary) else EXIT_FAILURE


def cmd_sql(args: argparse.Namespace, out: TextIO) -> int:
    fmt = _output_format(args.format, args.out)
    if args.out is not None and args.max_rows is not None:
        raise UsageError(
            f"{catalog.ROWS_FLAG} caps the rows printed and --out writes every row; pass one"
        )
    catalog.check_read_only(args.query)
    limits = catalog.Limits(timeout_s=args.timeout, memory_limit=args.memory_limit)
    try:
        with catalog.open_warehouse(_settings().environment, limits) as session:
            # The query answers from the other files; the user learns what was left out.
            for line in (session.note, *session.skipped):
                if line:
                    sys.stderr.write(f"mfn sql: warning: {line}\n")
            _emit(session.execute(args.query), fmt, args.out, out, args.max_rows)
    except KeyboardInterrupt:
        raise catalog.QueryFailedError("the query was interrupted (Ctrl-C)") from None
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace, out: TextIO) -> int:
    import duckdb  # noqa: PLC0415 - only this command opens DuckDB itself

    from mfn_pipeline.lib.catalog import catalog_problem, refresh_catalog  # noqa: PLC0415
    from mfn_pipeline.lib.warehouse import VIEWS  # noqa: PLC0415

    env = _settings().environment
    before = catalog_problem(env.catalog)
    try:
        refreshed = refresh_catalog(env.warehouse, env.catalog, force=True)
    except duckdb.Error as exc:
        sys.stderr.write(f"mfn catalog: {env.catalog}: could not be rebuilt: {exc}\n")
        return EXIT_FAILURE
    files = refreshed.views.files
    rows = [
        {"view": view, "table": table, "files": len(files.get(view, ()))}
        for view, table in VIEWS.items()
    ]
    _print_table(pl.DataFrame(rows), out)
    was = f" (it was: {before})" if before else ""
    out.write(f"{env.catalog}: rebuilt from {env.warehouse}{was}\n")
    for line in refreshed.views.skipped:
        out.write(f"skipped {line}\n")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    from mfn_core.presets import preset_json_schema  # noqa: PLC0415

    out.write(json.dumps(preset_json_schema(), indent=2) + "\n")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    preset = args.preset
    fmt = _output_format(args.format, args.out)
    frame = _stored(preset, "mfn_dataset")
    _emit(frame, fmt, args.out, out, documented="mfn_dataset")
    out.write(f"{args.out}: {frame.height} rows x {frame.width} columns of {preset}\n")
    return EXIT_OK


def _stored(preset: str, table: str, columns: list[str] | None = None) -> pl.DataFrame:
    """One stored partition of ``table`` for a known preset."""
    from mfn_pipeline.lib.warehouse import Warehouse  # noqa: PLC0415

    settings = _settings()
    env = settings.environment
    warehouse = Warehouse(root=env.warehouse, catalog=str(env.catalog))
    return warehouse.read(table, _known_preset(settings, preset), columns)


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    from mfn_pipeline.lib import figures  # noqa: PLC0415

    image_format = _figure_format(args.out)
    preset = args.preset
    runs = _stored(preset, "simulation_runs", ["sim_id", "grid_size", "status", "field"])
    match = runs.filter(pl.col("sim_id") == args.sim_id)
    if match.is_empty():
        raise UsageError(f"{preset} has no sim_id {args.sim_id}; allowed: 0..{runs.height - 1}")
    row = match.row(0, named=True)
    if row["field"] is None:
        raise UsageError(f"run {args.sim_id} of {preset} failed ({row['status']}): no field")
    n = row["grid_size"]
    field_v = np.asarray(row["field"], dtype=np.float64).reshape(n, n)
    picture = figures.render(figures.field_figure(field_v, preset, args.sim_id), image_format)
    _check_outside_the_data(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(picture)
    low, high = field_v.min() * figures.MV_PER_V, field_v.max() * figures.MV_PER_V
    out.write(
        f"{args.out}: final field of {preset} run {args.sim_id}, {n}x{n}, "
        f"{low:.1f} to {high:.1f} mV\n"
    )
    return EXIT_OK


def cmd_plot(args: argparse.Namespace, out: TextIO) -> int:
    from mfn_pipeline.lib import figures  # noqa: PLC0415

    image_format = _figure_format(args.out)
    preset = args.preset
    dataset = _stored(preset, "mfn_dataset")
    numeric = [name for name, dtype in dataset.schema.items() if dtype.is_numeric()]
    for column in (args.x, args.y):
        if column in numeric:
            continue
        what = "is not numeric" if column in dataset.columns else "is not a data set column"
        close = difflib.get_close_matches(column, numeric, n=1)
        hint = f"; did you mean {close[0]!r}?" if close and column not in dataset.columns else ""
        raise UsageError(f"{column!r} {what}; allowed: {', '.join(numeric)}{hint}")
    figure = figures.scatter_figure(
        dataset[args.x].cast(pl.Float64).to_numpy(),
        dataset[args.y].cast(pl.Float64).to_numpy(),
        figures.column_label(args.x),
        figures.column_label(args.y),
        f"{args.y} against {args.x}, preset {preset} ({dataset.height} runs)",
    )
    picture = figures.render(figure, image_format)
    _check_outside_the_data(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(picture)
    out.write(f"{args.out}: {args.y} against {args.x} for {dataset.height} runs of {preset}\n")
    return EXIT_OK


def _figure_format(target: Path) -> figures.ImageFormat:
    """The image format --out names by its extension, checked before any data is read."""
    from mfn_pipeline.lib import figures  # noqa: PLC0415

    if target.is_dir():
        allowed = ", ".join(f"name.{name}" for name in figures.FORMATS)
        raise UsageError(f"--out {target} is a folder; name a file (allowed: {allowed})")
    try:
        return figures.format_of(target)
    except figures.FigureError as exc:
        raise UsageError(f"--out {exc}") from exc


# What each output format asks of a query's rows (catalog.Form).
_FORMS: dict[str, catalog.Form] = {
    "table": "text",
    "csv": "text",
    "json": "json",
    "parquet": "native",
}


def _output_format(fmt: str | None, target: Path | None) -> str:
    """The format rows are written in: --out's extension tells it, --format may only agree.

    An --out name without a known extension (``-``, ``rows.txt``) needs --format; an
    extension that names another format than --format is refused, so a file's name never
    says Parquet when it holds CSV or the other way round.
    """
    if target is None:
        if fmt == "parquet":
            raise UsageError("--format parquet needs --out FILE")
        return fmt or "table"
    named = FILE_FORMATS.get(target.suffix.lower())
    chosen = fmt or named
    if chosen == "table":
        raise UsageError(
            f"--format table prints to the terminal only; --out {target} takes "
            f"{', '.join(FILE_FORMATS.values())}"
        )
    if target.is_dir():
        raise UsageError(f"--out {target} is a folder; name a file (allowed: {_FILE_NAMES})")
    if chosen is None:
        raise UsageError(
            f"--out {target}: name the file's format by its extension "
            f"({', '.join(FILE_FORMATS)}) or by --format csv, json or parquet"
        )
    if named is not None and chosen != named:
        raise UsageError(
            f"--format {fmt} conflicts with --out {target}, whose extension says {named}; "
            "drop --format or rename the file"
        )
    _check_outside_the_data(target)
    return chosen


_FILE_NAMES = ", ".join(f"name{suffix}" for suffix in FILE_FORMATS)


def _check_outside_the_data(target: Path) -> None:
    """Refuse an --out file in the warehouse, over the catalog or in the configuration.

    Only builds write the data: a copy of a partition in a table folder would be a stray
    file there, and one over the catalog would replace it. The configuration is the
    user's own, and a preset or environment file written over would be lost.
    """
    from mfn_pipeline.lib.catalog import catalog_files  # noqa: PLC0415

    settings = _settings()
    environment = settings.environment
    real = Path(os.path.realpath(target))
    if real.is_relative_to(Path(os.path.realpath(settings.config_dir))):
        raise UsageError(
            f"--out {target} lies inside the configuration folder {settings.config_dir}; "
            "choose a path outside it"
        )
    if real in catalog_files(Path(os.path.realpath(environment.catalog))):
        raise UsageError(f"--out {target} would replace the catalog {environment.catalog}")
    if "://" not in environment.warehouse:
        warehouse = Path(os.path.realpath(environment.warehouse))
        if real.is_relative_to(warehouse):
            raise UsageError(
                f"--out {target} lies inside the warehouse {environment.warehouse}, where "
                "only builds write; choose a path outside it"
            )


def _emit(
    rows: pl.DataFrame | catalog.Result,
    fmt: str,
    target: Path | None,
    out: TextIO,
    max_rows: int | None = None,
    documented: str | None = None,
) -> None:
    """Rows to the terminal (at most ``max_rows``) or, streamed in batches, to ``target``.

    A Parquet file gets the descriptions and units of the columns of the table
    ``documented`` names.
    """
    if isinstance(rows, pl.DataFrame):
        # A stored partition, not a query: written the same way, with no time limit.
        with catalog.Session({"frame": rows.to_arrow()}, catalog.Limits(timeout_s=None)) as s:
            _emit(s.execute("SELECT * FROM frame"), fmt, target, out, max_rows, documented)
        return
    schema, batches = rows.stream(_FORMS[fmt])
    if target is not None:
        if documented is not None and fmt == "parquet":
            from mfn_core.columns import described  # noqa: PLC0415

            schema = described(schema, documented)
        _write_file(schema, batches, fmt, target)
        return
    shown: list[pa.RecordBatch] = []
    count, cap = 0, catalog.DEFAULT_MAX_ROWS if max_rows is None else max_rows
    more = False
    for batch in batches:
        if count + batch.num_rows > cap:
            shown.append(batch.slice(0, cap - count))
            count, more = cap, True
            break
        shown.append(batch)
        count += batch.num_rows
    table = pa.Table.from_batches(shown, schema)
    if fmt == "table":
        _print_table(pl.DataFrame(table), out)
    elif fmt == "csv":
        sink = io.BytesIO()
        pa_csv.write_csv(table, sink)
        out.write(sink.getvalue().decode())
    else:
        out.write(_json_array(table.to_batches()))
    if more:
        sys.stderr.write(
            f"mfn sql: showed the first {count} rows; more exist: print more with "
            f"{catalog.ROWS_FLAG} N, or write every row to a file with --out FILE\n"
        )


def _json_array(batches: Iterable[pa.RecordBatch]) -> str:
    rows = [row for batch in batches for row in catalog.json_rows(batch)]
    return "[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n"


def _row_groups(batches: Iterable[pa.RecordBatch]) -> Iterator[list[pa.RecordBatch]]:
    """Batches gathered into row groups of about BATCH_TARGET_BYTES, as builds write them."""
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += batch.nbytes
        if size >= BATCH_TARGET_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _write_file(
    schema: pa.Schema, batches: Iterator[pa.RecordBatch], fmt: str, target: Path
) -> None:
    """Stream ``batches`` into ``target``: a failed query leaves no partial file behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        if fmt == "parquet":
            with pq.ParquetWriter(partial, schema) as parquet:
                for group in _row_groups(batches):
                    parquet.write_table(pa.Table.from_batches(group, schema))
        elif fmt == "csv":
            with pa_csv.CSVWriter(partial, schema) as csv_out:
                for batch in batches:
                    csv_out.write_batch(batch)
        else:
            with partial.open("w", encoding="utf-8") as handle:
                separator = "[\n"
                for batch in batches:
                    for row in catalog.json_rows(batch):
                        handle.write(separator + row)
                        separator = ",\n"
                handle.write("[]\n" if separator == "[\n" else "\n]\n")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


# The widest table polars draws: off a terminal, where no width is known, a row stays
# on one line so logs and scripts can read it line by line.
UNWRAPPED_WIDTH = 2**16 - 1


def _print_table(frame: pl.DataFrame, out: TextIO) -> None:
    """``frame`` as a table that fits the terminal ``out`` writes to, if it is one.

    Polars draws it, not rich: it lays out the thousand rows `mfn sql` prints at most
    in a fraction of a second where rich takes seconds, and in the same box characters
    that scripts already read.
    """
    width = shutil.get_terminal_size().columns if out.isatty() else UNWRAPPED_WIDTH
    with pl.Config(
        tbl_rows=max(frame.height, 1),
        tbl_cols=-1,
        tbl_width_chars=width,
        fmt_str_lengths=60,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        out.write(f"{frame}\n")


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time limit; allowed: seconds > 0")
    return seconds


def _memory_limit(text: str) -> str:
    try:
        return catalog.check_memory_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _row_count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a row count; allowed: 0, 1, 2, ...")
    return int(text)


def _version() -> str:
    try:
        return f"mfn {metadata.version('mfn')}"
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "mfn (not installed: pip install -e .)"


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose summary is both its line in ``mfn -h`` and its own -h description."""
    return commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + "."
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="mfn", description="Build, query and export MFN simulation data sets."
    )
    root.add_argument(
        "--version", action="version", version=_version(), help="print mfn's version and exit"
    )
    commands = root.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do; mfn COMMAND -h tells more",
    )

    presets = _command(commands, "presets", "list the presets (one per partition)")
    presets.set_defaults(run=cmd_presets)

    build = _command(commands, "build", "build presets through Dagster (they show up in the UI)")
    which = build.add_mutually_exclusive_group()
    which.add_argument(
        "presets",
        nargs="*",
        default=[],
        metavar="PRESET",
        help="a preset to build (see mfn presets)",
    )
    which.add_argument("--all", action="store_true", help="build every preset")
    build.set_defaults(run=cmd_build)

    file_formats = ", ".join(FILE_FORMATS)
    sql = _command(commands, "sql", "run one read-only SQL query on the catalog")
    sql.add_argument("query", help='e.g. "SELECT preset, count(*) FROM dataset GROUP BY 1"')
    sql.add_argument(
        "--format",
        choices=FORMATS,
        help="table, csv or json on the terminal (default table); with --out, only needed "
        f"when the file's extension is none of {file_formats}",
    )
    sql.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help=f"write every row to this file, in the format its extension names ({file_formats})",
    )
    sql.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=catalog.DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop the query after this long (default {catalog.DEFAULT_TIMEOUT_S:g})",
    )
    sql.add_argument(
        "--memory-limit",
        type=_memory_limit,
        default=catalog.DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        # argparse formats help with %: the default's own % is doubled.
        help="DuckDB's memory limit, e.g. 2GB or 50%% of this machine's memory (default "
        f"{catalog.DEFAULT_MEMORY_LIMIT.replace('%', '%%')})",
    )
    sql.add_argument(
        "--max-rows",
        type=_row_count,
        metavar="N",
        help=f"rows printed to the terminal (default {catalog.DEFAULT_MAX_ROWS}); --out writes all",
    )
    sql.set_defaults(run=cmd_sql)

    rebuild = _command(
        commands, "catalog", "rebuild the DuckDB catalog from the warehouse now and list its views"
    )
    rebuild.set_defaults(run=cmd_catalog)

    export = _command(commands, "export", "write a preset's ML-ready data set to a file")
    export.add_argument("preset", metavar="PRESET", help="a built preset")
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help=f"the file to write, in the format its extension names ({file_formats})",
    )
    export.add_argument(
        "--format",
        choices=tuple(FILE_FORMATS.values()),
        help="only needed when the file's extension names no format",
    )
    export.set_defaults(run=cmd_export)

    schema = _command(
        commands, "schema", "print the JSON Schema of a preset file, for editors and checks"
    )
    schema.set_defaults(run=cmd_schema)

    show = _command(
        commands, "show", "draw one run's final field (mV, with a colour bar) as PNG or SVG"
    )
    show.add_argument("preset", metavar="PRESET", help="a built preset")
    show.add_argument("sim_id", metavar="SIM_ID", type=int, help="the run to draw")
    show.add_argument(
        "--out",
        type=Path,
        default=Path("field.png"),
        help="file to write; .png or .svg picks the format (default: field.png)",
    )
    show.set_defaults(run=cmd_show)

    plot = _command(commands, "plot", "scatter one data set column against another, as PNG or SVG")
    plot.add_argument("preset", metavar="PRESET", help="a built preset")
    plot.add_argument("x", metavar="X_COLUMN", help="data set column on the horizontal axis")
    plot.add_argument("y", metavar="Y_COLUMN", help="data set column on the vertical axis")
    plot.add_argument(
        "--out",
        type=Path,
        default=Path("plot.svg"),
        help="file to write; .png or .svg picks the format (default: plot.svg)",
    )
    plot.set_defaults(run=cmd_plot)
    return root


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = parser().parse_args(argv)
    from mfn_pipeline.lib.catalog import QueryFailedError, QueryRefusedError  # noqa: PLC0415
    from mfn_pipeline.lib.warehouse import WarehouseError  # noqa: PLC0415

    try:
        code: int = args.run(args, out)
    except UsageError as exc:
        sys.stderr.write(f"mfn {args.command}: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write(f"mfn {args.command}: interrupted\n")
        return EXIT_INTERRUPTED
    except (
        ConfigError,
        QueryRefusedError,
        QueryFailedError,
        WarehouseError,
    ) as exc:
        sys.stderr.write(f"mfn {args.command}: {exc}\n")
        return EXIT_FAILURE
    # The file system or object store refused (an unreachable URL warehouse, a full or
    # read-only disk): say so in one line, naming what it was given.
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        environment = _settings().environment
        sys.stderr.write(
            f"mfn {args.command}: the file system or object store refused{where}: {reason}; "
            f"check that the warehouse ({environment.warehouse}) and the catalog "
            f"({environment.catalog}) are reachable and writable\n"
        )
        return EXIT_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
