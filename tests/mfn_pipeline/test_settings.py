from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mfn_pipeline.settings import ConfigError, load_settings

from .conftest import PROJECT

CONFIGS = PROJECT / "configs"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A private copy of the project's configs to break."""
    target = tmp_path / "configs"
    shutil.copytree(CONFIGS, target)
    return target


def test_project_configs_load_in_every_environment() -> None:
    for env in ("dev", "prod"):
        settings = load_settings(CONFIGS, env)
        assert set(settings.presets) == {"benchmark", "large", "medium", "small", "transition"}
    assert load_settings(CONFIGS, "prod").environment.limits.grid_size == 256


def test_transition_preset_has_the_issue_values() -> None:
    preset = load_settings(CONFIGS, "dev").presets["transition"]
    assert (preset.grid_size, preset.steps, preset.num_samples, preset.base_seed) == (
        64,
        200,
        96,
        7,
    )
    assert preset.sweep == (("r_activator", (0.05, 0.055, 0.06, 0.065, 0.07, 0.08)),)
    assert preset.seeds_per_config == 16
    assert preset.params["alpha"] == 0.1
    assert preset.params["r_inhibitor"] == 0.001


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("presets/small.yaml", "steps: 50", "steps: [50", "not valid YAML"),
        ("presets/small.yaml", "steps: 50", "steps: 50\ncolour: red", "unknown field 'colour'"),
        ("presets/small.yaml", "steps: 50", "steps: fifty", "steps = 'fifty'"),
        ("presets/small.yaml", "alpha: [0.15]", "alpha: [0.5]", "sweep.alpha[0] = 0.5"),
        ("presets/small.yaml", "name: small", "name: Small!", "name = 'Small!'"),
        ("presets/small.yaml", "name: small", "name: medium", "differs from the file name"),
        ("presets/small.yaml", "D_box: [0.0, 0.0]", "D_bax: [0.0, 0.0]", "expect.ranges.D_bax"),
        ("presets/small.yaml", "max_runtime_s: 60", "max_runtime_s: -1", "expect.max_runtime_s"),
        ("environments/dev.yaml", "executor: in_process", "executor: threads", "executor"),
        ("environments/dev.yaml", "max_concurrent: 2", "max_concurrent: 0", "max_concurrent = 0"),
        ("environments/dev.yaml", "log_level: INFO", "log_level: INFO\nspeed: 11", "speed"),
    ],
)
def test_each_kind_of_invalid_file_names_file_field_and_value(
    configs: Path, file: str, old: str, new: str, message: str
) -> None:
    _edit(configs / file, old, new)
    with pytest.raises(ConfigError) as excinfo:
        load_settings(configs, "dev")
    text = str(excinfo.value)
    assert str(configs / file) in text
    assert message in text
    assert "allowed" in text or "YAML" in text


def test_limit_of_the_environment_is_enforced(configs: Path) -> None:
    _edit(configs / "presets/small.yaml", "grid_size: 32", "grid_size: 512")
    load_settings(configs, "dev")  # dev allows it
    with pytest.raises(ConfigError, match=r"grid_size = 512 exceeds the prod .*at most 256"):
        load_settings(configs, "prod")


def test_file_name_must_be_a_partition_key(configs: Path) -> None:
    shutil.copy(configs / "presets/small.yaml", configs / "presets/Small Copy.yaml")
    with pytest.raises(ConfigError, match="file name 'Small Copy' is not a preset name"):
        load_settings(configs, "dev")


def test_unknown_environment_lists_the_known_ones(configs: Path) -> None:
    with pytest.raises(ConfigError, match="allowed: one of dev, prod"):
        load_settings(configs, "staging")


def test_invalid_file_stops_the_code_location_load(configs: Path) -> None:
    _edit(configs / "presets/medium.yaml", "num_samples: 100", "num_samples: -3")
    env = {**os.environ, "MFN_CONFIG_DIR": str(configs), "DAGSTER_HOME": str(configs.parent)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "asset", "list", "-m", "mfn_pipeline"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr
    assert f"{configs / 'presets/medium.yaml'}: num_samples = -3 is invalid" in result.stderr


def test_warehouse_url_must_be_openable(configs: Path) -> None:
    _edit(configs / "environments/dev.yaml", "warehouse: data/warehouse", "warehouse: nope://x/y")
    with pytest.raises(ConfigError, match="warehouse = 'nope://x/y' uses protocol 'nope'"):
        load_settings(configs, "dev")
    _edit(configs / "environments/dev.yaml", "warehouse: nope://x/y", "warehouse: memory://mfn")
    assert load_settings(configs, "dev").environment.warehouse == "memory://mfn"
