from __future__ import annotations

import hashlib
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from mfn_core import SimParams, SimulationError, simulate
from mfn_core.model import V_MAX, V_MIN, _integrate
from tests import naive
from tests.conftest import ACTIVE, valid_params


def assert_same_run(values: dict[str, Any]) -> None:
    params = SimParams.from_mapping(values)
    run = simulate(params)
    ref = naive.simulate(params.as_dict())
    np.testing.assert_array_equal(run.field, ref.history[-1], strict=True)
    assert run.metrics.growth_events == ref.growth_events
    assert run.metrics.turing_activations == ref.turing_activations
    assert run.metrics.clamping_events == ref.clamping_events
    assert run.metrics.lyapunov == pytest.approx(ref.lyapunov, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("boundary", ["periodic", "neumann", "dirichlet"])
@pytest.mark.parametrize("jitter", [False, True])
@pytest.mark.parametrize("turing", [True, False])
def test_bit_identical_to_reference(boundary: str, jitter: bool, turing: bool) -> None:
    values = {
        "seed": 11,
        "grid_size": 13,
        "steps": 150,
        "boundary": boundary,
        "quantum_jitter": jitter,
        "turing_enabled": turing,
        **ACTIVE,
    }
    assert_same_run(values)


def test_active_parameters_exercise_every_branch() -> None:
    run = simulate(SimParams(seed=11, grid_size=13, steps=150, **ACTIVE))
    m = run.metrics
    assert m.growth_events > 0
    assert m.turing_activations > 0
    assert m.clamping_events > 0
    assert (run.field > -0.060).any()


@settings(max_examples=60)
@given(valid_params())
def test_bit_identical_for_random_valid_parameters(values: dict[str, Any]) -> None:
    assert_same_run(values)


@settings(max_examples=60)
@given(valid_params(max_grid=48, max_steps=120))
def test_properties_hold_for_random_valid_parameters(values: dict[str, Any]) -> None:
    p = SimParams.from_mapping(values)
    run = simulate(p)
    n, t = p.grid_size, p.steps
    assert run.field.shape == (n, n)
    assert run.field.dtype == np.float64
    assert np.isfinite(run.field).all()
    assert run.field.min() >= V_MIN
    assert run.field.max() <= V_MAX
    assert 0 <= run.metrics.growth_events <= t
    assert 0 <= run.metrics.clamping_events <= n * n * t
    assert 0 <= run.metrics.turing_activations <= n * n * t
    if not p.turing_enabled:
        assert run.metrics.turing_activations == 0
    if p.spike_probability == 0:
        assert run.metrics.growth_events == 0
    assert all(np.isfinite(v) for v in run.features.values())
    assert run.trace.energy.shape == (t,)
    assert run.trace.dv_mean.shape == (max(t - 1, 0),)


def test_field_is_read_only() -> None:
    run = simulate(SimParams(seed=1, grid_size=8, steps=2))
    with pytest.raises(ValueError, match="read-only"):
        run.field[0, 0] = 0.0


def test_seed_changes_the_field() -> None:
    a = simulate(SimParams(seed=1, grid_size=16, steps=5)).field
    b = simulate(SimParams(seed=2, grid_size=16, steps=5)).field
    assert not np.array_equal(a, b)


def field_digest(seed: int) -> str:
    run = simulate(SimParams(seed=seed, grid_size=32, steps=60, quantum_jitter=True, **ACTIVE))
    return hashlib.sha256(run.field.tobytes()).hexdigest()


def test_same_field_in_another_process() -> None:
    code = "from tests.mfn_core.test_model import field_digest; print(field_digest(5))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip() == field_digest(5)


def test_non_finite_state_fails_naming_step_and_array() -> None:
    # Valid parameters cannot produce NaN, so the guard is driven with a NaN planted
    # in the activator's initial state.
    params = SimParams(seed=3, grid_size=6, steps=4, spike_probability=0.0)
    state = {
        name: np.full((6, 6), value) for name, value in (("V", -0.07), ("a", 0.05), ("i", 0.05))
    }
    state["a"][3, 3] = np.nan
    with pytest.raises(SimulationError, match=r"seed 3 failed at step 1: a holds NaN or Inf"):
        _integrate(params, state["V"], state["a"], state["i"], np.random.default_rng(3))


def test_simulate_refuses_other_types() -> None:
    with pytest.raises(ValueError, match="takes a SimParams"):
        simulate({"seed": 1})  # type: ignore[arg-type]


def test_simulation_error_is_runtime_error() -> None:
    assert issubclass(SimulationError, RuntimeError)
