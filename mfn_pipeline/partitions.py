"""Presets are the partitions: one static partition per validated preset file."""

from __future__ import annotations

import dagster as dg

from mfn_core.presets import Preset
from mfn_pipeline.settings import load_settings

# Loaded when the code location loads: an invalid file stops the load right here.
SETTINGS = load_settings()

presets_partitions = dg.StaticPartitionsDefinition(sorted(SETTINGS.presets))


def preset_of(context: dg.AssetExecutionContext) -> Preset:
    """The preset this run builds."""
    return SETTINGS.presets[context.partition_key]
