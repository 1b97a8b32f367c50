"""The assets: simulation_runs -> fractal_features -> mfn_dataset -> preset_summary -> builds.

Each asset is thin: it calls ``mfn_core`` for the table, enforces the table's
contract before anything is written (a broken table fails the asset and the last
good partition stays), and yields its checks beside its output.
"""

# Dagster reads these annotations at definition time, so they stay real objects
# (no `from __future__ import annotations`).
import datetime as dt
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandera.polars as pa
import polars as pl
from dagster import AssetExecutionContext

import mfn_core
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
from mfn_pipeline.defs.partitions import preset_of, presets_partitions
from mfn_pipeline.lib import progress as progress_events
from mfn_pipeline.lib.metering import metered
from mfn_pipeline.lib.pictures import field_png, histograms_png, markdown_image
from mfn_pipeline.lib.warehouse import Warehouse, WarehouseError

# What a table asset yields: its stored output, then its checks' results.
AssetEvent = dg.Output[pl.DataFrame] | dg.AssetCheckResult

GROUP = "mfn"
IO_MANAGER_KEY = "warehouse_io_manager"
PROGRESS_STEPS = 4  # log lines per sweep; each is an event Dagster stores


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


def column_schema(schema: pa.DataFrameSchema) -> dict[str, dg.TableSchema]:
    """The contract's columns as Dagster column-schema metadata (shown in the UI)."""
    columns = [
        dg.TableColumn(
            name,
            str(column.dtype),
            constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
        )
        for name, column in schema.columns.items()
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


@dataclass(frozen=True)
class BuildLimits:
    """How long one preset's sweep may run before it is stopped (limits.wall_clock_s)."""

    wall_clock_s: float


# Storage hiccups (a full disk being cleaned, a flaky object store) pass; a broken
# contract, a damaged input file or a runaway sweep does not, so those raise
# dg.Failure(allow_retries=False) and fail at once. The warehouse retries each write
# itself first (WRITE_RETRY_DELAYS_S); a step is retried only when that was not enough.
RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def _table_asset(
    schema: pa.DataFrameSchema,
    check_specs: list[dg.AssetCheckSpec] | None = None,
    ins: dict[str, dg.AssetIn] | None = None,
    retry_policy: dg.RetryPolicy | None = RETRY_POLICY,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """An asset of the ``mfn`` group stored as one Parquet file per preset."""
    return dg.asset(
        ins=ins,
        partitions_def=presets_partitions,
        group_name=GROUP,
        io_manager_key=IO_MANAGER_KEY,
        metadata=column_schema(schema),
        check_specs=check_specs,
        code_version=CODE_VERSION,
        kinds={"python", "parquet"},
        retry_policy=retry_policy,
    )


def _mean(values: pl.Series) -> float:
    mean = values.mean()
    return float(mean) if isinstance(mean, int | float) else 0.0


def _runs_columns(*columns: str) -> dict[str, dg.AssetIn]:
    """Read only these columns of simulation_runs (not the stored fields)."""
    return {"simulation_runs": dg.AssetIn(metadata={"columns": list(columns)})}


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


def _spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
    # Partitioned like its asset, so each preset keeps its own result: a later build of
    # another preset never turns a failing preset's check green. Dagster 1.13 marks this
    # as preview; docs/adr/0005 records why it is used all the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, description=description, partitions_def=presets_partitions
        )


@_table_asset(
    RUNS_SCHEMA,
    [
        _spec(
            checks.ROW_COUNT_CHECK,
            "simulation_runs",
            "One row per sample of the preset and no failed run.",
        ),
        _spec(
            checks.CEILINGS_CHECK,
            "simulation_runs",
            "The sweep stays under the preset's runtime and peak-memory ceilings.",
        ),
        _spec(
            checks.CORE_SANITY_CHECK,
            "simulation_runs",
            "Nernst K+ and the Sierpinski dimension match their known values.",
        ),
    ],
    # A step retry would redo the whole sweep, which is deterministic: the only part
    # that can pass on a second try is the write, and the warehouse retries that.
    retry_policy=None,
)
def simulation_runs(
    context: AssetExecutionContext,
    build_limits: dg.ResourceParam[BuildLimits],
    warehouse: dg.ResourceParam[Warehouse],
) -> Iterator[dg.MaterializeResult[None] | dg.AssetCheckResult]:
    """Every run of the preset's sweep: parameters, metrics, per-step trace and final field."""
    # Finished runs stream to the warehouse in row groups as the sweep goes, each batch
    # checked against the contract first, so the step holds one batch of fields, never
    # the whole sweep; the partition is replaced only after the last batch.
    preset = preset_of(context)
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
                        time_limit_s=build_limits.wall_clock_s,
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
    yield dg.MaterializeResult(
        metadata={
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
            "sample_field": _sample_field_picture(first_ok[0] if first_ok else pl.DataFrame()),
        },
    )
    yield checks.row_count(preset, runs)
    yield checks.ceilings(preset, usage)
    yield checks.core_sanity()


@_table_asset(
    FEATURES_SCHEMA,
    [
        _spec(
            checks.DEGENERATE_CHECK,
            "fractal_features",
            "No feature column is constant across the preset unless its expect.constant "
            "says why (WARN).",
        )
    ],
    # A dependency without a loaded input: the asset reads simulation_runs in batches.
    ins={"simulation_runs": dg.AssetIn(dagster_type=dg.Nothing)},
)
def fractal_features(
    context: AssetExecutionContext, warehouse: dg.ResourceParam[Warehouse]
) -> Iterator[AssetEvent]:
    """The 18 canonical and the field-relative features of every successful run."""
    # The stored runs are read a row group's worth at a time: the features are small,
    # the fields are not.
    preset = preset_of(context)
    with metered() as usage:
        batches = warehouse.read_batches("simulation_runs", preset.name)
        try:
            features = pl.concat([features_table(batch) for batch in batches])
        except WarehouseError as exc:
            # A missing or damaged file stays so until it is rebuilt: retrying cannot help.
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    features = _enforced(FEATURES_SCHEMA, features, context.partition_key)
    d_box = features["D_box"]
    yield dg.Output(
        features,
        metadata={
            "dagster/row_count": features.height,
            "duration_s": usage.seconds,
            **{
                f"{column}_{stat}": float(getattr(features[column], stat)() or 0.0)
                for column in ("D_box", "D_box_rel")
                for stat in ("mean", "std", "min", "max")
            },
            "D_box_distribution": dg.MetadataValue.md(_histogram_markdown(d_box)),
            "D_box_histograms": dg.MetadataValue.md(
                markdown_image(
                    histograms_png([d_box.to_numpy(), features["D_box_rel"].to_numpy()]),
                    "D_box (left) and D_box_rel (right) across the preset",
                )
                + "\n\nLeft: D_box; right: D_box_rel (each over its own range)."
            ),
        },
    )
    yield checks.degenerate(preset, features)


def _sample_field_picture(ok_runs: pl.DataFrame) -> dg.MetadataValue:
    """The first successful run's final field, drawn in mV."""
    if ok_runs.is_empty():
        return dg.MetadataValue.md("no successful run to draw")
    row = ok_runs.row(0, named=True)
    n = row["grid_size"]
    field_mv = np.asarray(row["field"], dtype=np.float64).reshape(n, n) * 1000.0
    low, high = field_mv.min(), field_mv.max()
    caption = f"sim_id {row['sim_id']}: {low:.1f} mV (dark) to {high:.1f} mV (yellow)"
    return dg.MetadataValue.md(markdown_image(field_png(field_mv), caption) + f"\n\n{caption}")


def _histogram_markdown(values: pl.Series, bins: int = 10) -> str:
    if values.is_empty():
        return "no values"
    counts = values.hist(bin_count=bins)
    lines = ["| bin | count |", "|---|---|"]
    lines += [f"| {row[0]:.3f} | {row[-1]} |" for row in counts.iter_rows()]
    return "\n".join(lines)


@_table_asset(
    DATASET_SCHEMA,
    [
        _spec(
            checks.EXPECTED_RANGES_CHECK,
            "mfn_dataset",
            "Columns lie within the ranges of the preset's expect: block.",
        )
    ],
    ins=_runs_columns(*_RUN_COLUMNS_WITHOUT_ARRAYS),
)
def mfn_dataset(
    context: AssetExecutionContext,
    simulation_runs: pl.DataFrame,
    fractal_features: pl.DataFrame,
) -> Iterator[AssetEvent]:
    """The ML-ready table: parameters, run metrics and features of each successful run."""
    preset = preset_of(context)
    dataset = _enforced(
        DATASET_SCHEMA, dataset_table(simulation_runs, fractal_features), preset.name
    )
    yield dg.Output(
        dataset,
        metadata={"dagster/row_count": dataset.height, "columns": dataset.width},
    )
    yield checks.expected_ranges(preset, dataset)


@_table_asset(
    SUMMARY_SCHEMA,
    [
        _spec(
            checks.DRIFT_CHECK,
            "preset_summary",
            "Feature means unchanged since the previous build of the same config (WARN).",
        )
    ],
    ins=_runs_columns("status", "duration_s"),
)
def preset_summary(
    context: AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    simulation_runs: pl.DataFrame,
    mfn_dataset: pl.DataFrame,
) -> Iterator[AssetEvent]:
    """Per-preset aggregates: run counts, time, mean and spread of every feature."""
    preset = preset_of(context)
    previous = warehouse.read_previous("preset_summary", preset.name)
    summary = _enforced(
        SUMMARY_SCHEMA, summary_table(preset, simulation_runs, mfn_dataset), preset.name
    )
    row = summary.row(0, named=True)
    yield dg.Output(
        summary,
        metadata={
            "dagster/row_count": summary.height,
            "ok_runs": row["ok_runs"],
            "failed_runs": row["failed_runs"],
            "D_box_mean": row["D_box_mean"] or 0.0,
            "lyapunov_mean": row["lyapunov_mean"] or 0.0,
        },
    )
    yield checks.drift(previous, summary)


# Outcome of a check as recorded in the builds table.
PASSED, WARNED, FAILED = "passed", "warned", "failed"


def _this_run(
    context: AssetExecutionContext,
) -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """Materialization metadata per asset and check outcomes recorded so far in this run."""
    records = context.instance.all_logs(
        context.run.run_id,
        of_type={
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        },
    )
    materialized: dict[str, dict[str, object]] = {}
    outcomes: dict[str, str] = {}
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.step_materialization_data.materialization
            materialized[mat.asset_key.to_user_string()] = {
                key: value.value for key, value in mat.metadata.items()
            }
        else:
            evaluation = event.event_specific_data
            if evaluation.passed:
                outcome = PASSED
            elif evaluation.severity == dg.AssetCheckSeverity.WARN:
                outcome = WARNED
            else:
                outcome = FAILED
            outcomes[f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"] = outcome
    return materialized, outcomes


@dg.asset(
    partitions_def=presets_partitions,
    group_name=GROUP,
    metadata=column_schema(BUILDS_SCHEMA),
    code_version=CODE_VERSION,
    kinds={"python", "parquet"},
    deps=["simulation_runs", "fractal_features", "mfn_dataset"],
    retry_policy=RETRY_POLICY,
)
def builds(
    context: AssetExecutionContext,
    warehouse: dg.ResourceParam[Warehouse],
    preset_summary: pl.DataFrame,
) -> dg.MaterializeResult[None]:
    """History of every build of the preset: code version, config hash, counts, checks."""
    preset = preset_of(context)
    materialized, outcomes = _this_run(context)
    summary = preset_summary.row(0, named=True)

    def seconds(asset: str) -> float | None:
        value = materialized.get(asset, {}).get("duration_s")
        return float(value) if isinstance(value, int | float) else None

    record = pl.DataFrame(
        {
            "build_id": [context.run.run_id],
            "preset": [preset.name],
            "finished_at": [dt.datetime.now(dt.UTC)],
            "code_version": [CODE_VERSION],
            "config_hash": [preset.config_hash],
            "runs": [summary["runs"]],
            "failed_runs": [summary["failed_runs"]],
            "dataset_rows": [summary["ok_runs"]],
            "simulation_s": [seconds("simulation_runs")],
            "features_s": [seconds("fractal_features")],
            "checks_passed": [sum(o == PASSED for o in outcomes.values())],
            "checks_warned": [sum(o == WARNED for o in outcomes.values())],
            "checks_failed": [sum(o == FAILED for o in outcomes.values())],
            "check_outcomes": [json.dumps(outcomes, sort_keys=True)],
        },
        schema=BUILDS_SCHEMA_DTYPES,
    )
    record = _enforced(BUILDS_SCHEMA, record, preset.name)
    # One file per build: concurrent builds of a preset never rewrite each other's
    # record, and re-executing a run replaces only its own.
    path = warehouse.write_record("builds", preset.name, context.run.run_id, record)
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


BUILDS_SCHEMA_DTYPES: dict[str, pl.DataType] = {
    name: column.dtype.type for name, column in BUILDS_SCHEMA.columns.items()
}

ASSETS = [simulation_runs, fractal_features, mfn_dataset, preset_summary, builds]
