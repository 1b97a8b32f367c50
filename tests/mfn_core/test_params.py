from __future__ import annotations

import dataclasses
import json
import math
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from mfn_core import ParamError, SimParams, science
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


# Values set after construction, as object.__setattr__ or unpickling does: each must be
# refused by simulate() with a ParamError naming the field, before any kernel runs.
FORCED: list[tuple[str, str, str]] = [
    ("grid_size", "0", "SimParams.grid_size = 0 is out of range"),
    ("grid_size", "2", "SimParams.grid_size = 2 is out of range"),
    ("grid_size", "10**6", "SimParams.grid_size = 1000000 is out of range"),
    ("grid_size", "10**5000", "SimParams.grid_size = <an integer of about 5000 digits>"),
    ("grid_size", "True", "SimParams.grid_size = True is of type bool"),
    ("grid_size", "8.0", "SimParams.grid_size = 8.0 is of type float"),
    ("grid_size", "'8'", "SimParams.grid_size = '8' is of type str"),
    ("steps", "-5", "SimParams.steps = -5 is out of range"),
    ("steps", "0", "SimParams.steps = 0 is out of range"),
    ("alpha", "float('nan')", "SimParams.alpha = nan is not finite"),
    ("alpha", "float('inf')", "SimParams.alpha = inf is not finite"),
    ("alpha", "1", "SimParams.alpha = 1 is of type int"),
    ("jitter_var", "-1.0", "SimParams.jitter_var = -1.0 is out of range"),
    ("turing_enabled", "1", "SimParams.turing_enabled = 1 is of type int"),
    ("boundary", "'torus'", "SimParams.boundary = 'torus' is not a known choice"),
    ("seed", "-1", "SimParams.seed = -1 is out of range"),
    ("seed", "None", "SimParams.seed = None is of type NoneType"),
]
FORCE_SCRIPT = """
import json, pickle, sys
from mfn_core import ParamError, SimParams, simulate
for name, value in json.loads(sys.argv[1]):
    params = SimParams(seed=1, grid_size=8, steps=3)
    object.__setattr__(params, name, eval(value))
    try:
        simulate(params)
        print("ran", flush=True)
    except ParamError as exc:
        print(exc, flush=True)
    try:
        pickle.loads(pickle.dumps(params))
        print("unpickled", flush=True)
    except ParamError as exc:
        print(exc, flush=True)
"""


def test_simulate_refuses_parameters_forced_invalid_after_construction() -> None:
    # In a subprocess: on the old code grid_size 0 segfaulted, which must fail this
    # test instead of killing pytest.
    cases = json.dumps([[name, value] for name, value, _ in FORCED])
    result = subprocess.run(
        [sys.executable, "-c", FORCE_SCRIPT, cases],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    lines = result.stdout.splitlines()
    assert len(lines) == 2 * len(FORCED), result.stdout
    for k, (_, _, message) in enumerate(FORCED):
        simulated, unpickled = lines[2 * k], lines[2 * k + 1]
        assert simulated.startswith(message), simulated
        assert "allowed:" in simulated
        assert unpickled == simulated  # a pickle cannot smuggle it in either


def test_verify_accepts_every_constructed_set() -> None:
    SimParams(seed=0).verify()
    p = SimParams(seed=1, grid_size=16.0)  # type: ignore[arg-type]
    p.verify()
    assert pickle.loads(pickle.dumps(p)) == p


def test_unpickling_refuses_unknown_or_missing_fields() -> None:
    p = SimParams(seed=1)
    state = p.__dict__.copy()
    clone = SimParams.__new__(SimParams)
    with pytest.raises(ParamError, match=r"SimParams state .* is invalid"):
        clone.__setstate__({**state, "colour": "red"})
    del state["alpha"]
    with pytest.raises(ParamError, match=r"SimParams\.alpha is not set"):
        SimParams.__new__(SimParams).__setstate__(state)


def test_messages_show_long_values_shortened() -> None:
    with pytest.raises(ParamError) as excinfo:
        SimParams(seed=1, boundary="x" * 100_000)  # type: ignore[arg-type]
    assert len(str(excinfo.value)) < 200
    with pytest.raises(ParamError, match="about 5000 digits"):
        SimParams(seed=10**5000)


FEATURES_SCRIPT = """
import numpy as np
from mfn_core import ParamError, StepTrace
from mfn_core.features import compute_features
short = np.zeros(1)
cases = [
    (np.zeros((8, 8)), StepTrace(np.zeros(10**7), short, short, short, short)),
    (np.zeros((4, 8)), StepTrace.empty(3)),
    (np.zeros((0, 0)), StepTrace.empty(3)),
    (np.zeros((8, 8), dtype=np.int64), StepTrace.empty(3)),
    (np.zeros((8, 8)), StepTrace(np.zeros(3), *(np.zeros(2, dtype=np.float32),) * 4)),
]
for field, trace in cases:
    try:
        compute_features(field, trace)
        print("ran", flush=True)
    except ParamError as exc:
        print(exc, flush=True)
"""


def test_features_refuse_arrays_the_kernels_would_read_past() -> None:
    # A trace shorter than its energy array made the temporal kernel read past the end
    # (a segfault): the other public way into the compiled code checks shapes too.
    result = subprocess.run(
        [sys.executable, "-c", FEATURES_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    assert result.stdout.splitlines() == [
        "trace.dv_mean (float64 array of shape (1,)) is invalid; allowed: a float64 array "
        "of shape (9999999,) for 10000000 steps (energy has one value per step, "
        "the others one per pair of steps)",
        "field shape (4, 8) is invalid; allowed: (N, N) with N >= 2",
        "field shape (0, 0) is invalid; allowed: (N, N) with N >= 2",
        "field of type int64 is invalid; allowed: a float64 numpy array",
        "trace.dv_mean (float32 array of shape (2,)) is invalid; allowed: a float64 array "
        "of shape (2,) for 3 steps (energy has one value per step, "
        "the others one per pair of steps)",
    ]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: SimParams(seed=1, alpha=10**400), "alpha"),
        (lambda: science.nernst_potential(10**5000, 1.0, 1.0), "z"),
        (lambda: science.nernst_potential(1, 10**400, 1.0), "c_out"),
        (lambda: science.nernst_potential(1, 1.0, 1.0, temperature_k=10**400), "temperature_k"),
        (lambda: science.random_contractive_maps(10**5000, 0), "num_maps"),
        (lambda: science.generate_ifs(num_points=10**5000), "num_points"),
        (lambda: science.point_box_dimension(np.eye(2), min_level=10**5000), "levels"),
    ],
)
def test_public_entry_points_refuse_huge_integers_with_a_param_error(
    call: Callable[[], object], field: str
) -> None:
    # Before: OverflowError from float(), or ValueError from repr() of > 4300 digits.
    with pytest.raises(ParamError) as excinfo:
        call()
    assert str(excinfo.value).startswith(field)
    assert len(str(excinfo.value)) < 200


def test_each_parameter_is_spelled_once_with_range_unit_and_description() -> None:
    assert list(PARAM_SPECS) == [field.name for field in dataclasses.fields(SimParams)]
    assert all(spec.description for spec in PARAM_SPECS.values())
    assert PARAM_SPECS["jitter_var"].unit == "V^2"
    schema = TypeAdapter(SimParams).json_schema()
    assert schema["required"] == ["seed"]
    assert schema["additionalProperties"] is False
    alpha = schema["properties"]["alpha"]
    assert (alpha["minimum"], alpha["maximum"], alpha["default"]) == (0.05, 0.24, 0.18)
    assert alpha["description"].endswith("Unit: 1/step.")
    assert schema["properties"]["boundary"]["enum"] == ["periodic", "neumann", "dirichlet"]


def test_every_problem_is_named_in_one_message() -> None:
    with pytest.raises(ParamError) as excinfo:
        SimParams(seed=1, grid_size=2, alpha=0.5, colour="red")  # type: ignore[call-arg]
    message = str(excinfo.value)
    assert message.startswith("3 problems: 1) grid_size = 2 is out of range")
    assert "2) alpha = 0.5 is out of range; allowed: a number in [0.05, 0.24]" in message
    assert "3) unknown parameter 'colour'" in message
