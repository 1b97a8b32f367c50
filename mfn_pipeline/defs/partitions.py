"""Presets are the partitions: one static partition per preset file.

A preset file that does not load stays a partition under its name, so the nightly
build still requests it and the UI lists it; its runs fail at once with the file's
message instead of taking the whole code location down.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from mfn_core.presets import Preset
from mfn_pipeline.lib.settings import Settings

PROBLEMS_METADATA_KEY = "preset files not loaded"


def presets_partitions(settings: Settings) -> dg.StaticPartitionsDefinition:
    """One partition per preset file, loaded or not."""
    return dg.StaticPartitionsDefinition(settings.partitions)


def preset_of(context: dg.AssetExecutionContext, settings: Settings) -> Preset:
    """The preset this run builds; a run of a preset file that did not load fails here."""
    return preset_named(settings, context.partition_key)


def preset_named(settings: Settings, name: str) -> Preset:
    """The preset ``name``, or dg.Failure with its file's problem (no retry would help)."""
    problem = settings.problem_of(name)
    if problem is not None:
        raise dg.Failure(
            description=problem.message,
            metadata={"file": str(problem.path)},
            allow_retries=False,
        )
    return settings.presets[name]


def problems_metadata(settings: Settings) -> dict[str, dg.MetadataValue]:
    """A note for the UI listing every preset file that did not load and why (or nothing)."""
    if not settings.problems:
        return {}
    rows = "\n".join(
        f"| {problem.path.name} | {problem.partition or '(not a partition)'} | "
        f"{problem.message.replace('|', '/')} |"
        for problem in settings.problems
    )
    return {
        PROBLEMS_METADATA_KEY: dg.MetadataValue.md(
            "| file | partition | problem |\n| --- | --- | --- |\n" + rows
        )
    }


def with_problems_noted(
    assets: Sequence[dg.AssetsDefinition], settings: Settings
) -> list[dg.AssetsDefinition]:
    """The assets, each carrying the note of preset files that did not load.

    Definitions-level metadata is not shown in the UI; an asset's definition metadata
    is, on every asset's page, so a broken file is seen before its run fails.
    """
    note = problems_metadata(settings)
    if not note:
        return list(assets)
    return [
        asset.map_asset_specs(lambda spec: spec.merge_attributes(metadata=note)) for asset in assets
    ]
