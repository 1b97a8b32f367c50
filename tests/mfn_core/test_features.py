from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mfn_core import (
    ALL_FEATURE_NAMES,
    EXTENDED_FEATURE_NAMES,
    FEATURE_NAMES,
    ParamError,
    SimParams,
    features_from_history,
    simulate,
)
from mfn_core.features import (
    COUNT_FEATURES,
    _entropy_bits,
    _percentile_linear,
    box_sizes,
    compute_features,
)
from mfn_core.params import Boundary
from mfn_core.trace import StepTrace, trace_from_history
from tests import naive
from tests.conftest import ACTIVE, valid_params

RTOL, ATOL = 1e-9, 1e-10


def assert_features_close(got: dict[str, Any], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=RTOL, abs=ATOL), name
        assert isinstance(got[name], int if name in COUNT_FEATURES else float), name


@pytest.mark.parametrize("boundary", ["periodic", "neumann", "dirichlet"])
@pytest.mark.parametrize(("extra", "steps"), [({}, 60), (ACTIVE, 150), ({"steps": 1}, 1)])
def test_run_features_equal_reference(
    boundary: Boundary, extra: dict[str, Any], steps: int
) -> None:
    params = SimParams(seed=4, grid_size=24, boundary=boundary, **{**extra, "steps": steps})
    run = simulate(params)
    ref = naive.simulate(params.as_dict())
    want = naive.features(ref.history) | naive.extended_features(ref.history[-1])
    assert_features_close(run.features, want)
    assert list(run.features) == list(ALL_FEATURE_NAMES)


@pytest.mark.parametrize("boundary", ["periodic", "neumann", "dirichlet"])
@pytest.mark.parametrize("jitter", [False, True])
def test_trace_filled_while_running_equals_trace_from_history(
    boundary: Boundary, jitter: bool
) -> None:
    # The model kernel fills the trace row by row as it steps; trace_from_history fills
    # it from stored frames. Dirichlet fields are stored mirrored, so their sums run in
    # another order: equal to rounding there, not bit for bit.
    params = SimParams(
        seed=4, grid_size=24, steps=60, boundary=boundary, quantum_jitter=jitter, **ACTIVE
    )
    run = simulate(params)
    want = trace_from_history(naive.simulate(params.as_dict()).history)
    assert isinstance(run.trace, StepTrace)
    for name, got, expected in zip(StepTrace._fields, run.trace, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0, err_msg=name)


def test_active_run_has_informative_structural_features() -> None:
    run = simulate(SimParams(seed=4, grid_size=24, steps=150, **ACTIVE))
    f = run.features
    assert f["N_clusters_low"] > 0
    assert f["max_cluster_size"] > 0
    assert f["f_active"] > 0
    assert 0 < f["D_box"] <= 2.1


def test_relative_features_see_structure_where_4_1_thresholds_see_none() -> None:
    f = simulate(SimParams(seed=4, grid_size=64, steps=100)).features
    assert f["D_box"] == 0
    assert f["N_clusters_low"] == 0
    assert f["f_active"] == 0
    assert 1 < f["D_box_rel"] < 2
    assert f["N_clusters_rel"] > 1
    assert f["H_entropy"] > 1


@settings(max_examples=40)
@given(valid_params(max_grid=16, max_steps=30))
def test_features_equal_reference_for_random_runs(values: dict[str, Any]) -> None:
    params = SimParams.from_mapping(values)
    run = simulate(params)
    ref = naive.simulate(params.as_dict())
    assert_features_close(
        run.features, naive.features(ref.history) | naive.extended_features(ref.history[-1])
    )


def test_features_from_history_equal_reference_and_run() -> None:
    params = SimParams(seed=9, grid_size=20, steps=80, **ACTIVE)
    history = naive.simulate(params.as_dict()).history
    got = features_from_history(history)
    assert list(got) == list(FEATURE_NAMES)
    assert_features_close(got, naive.features(history))
    run_features = simulate(params).features
    for name in FEATURE_NAMES:
        assert got[name] == pytest.approx(run_features[name], rel=RTOL, abs=ATOL)


fields = hnp.arrays(
    np.float64,
    st.integers(2, 24).map(lambda n: (n, n)),
    elements=st.floats(-0.095, 0.040, allow_nan=False),
)


@settings(max_examples=150)
@given(fields)
def test_single_field_features_equal_reference(field: np.ndarray) -> None:
    got = features_from_history(field)
    assert_features_close(got, naive.features(field[np.newaxis]))
    assert (got["dV_mean"], got["dV_max"], got["T_stable"], got["E_trend"]) == (0, 0, 0, 0)


@settings(max_examples=150)
@given(fields)
def test_extended_features_equal_reference(field: np.ndarray) -> None:
    run = compute_features(np.ascontiguousarray(field), StepTrace.empty(1))
    want = naive.extended_features(field)
    assert_features_close({k: run[k] for k in EXTENDED_FEATURE_NAMES}, want)


@given(hnp.arrays(np.float64, st.integers(1, 400), elements=st.floats(-1e3, 1e3)))
def test_percentile_rounds_like_numpy(values: np.ndarray) -> None:
    assert _percentile_linear(values.copy(), 90.0) == np.percentile(values, 90)


@given(hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(-1e3, 1e3)))
def test_histogram_bins_like_numpy(values: np.ndarray) -> None:
    want = naive.extended_features(values.reshape(1, -1))["H_entropy"]
    assert _entropy_bits(values.reshape(1, -1), 64) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_constant_field() -> None:
    f = features_from_history(np.full((3, 8, 8), -0.07))
    assert f["V_std"] == 0
    assert f["V_skew"] == 0
    assert f["V_kurt"] == 0
    assert f["dV_mean"] == 0
    assert f["T_stable"] == 3
    assert f["D_box"] == 0


def test_t_stable_finds_first_run_of_ten_quiet_steps() -> None:
    # Frames 0..5 are noisy, 6..29 identical: D for k = 5 (frames 5 -> 6) is still
    # noisy, s_k < 0.001 from k = 6, the count reaches 10 at k = 15: 15 - 10 + 2 = 7.
    rng = np.random.default_rng(0)
    history = np.repeat(rng.normal(-0.07, 0.005, (1, 8, 8)), 30, axis=0)
    history[:6] += rng.normal(0, 0.001, (6, 8, 8))
    assert features_from_history(history)["T_stable"] == naive.features(history)["T_stable"] == 7


def test_box_sizes_follow_geomspace_rule() -> None:
    # geomspace(2, 32, 5)[2] is 7.999..., which truncation makes 7, as in 4.1.
    assert box_sizes(64).tolist() == [2, 4, 7, 16, 32]
    assert box_sizes(8).tolist() == [2, 3, 4]
    assert box_sizes(4).tolist() == [2]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 3, 4)), "not \\(T, N, N\\)"),
        (np.zeros((0, 4, 4)), "empty"),
        (np.full((4, 4), np.nan), "NaN or Inf"),
        (np.zeros((4, 4), dtype=bool), "not numeric"),
        ([[0.0, 0.0], [0.0, 0.0]], "numpy array"),
    ],
)
def test_bad_history_is_refused(array: Any, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        features_from_history(array)


def test_entropy_of_a_range_too_small_to_bin_is_zero() -> None:
    # Subnormal differences cannot form 64 finite-sized bins (NumPy refuses them);
    # this once read out of bounds and crashed the process.
    field = np.array([[0.0, 1e-310], [0.0, 0.0]])
    trace = trace_from_history(field[np.newaxis])
    assert compute_features(field, trace)["H_entropy"] == 0.0
    assert naive.extended_features(field)["H_entropy"] == 0.0
