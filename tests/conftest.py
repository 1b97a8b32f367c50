"""Shared test setup: hypothesis profiles and strategies for model parameters."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from mfn_core.params import BOUNDARIES, PARAM_SPECS, SEED_MAX

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def bounded(name: str) -> st.SearchStrategy[float]:
    spec = PARAM_SPECS[name]
    assert spec.low is not None
    assert spec.high is not None
    return st.floats(spec.low, spec.high, allow_nan=False)


@st.composite
def valid_params(draw: st.DrawFn, max_grid: int = 20, max_steps: int = 40) -> dict[str, Any]:
    """Any valid parameter set on a small grid (the reference twin must keep up)."""
    return {
        "grid_size": draw(st.integers(4, max_grid)),
        "steps": draw(st.integers(1, max_steps)),
        **{
            name: draw(bounded(name))
            for name in (
                "alpha",
                "d_activator",
                "d_inhibitor",
                "r_activator",
                "r_inhibitor",
                "turing_threshold",
                "spike_probability",
                "jitter_var",
            )
        },
        "turing_enabled": draw(st.booleans()),
        "quantum_jitter": draw(st.booleans()),
        "boundary": draw(st.sampled_from(BOUNDARIES)),
        "seed": draw(st.integers(0, SEED_MAX)),
    }


# Parameters under which the activator crosses its threshold and V reaches the clamp,
# so every branch of the step (boost, clamp, clusters above -60 mV) is exercised.
ACTIVE: dict[str, Any] = {
    "r_activator": 0.1,
    "r_inhibitor": 0.001,
    "turing_threshold": 0.5,
    "d_activator": 0.01,
    "spike_probability": 0.9,
}
