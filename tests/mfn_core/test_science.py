from __future__ import annotations

import math

import numpy as np
import pytest

from mfn_core import ParamError
from mfn_core.science import (
    box_dimension,
    generate_ifs,
    iterate_ifs,
    nernst_potential,
    point_box_dimension,
)


def test_nernst_potassium_is_about_minus_89_mv() -> None:
    assert nernst_potential(1, 0.005, 0.140) * 1000 == pytest.approx(-89.0, abs=0.5)


def test_rt_over_f_at_body_temperature() -> None:
    assert nernst_potential(1, math.e, 1.0) * 1000 == pytest.approx(26.7, abs=0.05)


def test_nernst_clamps_concentrations_and_scales_with_charge() -> None:
    assert nernst_potential(1, 0.0, 1e-6) == 0.0
    assert nernst_potential(2, 0.01, 0.1) == pytest.approx(nernst_potential(1, 0.01, 0.1) / 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [((0, 1.0, 1.0), "z = 0"), ((1, -1.0, 1.0), "c_out = -1.0"), ((1, 1.0, math.nan), "c_in")],
)
def test_nernst_refuses_bad_input(args: tuple[int, float, float], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        nernst_potential(*args)


def test_random_ifs_contracts() -> None:
    dets = [generate_ifs(num_points=2000, seed=s).mean_log_det for s in range(20)]
    assert all(d < 0 for d in dets)
    assert np.mean(dets) == pytest.approx(-2.1, abs=0.3)


SIERPINSKI = np.array(
    [
        [[0.5, 0, 0], [0, 0.5, 0]],
        [[0.5, 0, 0.5], [0, 0.5, 0]],
        [[0.5, 0, 0.25], [0, 0.5, math.sqrt(3) / 4]],
    ]
)


def test_sierpinski_triangle_points() -> None:
    result = iterate_ifs(SIERPINSKI, 100_000, seed=3)
    assert result.mean_log_det == pytest.approx(2 * math.log(0.5))
    assert point_box_dimension(result.points) == pytest.approx(math.log(3) / math.log(2), abs=0.1)


def carpet(n: int) -> np.ndarray:
    mask = np.ones((n, n), dtype=bool)
    index = np.arange(n)
    k = 1
    while k < n:
        middle = (index // k) % 3 == 1
        mask[np.ix_(middle, middle)] = False
        k *= 3
    return mask


def test_known_box_dimensions() -> None:
    rows, cols = np.indices((256, 256))
    assert box_dimension(carpet(243))[0] == pytest.approx(math.log(8) / math.log(3), abs=0.1)
    assert box_dimension((rows & cols) == 0)[0] == pytest.approx(math.log(3) / math.log(2), abs=0.1)
    line = np.zeros((64, 64), dtype=bool)
    line[10] = True
    assert box_dimension(np.ones((64, 64), dtype=bool))[0] == pytest.approx(2, abs=0.05)
    assert box_dimension(line)[0] == pytest.approx(1, abs=0.05)


def test_ifs_refuses_expanding_maps() -> None:
    with pytest.raises(ParamError, match="det J"):
        iterate_ifs(SIERPINSKI * 4, 10, seed=0)
