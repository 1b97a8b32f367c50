from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfn_core import ParamError, SimParams
from mfn_core.params import PARAM_SPECS
from tests.conftest import valid_params


def test_defaults_follow_model_md() -> None:
    p = SimParams(seed=1)
    assert (p.grid_size, p.steps, p.alpha, p.boundary) == (64, 100, 0.18, "periodic")
    assert (p.d_activator, p.d_inhibitor, p.r_activator, p.r_inhibitor) == (0.1, 0.05, 0.01, 0.02)
    assert (p.turing_enabled, p.turing_threshold, p.spike_probability) == (True, 0.75, 0.25)
    assert (p.quantum_jitter, p.jitter_var) == (False, 0.0005)


def test_seed_is_required() -> None:
    with pytest.raises(TypeError):
        SimParams()  # type: ignore[call-arg]
    with pytest.raises(ParamError, match="seed is required"):
        SimParams.from_mapping({"alpha": 0.1})


def test_immutable() -> None:
    p = SimParams(seed=1)
    with pytest.raises(AttributeError):
        p.alpha = 0.2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alpha": 0.25}, r"alpha = 0.25 is out of range; allowed: a number in \[0.05, 0.24\]"),
        ({"grid_size": 3}, r"grid_size = 3 is out of range; allowed: an integer in \[4, 1024\]"),
        ({"grid_size": 8.5}, r"grid_size = 8.5 is not an integer"),
        ({"grid_size": True}, r"grid_size = True is not a number"),
        ({"steps": "100"}, r"steps = '100' is not a number"),
        ({"alpha": math.nan}, r"alpha = nan is not finite"),
        ({"jitter_var": -1e-9}, r"jitter_var = -1e-09 is out of range"),
        (
            {"boundary": "wrap"},
            r"boundary = 'wrap' is not a known choice; allowed: one of periodic",
        ),
        ({"turing_enabled": 1}, r"turing_enabled = 1 is not a boolean; allowed: true or false"),
        ({"seed": -1}, r"seed = -1 is out of range"),
        ({"seed": 2**63}, r"seed = 9223372036854775808 is out of range"),
        ({"alpah": 0.1}, r"unknown parameter 'alpah' \(did you mean 'alpha'\?\)"),
    ],
)
def test_invalid_values_name_parameter_value_and_range(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParamError, match=message):
        SimParams.from_mapping({"seed": 1, **changes})


def test_integral_float_is_accepted_as_integer() -> None:
    assert SimParams(seed=1, grid_size=16.0).grid_size == 16  # type: ignore[arg-type]


@given(valid_params(max_grid=1024, max_steps=100_000))
def test_every_valid_set_is_accepted_and_round_trips(values: dict[str, Any]) -> None:
    p = SimParams.from_mapping(values)
    assert p.as_dict() == values


junk = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.booleans(),
)


@given(st.sampled_from(sorted(PARAM_SPECS)), junk)
def test_any_value_is_accepted_or_refused_with_param_error(name: str, value: object) -> None:
    try:
        p = SimParams.from_mapping({"seed": 0, name: value})
    except ParamError as exc:
        # Either outcome is fine; a refusal must still say what and why.
        assert name in str(exc)  # noqa: PT017
        assert "allowed:" in str(exc)  # noqa: PT017
    else:
        assert getattr(p, name) == value
