from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mfn_pipeline.lib.settings import ConfigError, load_settings

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
    ("old", "new", "message"),
    [
        ("steps: 50", "steps: [50", "not valid YAML"),
        ("steps: 50", "steps: 50\ncolour: red", "unknown field 'colour'"),
        ("steps: 50", "steps: fifty", "steps = 'fifty'"),
        ("steps: 50", "steps: 50\nsteps: 60", "key 'steps' is given twice (lines 5 and 6)"),
        ("alpha: [0.15]", "alpha: [0.5]", "sweep.alpha[0] = 0.5"),
        ("name: small", "name: Small!", "name = 'Small!'"),
        ("name: small", "name: medium", "differs from the file name"),
        ("D_box: [0.0, 0.0]", "D_bax: [0.0, 0.0]", "expect.ranges.D_bax"),
        ("max_runtime_s: 60", "max_runtime_s: -1", "expect.max_runtime_s"),
    ],
)
def test_an_invalid_preset_fails_alone_naming_file_field_and_value(
    configs: Path, old: str, new: str, message: str
) -> None:
    _edit(configs / "presets/small.yaml", old, new)
    settings = load_settings(configs, "dev")
    assert set(settings.presets) == {"benchmark", "large", "medium", "transition"}
    assert settings.partitions == ["benchmark", "large", "medium", "small", "transition"]
    problem = settings.problem_of("small")
    assert problem is not None
    assert problem.path == configs / "presets/small.yaml"
    assert problem.message.startswith(f"{configs / 'presets/small.yaml'}: ")
    assert message in problem.message
    assert "allowed" in problem.message or "YAML" in problem.message
    assert "\n" not in problem.message
    assert settings.problem_of("medium") is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("executor: in_process", "executor: threads", "executor"),
        ("max_concurrent: 2", "max_concurrent: 0", "max_concurrent = 0"),
        ("log_level: INFO", "log_level: INFO\nspeed: 11", "speed"),
        ("log_level: INFO", "log_level: INFO\nlog_level: DEBUG", "key 'log_level' is given twice"),
        ("log_level: INFO", "log_level: *level", "alias *level is not allowed"),
    ],
)
def test_an_invalid_environment_file_stops_the_load(
    configs: Path, old: str, new: str, message: str
) -> None:
    # The environment is global configuration: nothing can run without it.
    _edit(configs / "environments/dev.yaml", old, new)
    with pytest.raises(ConfigError) as excinfo:
        load_settings(configs, "dev")
    text = str(excinfo.value)
    assert text.startswith(f"{configs / 'environments/dev.yaml'}: ")
    assert message in text
    assert "\n" not in text


def test_limit_of_the_environment_is_enforced(configs: Path) -> None:
    _edit(configs / "presets/small.yaml", "grid_size: 32", "grid_size: 512")
    assert "small" in load_settings(configs, "dev").presets  # dev allows it
    prod = load_settings(configs, "prod")
    assert "small" not in prod.presets
    problem = prod.problem_of("small")
    assert problem is not None
    assert re.search(r"grid_size = 512 exceeds the prod .*at most 256", problem.message)


def test_every_limit_a_preset_exceeds_is_named_at_once(configs: Path) -> None:
    _edit(configs / "presets/small.yaml", "grid_size: 32", "grid_size: 512")
    _edit(configs / "presets/small.yaml", "num_samples: 10", "num_samples: 999999")
    _edit(configs / "presets/small.yaml", "name: small", "name: smol")
    problem = load_settings(configs, "prod").problem_of("small")
    assert problem is not None
    assert "3 problems" in problem.message
    for part in ("name = 'smol' differs", "grid_size = 512 exceeds", "num_samples = 999999"):
        assert part in problem.message


def test_a_file_name_that_is_no_partition_key_is_a_problem_but_no_partition(
    configs: Path,
) -> None:
    shutil.copy(configs / "presets/small.yaml", configs / "presets/Small Copy.yaml")
    settings = load_settings(configs, "dev")
    assert "small" in settings.presets
    (problem,) = settings.problems
    assert problem.partition is None
    assert "file name 'Small Copy' is not a preset name" in problem.message
    assert settings.partitions == sorted(settings.presets)


def test_editor_leftovers_are_ignored(configs: Path) -> None:
    presets = configs / "presets"
    (presets / ".#small.yaml").symlink_to("user@host.4242:1763900000")  # Emacs lock
    (presets / ".small.yaml.swp").write_bytes(b"\x00vim swap")
    for leftover in ("small.yaml~", "#small.yaml#", "small.yaml.bak", "README.md"):
        (presets / leftover).write_text("name: [broken")
    settings = load_settings(configs, "dev")
    assert settings.problems == ()
    assert set(settings.presets) == {"benchmark", "large", "medium", "small", "transition"}


def test_a_yml_file_is_reported_with_a_rename_hint(configs: Path) -> None:
    presets = configs / "presets"
    (presets / "medium.yaml").rename(presets / "medium.yml")
    shutil.copy(presets / "small.yaml", presets / "small.yml")
    settings = load_settings(configs, "dev")
    assert set(settings.presets) == {"benchmark", "large", "small", "transition"}
    medium = settings.problem_of("medium")
    assert medium is not None
    assert medium.message == (
        f"{presets / 'medium.yml'}: preset files end in .yaml, so this file is not read; "
        "rename it to medium.yaml"
    )
    # small.yaml is read; small.yml is reported but cannot take its partition.
    (both,) = [p for p in settings.problems if p.path.name == "small.yml"]
    assert both.partition is None
    assert "small.yaml exists too and is the one read" in both.message
    assert settings.problem_of("small") is None


def test_a_folder_of_only_broken_presets_still_loads(configs: Path) -> None:
    for path in (configs / "presets").iterdir():
        path.write_text("")
    settings = load_settings(configs, "dev")
    assert settings.presets == {}
    assert settings.partitions == ["benchmark", "large", "medium", "small", "transition"]
    assert all("the file is empty" in p.message for p in settings.problems)


def test_no_preset_files_at_all_stops_the_load(configs: Path) -> None:
    shutil.rmtree(configs / "presets")
    (configs / "presets").mkdir()
    (configs / "presets" / ".#x.yaml").write_text("")
    with pytest.raises(ConfigError, match="no preset files"):
        load_settings(configs, "dev")


def test_unknown_environment_lists_the_known_ones(configs: Path) -> None:
    with pytest.raises(ConfigError, match="allowed: one of dev, prod"):
        load_settings(configs, "staging")


def test_an_invalid_preset_no_longer_stops_the_code_location_load(configs: Path) -> None:
    _edit(configs / "presets/medium.yaml", "num_samples: 100", "num_samples: -3")
    env = {**os.environ, "MFN_CONFIG_DIR": str(configs), "DAGSTER_HOME": str(configs.parent)}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "asset", "list", "-m", "mfn_pipeline.definitions"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "simulation_runs" in result.stdout


def test_warehouse_url_must_be_openable(configs: Path) -> None:
    _edit(configs / "environments/dev.yaml", "warehouse: data/warehouse", "warehouse: nope://x/y")
    with pytest.raises(ConfigError, match="warehouse = 'nope://x/y' uses protocol 'nope'"):
        load_settings(configs, "dev")
    _edit(configs / "environments/dev.yaml", "warehouse: nope://x/y", "warehouse: memory://mfn")
    assert load_settings(configs, "dev").environment.warehouse == "memory://mfn"


def test_every_problem_of_an_environment_file_is_listed_at_once(configs: Path) -> None:
    dev = configs / "environments/dev.yaml"
    _edit(dev, "executor: in_process", "executor: threads\nlog_levle: INFO")
    _edit(dev, "max_concurrent: 2", "max_concurrent: 0")
    _edit(dev, "wall_clock_s: 3600", "wall_clock_s: 0.5")
    with pytest.raises(ConfigError) as excinfo:
        load_settings(configs, "dev")
    message = str(excinfo.value)
    assert message.startswith(f"{dev}: 4 problems: 1) ")
    for fragment in (
        "executor = 'threads' is not a known choice; allowed: one of in_process, multiprocess",
        "max_concurrent = 0 is out of range; allowed: an integer >= 1",
        # A file sets whole seconds, as before.
        "limits.wall_clock_s = 0.5 is not an integer; allowed: an integer >= 1",
        "unknown field 'log_levle' (did you mean 'log_level'?)",
    ):
        assert fragment in message
    assert "\n" not in message


def test_a_limit_left_out_is_named(configs: Path) -> None:
    _edit(configs / "environments/dev.yaml", "  storage_gib: 100", "")
    with pytest.raises(ConfigError, match=r"missing required field limits.storage_gib"):
        load_settings(configs, "dev")


def test_an_environment_changed_in_code_is_validated_too() -> None:
    environment = load_settings(CONFIGS, "dev").environment
    assert dataclasses.replace(environment.limits, wall_clock_s=1e-6).wall_clock_s == 1e-6
    with pytest.raises(ConfigError, match=r"^max_concurrent = 0 is out of range"):
        dataclasses.replace(environment, max_concurrent=0)
