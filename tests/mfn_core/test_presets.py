from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mfn_core import ParamError
from mfn_core.presets import PresetError, load_preset

PRESETS = Path(__file__).parents[2] / "configs" / "presets"

FOUR_ONE = {
    # name: (grid, steps, runs, seeds per config, alpha values)
    "small": (32, 50, 10, 2, [0.15]),
    "medium": (64, 100, 100, 3, [0.10, 0.15, 0.20]),
    "large": (128, 200, 500, 5, [0.08, 0.12, 0.16, 0.20]),
    "benchmark": (32, 32, 5, 1, [0.15]),
}


@pytest.mark.parametrize("name", sorted(FOUR_ONE))
def test_4_1_presets_keep_their_values(name: str) -> None:
    preset = load_preset(PRESETS / f"{name}.yaml")
    grid, steps, runs, per_config, alphas = FOUR_ONE[name]
    assert (preset.name, preset.grid_size, preset.steps) == (name, grid, steps)
    assert (preset.num_samples, preset.seeds_per_config, preset.base_seed) == (runs, per_config, 42)
    assert preset.sweep == (("alpha", tuple(alphas)),)
    expanded = list(preset.runs())
    assert [sim_id for sim_id, _ in expanded] == list(range(runs))
    assert all(p.turing_enabled and p.boundary == "periodic" for _, p in expanded)


def test_sample_order_cycles_grid_points_with_consecutive_seeds() -> None:
    preset = load_preset(PRESETS / "medium.yaml")
    runs = list(preset.runs())
    assert [(p.alpha, p.seed) for _, p in runs[:7]] == [
        (0.10, 42),
        (0.10, 43),
        (0.10, 44),
        (0.15, 45),
        (0.15, 46),
        (0.15, 47),
        (0.20, 48),
    ]
    # 100 = 33 full configs + 1: the cycle restarts at alpha 0.10 for run 99.
    assert (runs[99][1].alpha, runs[99][1].seed) == (0.10, 141)
    assert runs[9][1].alpha == 0.10  # 3 points x 3 seeds, then back to the first point


def write(tmp_path: Path, document: Any, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


GOOD = {
    "name": "t",
    "grid_size": 8,
    "steps": 3,
    "num_samples": 5,
    "seeds_per_config": 2,
    "base_seed": 1,
    "sweep": {"alpha": [0.1, 0.2], "boundary": ["periodic", "neumann"]},
    "params": {"quantum_jitter": True},
}


def test_cartesian_grid_first_listed_parameter_outermost(tmp_path: Path) -> None:
    preset = load_preset(write(tmp_path, GOOD))
    assert [(p["alpha"], p["boundary"]) for p in preset.grid_points()] == [
        (0.1, "periodic"),
        (0.1, "neumann"),
        (0.2, "periodic"),
        (0.2, "neumann"),
    ]
    assert all(p.quantum_jitter for _, p in preset.runs())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grid_size": 2}, r"p.yaml: grid_size = 2 is out of range; allowed: an integer in \[4"),
        ({"name": "Bad/Name"}, r"name = 'Bad/Name' is not a valid preset name; allowed: 1 to 64"),
        ({"num_samples": 0}, r"num_samples = 0 is invalid; allowed: an integer in \[1, "),
        ({"colour": 1}, r"unknown field 'colour'"),
        ({"sweep": {"alpha": [0.1, 0.3]}}, r"sweep.alpha\[1\] = 0.3 is out of range"),
        ({"sweep": {"seed": [1]}}, r"sweep.seed is not a model parameter that can be set here"),
        ({"sweep": {"alpha": []}}, r"sweep.alpha = \[\] is not a non-empty list"),
        ({"params": {"alpha": 0.1}}, r"params.alpha is also swept"),
        ({"params": {"boundry": "periodic"}}, r"did you mean 'boundary'"),
        ({"params": {"spike_probability": "high"}}, r"params.spike_probability = 'high' is not a"),
        ({"base_seed": -3}, r"base_seed = -3 is invalid"),
    ],
)
def test_invalid_preset_names_file_field_value_and_range(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(PresetError, match=message):
        load_preset(write(tmp_path, {**GOOD, **change}))


def test_missing_field(tmp_path: Path) -> None:
    document = {k: v for k, v in GOOD.items() if k != "steps"}
    with pytest.raises(PresetError, match="missing required field steps"):
        load_preset(write(tmp_path, document))


@pytest.mark.parametrize(
    ("text", "message"),
    [("name: [unclosed", "not valid YAML"), ("- a\n- b\n", "document is a list")],
)
def test_unreadable_documents(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        load_preset(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="cannot read preset file"):
        load_preset(tmp_path / "absent.yaml")


def test_preset_error_is_a_param_error() -> None:
    assert issubclass(PresetError, ParamError)
