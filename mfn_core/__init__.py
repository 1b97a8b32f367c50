"""mfn_core: the MyceliumFractalNet 4.1 model, its features and parameter sweeps, compiled."""

from mfn_core.errors import ParamError, SimulationError
from mfn_core.features import (
    ALL_FEATURE_NAMES,
    EXTENDED_FEATURE_NAMES,
    FEATURE_NAMES,
    features_from_history,
)
from mfn_core.model import Run, RunMetrics, simulate
from mfn_core.params import SimParams
from mfn_core.trace import StepTrace

__all__ = [
    "ALL_FEATURE_NAMES",
    "EXTENDED_FEATURE_NAMES",
    "FEATURE_NAMES",
    "ParamError",
    "Run",
    "RunMetrics",
    "SimParams",
    "SimulationError",
    "StepTrace",
    "features_from_history",
    "simulate",
]
