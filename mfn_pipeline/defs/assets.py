"""The assets: simulation_runs -> fractal_features -> mfn_dataset -> preset_summary -> builds.

Each asset is thin: it reads what it needs from the warehouse, calls ``mfn_core`` for
its table, enforces the table's contract before anything is written (a broken table
fails the asset and the last good partition stays), writes through the warehouse,
refreshes the catalog's views, and returns its materialization with its checks.
"""

# Dagster reads these annotations at definition time, so they stay real objects
# (no `from __future__ import annotations`).
import datetime as dt
import hashlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import pandera.polars as pa
import polars as pl
from dagster import AssetExecutionContext
from upath import UPath

import mfn_core
from mfn_core.columns import (
    BUILD_FAILED,
    BUILD_SUCCEEDED,
    column_docs,
    columns_of,
    polars_schema,
)
from mfn_core.contracts import (
    BUILDS_SCHEMA,
    DATASET_SCHEMA,
    FEATURES_SCHEMA,
    RUNS_SCHEMA,
    SUMMARY_SCHEMA,
    ContractError,
    enforce,
)
from mfn_core.errors import SweepTimeoutError
from mfn_core.presets import Preset
from mfn_core.resources import estimate_for
from mfn_core.sweep import ARRAY_SCHEMA, STATUS_FAILED, STATUS_OK, default_workers, sweep_batches
from mfn_core.tables import dataset_table, features_table, runs_table, summary_table
from mfn_pipeline.defs import checks
from mfn_pipeline.defs.automation import CPU_POOL, FRESHNESS, NIGHTLY, OWNERS
from mfn_pipeline.defs.partitions import preset_of, presets_partitions
from mfn_pipeline.lib import figures
from mfn_pipeline.lib import progress as progress_events
from mfn_pipeline.lib.catalog import check_catalog_target, refresh_catalog
from mfn_pipeline.lib.metering import metered
from mfn_pipeline.lib.settings import Settings
from mfn_pipeline.lib.warehouse import VIEWS, Warehouse, WarehouseError

# What a table asset yields: its materialization, carrying its checks' results. (A
# returned one would need the bare class as its annotation, which strict typing refuses.)
Materialized = Iterator[dg.MaterializeResult[None]]

GROUP = "mfn"
logger = logging.getLogger(__name__)
PROGRESS_STEPS = 4  # log lines per sweep; each is an event Dagster stores
# The catalog's view of each table, named where the table's asset is shown.
VIEW_OF = {table: view for view, table in VIEWS.items()}


def code_version() -> str:
    """Package version plus a digest of the numerical core's sources."""
    try:
        version = importlib_metadata.version("mfn")
    except importlib_metadata.PackageNotFoundError:
        version = "0+unknown"
    digest = hashlib.sha256()
    for source in sorted(Path(mfn_core.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return f"{version}+{digest.hexdigest()[:12]}"


CODE_VERSION = code_version()


def column_schema(table: str) -> dict[str, dg.TableSchema]:
    """The table's columns as Dagster column-schema metadata: each with its type, its
    description (meaning, unit, allowed values, nulls), nullability and uniqueness."""
    columns = [
        dg.TableColumn(
            doc.name,
            doc.type,
            description=doc.description,
            constraints=dg.TableColumnConstraints(
                nullable=doc.nullable, unique=doc.unique, other=list(doc.constraints)
            ),
        )
        for doc in column_docs(table)
    ]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)}


def _enforced(schema: pa.DataFrameSchema, table: pl.DataFrame, partition: str) -> pl.DataFrame:
    try:
        return enforce(schema, table)
    except ContractError as exc:
        raise dg.Failure(
            description=(
                f"{exc}\nPartition {partition!r} of {schema.name} was not replaced: "
                "the previous version stays readable."
            ),
            metadata={"offending_rows": dg.MetadataValue.md(_markdown(exc.failure_cases))},
            allow_retries=False,
        ) from exc


def _markdown(table: pl.DataFrame, limit: int = 50) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * table.width]
    lines += [
        "| " + " | ".join(str(value) for value in row) + " |"
        for row in table.head(limit).iter_rows()
    ]
    return "\n".join(lines)


# Storage hiccups (a full disk being cleaned, a flaky object store) pass; a broken
# contract, a damaged input file or a runaway sweep does not, so those raise
# dg.Failure(allow_retries=False) and fail at once. The warehouse retries each write
# itself first (WRITE_RETRY_DELAYS_S); a step is retried only when that was not enough.
RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _read(
    warehouse: Warehouse, table: str, preset: Preset, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """A stored input partition; a missing or damaged one fails the step at once."""
    try:
        return warehouse.read(table, preset.name, None if columns is None else list(columns))
    except WarehouseError as exc:
        # A missing or damaged file stays so until it is rebuilt: retrying cannot help.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _writable(warehouse: Warehouse) -> None:
    """Refuse, before any partition is written, a catalog path that is not this product's."""
    try:
        check_catalog_target(warehouse.root, Path(warehouse.catalog))
    except WarehouseError as exc:
        # A configuration problem: it stays until the environment file is fixed.
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def _catalog_refreshed(warehouse: Warehouse, log: logging.Logger) -> dict[str, Any]:
    """Refresh the catalog's views after a write; metadata naming the files they leave out."""
    try:
        refreshed = refresh_catalog(warehouse.root, Path(warehouse.catalog))
    except duckdb.Error as exc:
        # The data is stored and valid; only the SQL views lag (e.g. a remote
        # warehouse DuckDB cannot reach). Say so instead of failing the build.
        log.warning(f"the catalog {warehouse.catalog} could not be refreshed: {exc}")
        return {}
    if not refreshed.views.skipped:
        return {}
    listed = "\n".join(f"- {line}" for line in refreshed.views.skipped)
    return {"catalog_skipped_files": dg.MetadataValue.md(listed)}


def _stored(
    context: AssetExecutionContext, warehouse: Warehouse, table: str, frame: pl.DataFrame
) -> dict[str, Any]:
    """Write one partition, refresh the catalog, and say where the file is."""
    _writable(warehouse)
    path = warehouse.write(table, context.partition_key, frame)
    return {
        "path": dg.MetadataValue.path(str(path)),
        "size_bytes": path.stat().st_size,
        **_catalog_refreshed(warehouse, context.log),
    }


# Outcome of a check as recorded in the builds table.
PASSED, WARNED, FAILED = "passed", "warned", "failed"
CHECK_OUTCOMES_KEY = "check_outcomes"


def _outcome(result: dg.AssetCheckResult) -> str:
    if result.passed:
        return PASSED
    return WARNED if result.severity == dg.AssetCheckSeverity.WARN else FAILED


def _materialized(
    table: str, metadata: dict[str, Any], results: Sequence[dg.AssetCheckResult]
) -> dg.MaterializeResult[None]:
    """The asset's materialization: its metadata, its checks' results and their outcomes.

    The outcomes are in the metadata too: the build record reads them from there.
    """
    outcomes = {f"{table}.{result.check_name}": _outcome(result) for result in results}
    return dg.MaterializeResult(
        metadata={**metadata, CHECK_OUTCOMES_KEY: dg.MetadataValue.json(outcomes)},
        check_results=list(results),
    )


def _mean(values: pl.Series) -> float:
    mean = values.mean()
    return float(mean) if isinstance(mean, int | float) else 0.0


_RUN_COLUMNS_WITHOUT_ARRAYS = [c for c in RUNS_SCHEMA.columns if c not in ARRAY_SCHEMA]
# What simulation_runs keeps of each run for its checks and metadata.
_RUN_COLUMNS_KEPT = ["sim_id", "status", "reason", "growth_events", "lyapunov"]


def _refuse_beyond_free_space(preset: Preset, warehouse: Warehouse) -> None:
    """Fail before the sweep if its estimated storage exceeds the warehouse's free space.

    The environment's budget was checked when the preset loaded; the disk may have
    filled since. The previous partition stays until the new one is complete, so
    the whole estimate must fit beside it.
    """
    free = warehouse.free_bytes()
    if free is None:
        return  # an object store: no free space to ask for
    cost = estimate_for(preset, default_workers())
    if cost.storage_bytes > free:
        raise dg.Failure(
            description=(
                f"preset {preset.name}: {cost.describe()}, but the warehouse "
                f"{warehouse.root} has {free / 2**30:,.2f} GiB free; nothing was run or "
                "written. Free space there, or shrink the preset."
            ),
            allow_retries=False,
        )


def simulation_runs(
    context: AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    warehouse: dg.ResourceParam[Warehouse],
) -> Materialized:
    """Every run of the preset's sweep: parameters, metrics, per-step trace and final field."""
    # Finished runs stream to the warehouse in row groups as the sweep goes, each batch
    # checked against the contract first, so the step holds one batch of fields, never
    # the whole sweep; the partition is replaced only after the last batch.
    preset = preset_of(context, settings)
    _writable(warehouse)
    _refuse_beyond_free_space(preset, warehouse)
    marks = {max(1, preset.num_samples * k // PROGRESS_STEPS) for k in range(1, PROGRESS_STEPS + 1)}

    def progress(done: int, total: int) -> None:
        progress_events.publish(preset.name, done, total)
        if done in marks:
            context.log.info(f"{preset.name}: {done}/{total} runs done")

    # Per run, only what the checks and metadata need; the fields stay in the file.
    kept: list[pl.DataFrame] = []
    first_ok: list[pl.DataFrame] = []

    def checked(batches: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
        for batch in batches:
            runs = _enforced(RUNS_SCHEMA, runs_table(batch), preset.name)
            kept.append(runs.select(_RUN_COLUMNS_KEPT))
            if not first_ok and (ok_run := runs.filter(pl.col("status") == STATUS_OK)).height:
                first_ok.append(ok_run.head(1))
            yield runs

    with metered() as usage:
        try:
            written = warehouse.write_batches(
                "simulation_runs",
                preset.name,
                checked(
                    sweep_batches(
                        preset,
                        default_workers(),
                        progress=progress,
                        keep_arrays=True,
                        time_limit_s=settings.environment.limits.wall_clock_s,
                    )
                ),
            )
        except SweepTimeoutError as exc:
            raise dg.Failure(
                description=(
                    f"{exc} Partition {preset.name!r} of simulation_runs was not replaced. "
                    "The limit is limits.wall_clock_s in configs/environments/<MFN_ENV>.yaml."
                ),
                allow_retries=False,
            ) from exc
        except WarehouseError as exc:
            # The sweep's batches are consumed: only a new run can write them again.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    runs = pl.concat(kept)
    failed = runs.filter(pl.col("status") == STATUS_FAILED).height
    ok = runs.filter(pl.col("status") != STATUS_FAILED)
    metadata = {
        "dagster/row_count": runs.height,
        "path": dg.MetadataValue.path(str(written.path)),
        "size_bytes": written.size_bytes,
        "row_groups": written.row_groups,
        "failed_runs": failed,
        "duration_s": usage.seconds,
        "runs_per_s": runs.height / usage.seconds,
        "cell_steps_per_s": preset.cell_steps / usage.seconds,
        "peak_rss_mib": usage.peak_rss_mib,
        "growth_events_mean": _mean(ok["growth_events"]),
        "lyapunov_mean": _mean(ok["lyapunov"]),
        "config_hash": preset.config_hash,
        "code_version": CODE_VERSION,
        "sample_field": _sample_field_picture(preset, first_ok[0] if first_ok else pl.DataFrame()),
        **_catalog_refreshed(warehouse, context.log),
    }
    results = [checks.row_count(preset, runs), checks.ceilings(preset, usage), checks.core_sanity()]
    yield _materialized("simulation_runs", metadata, results)


def fractal_features(
    context: AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    warehouse: dg.ResourceParam[Warehouse],
) -> Materialized:
    """The 18 canonical and the field-relative features of every successful run."""
    # The stored runs are read a row group's worth at a time: the features are small,
    # the fields are not.
    preset = preset_of(context, settings)
    with metered() as usage:
        try:
            batches = warehouse.read_batches("simulation_runs", preset.name)
            features = pl.concat([features_table(batch) for batch in batches])
        except WarehouseError as exc:
            # A missing or damaged file stays so until it is rebuilt: retrying cannot help.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    features = _enforced(FEATURES_SCHEMA, features, preset.name)
    d_box = features["D_box"]
    metadata = {
        "dagster/row_count": features.height,
        "duration_s": usage.seconds,
        **{
            f"{column}_{stat}": float(getattr(features[column], stat)() or 0.0)
            for column in ("D_box", "D_box_rel")
            for stat in ("mean", "std", "min", "max")
        },
        "D_box_distribution": dg.MetadataValue.md(_histogram_markdown(d_box)),
        "D_box_histograms": dg.MetadataValue.md(
            figures.histograms_markdown(features, ("D_box", "D_box_rel"), preset.name)
        ),
        **_stored(context, warehouse, "fractal_features", features),
    }
    yield _materialized("fractal_features", metadata, [checks.degenerate(preset, features)])


def _sample_field_picture(preset: Preset, ok_runs: pl.DataFrame) -> dg.MetadataValue:
    """The first successful run's final field, drawn in mV."""
    if ok_runs.is_empty():
        return dg.MetadataValue.md("no successful run to draw")
    row = ok_runs.row(0, named=True)
    n = row["grid_size"]
    field_v = np.asarray(row["field"], dtype=np.float64).reshape(n, n)
    return dg.MetadataValue.md(figures.field_markdown(field_v, preset.name, row["sim_id"]))


def _histogram_markdown(values: pl.Series, bins: int = 10) -> str:
    if values.is_empty():
        return "no values"
    counts = values.hist(bin_count=bins)
    lines = ["| bin | count |", "|---|---|"]
    lines += [f"| {row[0]:.3f} | {row[-1]} |" for row in counts.iter_rows()]
    return "\n".join(lines)


def mfn_dataset(
    context: AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    warehouse: dg.ResourceParam[Warehouse],
) -> Materialized:
    """The ML-ready table: parameters, run metrics and features of each successful run."""
    preset = preset_of(context, settings)
    # Only the runs' scalar columns: the stored fields stay on disk.
    runs = _read(warehouse, "simulation_runs", preset, _RUN_COLUMNS_WITHOUT_ARRAYS)
    features = _read(warehouse, "fractal_features", preset)
    dataset = _enforced(DATASET_SCHEMA, dataset_table(runs, features), preset.name)
    metadata = {
        "dagster/row_count": dataset.height,
        "columns": dataset.width,
        **_stored(context, warehouse, "mfn_dataset", dataset),
    }
    yield _materialized("mfn_dataset", metadata, [checks.expected_ranges(preset, dataset)])


def preset_summary(
    context: AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    warehouse: dg.ResourceParam[Warehouse],
) -> Materialized:
    """Per-preset aggregates: run counts, time, mean and spread of every feature."""
    preset = preset_of(context, settings)
    runs = _read(warehouse, "simulation_runs", preset, ["status", "duration_s"])
    dataset = _read(warehouse, "mfn_dataset", preset)
    previous = warehouse.read_previous("preset_summary", preset.name)
    summary = _enforced(SUMMARY_SCHEMA, summary_table(preset, runs, dataset), preset.name)
    row = summary.row(0, named=True)
    metadata = {
        "dagster/row_count": summary.height,
        "ok_runs": row["ok_runs"],
        "failed_runs": row["failed_runs"],
        "D_box_mean": row["D_box_mean"] or 0.0,
        "lyapunov_mean": row["lyapunov_mean"] or 0.0,
        **_stored(context, warehouse, "preset_summary", summary),
    }
    yield _materialized("preset_summary", metadata, [checks.drift(previous, summary)])


# The steps of a build before its record, each materialization carrying its duration
# (where measured) and its checks' outcomes.
BUILD_STEPS = ("simulation_runs", "fractal_features", "mfn_dataset", "preset_summary")


@dataclass(frozen=True)
class StepsRecorded:
    """What the steps of one build run recorded in their materializations."""

    seconds: dict[str, float]  # asset -> its duration_s, where it measures one
    outcomes: dict[str, str]  # "asset.check" -> PASSED, WARNED or FAILED


def steps_recorded(instance: dg.DagsterInstance, run_id: str, preset: str) -> StepsRecorded:
    """Durations and check outcomes of the steps run ``run_id`` materialized for ``preset``."""
    seconds: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    for asset in BUILD_STEPS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[preset]),
            limit=1,
        ).records
        materialization = records[0].asset_materialization if records else None
        if materialization is None or records[0].run_id != run_id:
            continue  # not materialized by this run
        duration = materialization.metadata.get("duration_s")
        if isinstance(duration, dg.FloatMetadataValue) and duration.value is not None:
            seconds[asset] = duration.value
        stated = materialization.metadata.get(CHECK_OUTCOMES_KEY)
        if isinstance(stated, dg.JsonMetadataValue) and isinstance(stated.value, dict):
            outcomes.update(stated.value)
    return StepsRecorded(seconds, outcomes)


def builds(
    context: AssetExecutionContext,
    settings: dg.ResourceParam[Settings],
    warehouse: dg.ResourceParam[Warehouse],
) -> dg.MaterializeResult[None]:
    """History of every build of the preset: code version, config hash, counts, checks."""
    preset = preset_of(context, settings)
    summary = _read(warehouse, "preset_summary", preset).row(0, named=True)
    recorded = steps_recorded(context.instance, context.run.run_id, preset.name)
    record = _enforced(
        BUILDS_SCHEMA,
        _build_record(context.run.run_id, preset.name, preset.config_hash, summary, recorded),
        preset.name,
    )
    _writable(warehouse)
    path = write_build_record(warehouse, preset.name, context.run.run_id, record)
    try:
        history = warehouse.read_records("builds", preset.name)
    except WarehouseError as exc:
        # A damaged older record stays damaged: retrying cannot help.
        raise dg.Failure(
            description=f"{exc}. This build's own record is stored: {path}",
            allow_retries=False,
        ) from exc
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "builds_recorded": 0 if history is None else history.height,
            "checks_passed": record["checks_passed"].item(),
            "checks_warned": record["checks_warned"].item(),
            "checks_failed": record["checks_failed"].item(),
        },
    )


BUILDS_SCHEMA_DTYPES = polars_schema(columns_of("builds"))


def _build_record(
    run_id: str,
    preset: str,
    config_hash: str | None,
    summary: Mapping[str, Any] | None,
    recorded: StepsRecorded,
    reason: str | None = None,
) -> pl.DataFrame:
    """The builds row of run ``run_id``: succeeded with its summary, or failed for ``reason``."""
    outcomes = recorded.outcomes
    return pl.DataFrame(
        {
            "build_id": [run_id],
            "preset": [preset],
            "finished_at": [dt.datetime.now(dt.UTC)],
            "status": [BUILD_SUCCEEDED if reason is None else BUILD_FAILED],
            "reason": [reason],
            "code_version": [CODE_VERSION],
            "config_hash": [config_hash],
            "runs": [None if summary is None else summary["runs"]],
            "failed_runs": [None if summary is None else summary["failed_runs"]],
            "dataset_rows": [None if summary is None else summary["ok_runs"]],
            "simulation_s": [recorded.seconds.get("simulation_runs")],
            "features_s": [recorded.seconds.get("fractal_features")],
            "checks_passed": [sum(o == PASSED for o in outcomes.values())],
            "checks_warned": [sum(o == WARNED for o in outcomes.values())],
            "checks_failed": [sum(o == FAILED for o in outcomes.values())],
            "check_outcomes": [json.dumps(outcomes, sort_keys=True)],
        },
        schema=BUILDS_SCHEMA_DTYPES,
    )


def write_build_record(
    warehouse: Warehouse, preset: str, run_id: str, record: pl.DataFrame
) -> UPath:
    """Store one build's record (every row of the builds table goes through here).

    One file per build: concurrent builds of a preset never rewrite each other's
    record, and re-executing a run replaces only its own. A catalog path that is not
    this product's is refused with a WarehouseError before the record is written.
    """
    check_catalog_target(warehouse.root, Path(warehouse.catalog))
    path = warehouse.write_record("builds", preset, run_id, record)
    _catalog_refreshed(warehouse, logger)
    return path


def failed_build_record(
    instance: dg.DagsterInstance, run_id: str, settings: Settings, preset: str, message: str
) -> pl.DataFrame:
    """The builds row of run ``run_id`` of ``preset``, failed with ``message``.

    A failed run never reaches the builds step; the row counts the checks its finished
    steps recorded. Raises ContractError if the row breaks the contract (say, an
    unknown preset name), before anything is written.
    """
    loaded = settings.presets.get(preset)
    record = _build_record(
        run_id,
        preset,
        None if loaded is None else loaded.config_hash,
        None,
        steps_recorded(instance, run_id, preset),
        " ".join(message.split()) or "the run failed",
    )
    return enforce(BUILDS_SCHEMA, record)


def build_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The five assets with their checks, one partition per preset of ``settings``."""
    partitions = presets_partitions(settings)

    def spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
        # Partitioned like its asset, so each preset keeps its own result: a later build
        # of another preset never turns a failing preset's check green. Dagster 1.13
        # marks this as preview; docs/adr/0005 records why it is used all the same.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.AssetCheckSpec(
                name, asset=asset, description=description, partitions_def=partitions
            )

    def table_asset(
        compute: Callable[..., Materialized | dg.MaterializeResult[None]],
        deps: Sequence[str] = (),
        check_specs: Sequence[tuple[str, str]] = (),
        retry_policy: dg.RetryPolicy | None = RETRY_POLICY,
        pool: str | None = None,
    ) -> dg.AssetsDefinition:
        """An asset of the ``mfn`` group stored as Parquet, one partition per preset."""
        table = compute.__name__
        return dg.asset(
            deps=deps,
            partitions_def=partitions,
            group_name=GROUP,
            metadata={**column_schema(table), "dagster/table_name": VIEW_OF[table]},
            check_specs=[spec(name, table, text) for name, text in check_specs],
            code_version=CODE_VERSION,
            kinds={"python", "parquet"},
            retry_policy=retry_policy,
            owners=OWNERS,
            pool=pool,
            automation_condition=NIGHTLY,
            freshness_policy=FRESHNESS,
        )(compute)

    return [
        table_asset(
            simulation_runs,
            check_specs=[
                (checks.ROW_COUNT_CHECK, "One row per sample of the preset and no failed run."),
                (
                    checks.CEILINGS_CHECK,
                    "The sweep stays under the preset's runtime and peak-memory ceilings.",
                ),
                (
                    checks.CORE_SANITY_CHECK,
                    "Nernst K+ and the Sierpinski dimension match their known values.",
                ),
            ],
            # A step retry would redo the whole sweep, which is deterministic: the only
            # part that can pass on a second try is the write, and the warehouse
            # retries that.
            retry_policy=None,
            pool=CPU_POOL,
        ),
        table_asset(
            fractal_features,
            deps=["simulation_runs"],
            check_specs=[
                (
                    checks.DEGENERATE_CHECK,
                    "No feature column is constant across the preset unless its "
                    "expect.constant says why (WARN).",
                )
            ],
            pool=CPU_POOL,
        ),
        table_asset(
            mfn_dataset,
            deps=["simulation_runs", "fractal_features"],
            check_specs=[
                (
                    checks.EXPECTED_RANGES_CHECK,
                    "Columns lie within the ranges of the preset's expect: block.",
                )
            ],
        ),
        table_asset(
            preset_summary,
            deps=["simulation_runs", "mfn_dataset"],
            check_specs=[
                (
                    checks.DRIFT_CHECK,
                    "Feature means unchanged since the previous build of the same config (WARN).",
                )
            ],
        ),
        table_asset(builds, deps=list(BUILD_STEPS)),
    ]
