"""Configuration of the code location: the environment file and every preset.

Everything is validated when the code location loads: an invalid file stops the load
with one :class:`ConfigError` naming the file, the field, the value and what is
allowed. ``MFN_ENV`` picks ``configs/environments/<name>.yaml`` (default ``dev``);
``MFN_CONFIG_DIR`` points at another ``configs`` folder; ``MFN_WAREHOUSE`` and
``MFN_CATALOG`` override where data is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec
import yaml

from mfn_core.presets import NAME_PATTERN, Preset, PresetError, load_preset
from mfn_core.resources import GIB, MIB, estimate_for
from mfn_core.sweep import default_workers
from mfn_pipeline.locations import glob_refusal, inspect_catalog, nesting_refusal

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENV_VAR, CONFIG_DIR_VAR = "MFN_ENV", "MFN_CONFIG_DIR"
WAREHOUSE_VAR, CATALOG_VAR = "MFN_WAREHOUSE", "MFN_CATALOG"
DEFAULT_ENV = "dev"
EXECUTORS = ("in_process", "multiprocess")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PRESET_LIMIT_KEYS = ("grid_size", "steps", "num_samples")
BUDGET_KEYS = ("memory_mib", "storage_gib")
LIMIT_KEYS = (*PRESET_LIMIT_KEYS, "wall_clock_s", *BUDGET_KEYS)
ENV_KEYS = ("warehouse", "catalog", "executor", "max_concurrent", "log_level", "limits")

Executor = Literal["in_process", "multiprocess"]


class ConfigError(ValueError):
    """A configuration file is invalid; the message names file, field, value and what is allowed."""


@dataclass(frozen=True)
class Limits:
    """Largest preset the environment accepts, and how long one sweep may run.

    ``memory_mib`` and ``storage_gib`` bound a preset's estimated peak memory and
    stored bytes (mfn_core.resources), checked when the preset loads.
    """

    grid_size: int
    steps: int
    num_samples: int
    wall_clock_s: int
    memory_mib: int
    storage_gib: int


@dataclass(frozen=True)
class Environment:
    """Where data lives and how builds execute, from ``configs/environments/<name>.yaml``."""

    name: str
    warehouse: str  # a local folder or an fsspec URL
    catalog: Path
    executor: Executor
    max_concurrent: int
    log_level: str
    limits: Limits


@dataclass(frozen=True)
class Settings:
    """The validated configuration: one environment and the presets, keyed by name."""

    environment: Environment
    presets: Mapping[str, Preset]


def load_settings(config_dir: Path | None = None, env_name: str | None = None) -> Settings:
    """Read and validate the environment file and every preset, or raise ConfigError."""
    config_dir = Path(config_dir or os.environ.get(CONFIG_DIR_VAR) or PROJECT_ROOT / "configs")
    env_name = env_name or os.environ.get(ENV_VAR) or DEFAULT_ENV
    if not NAME_PATTERN.fullmatch(env_name):
        raise ConfigError(
            f"{ENV_VAR} = {env_name!r} is not an environment name; "
            "allowed: a-z, 0-9, '_' and '-', e.g. dev or prod"
        )
    environment = _load_environment(config_dir / "environments" / f"{env_name}.yaml", env_name)
    return Settings(environment, _load_presets(config_dir / "presets", environment))


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        folder = path.parent
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ConfigError(
            f"{path}: no such file; allowed: one of {', '.join(known) or '(none found)'}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def _load_environment(path: Path, name: str) -> Environment:
    document = _read_yaml(path)
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: the document is a {type(document).__name__}; "
            f"allowed: a mapping of {', '.join(ENV_KEYS)}"
        )
    unknown = sorted(str(key) for key in document if key not in ENV_KEYS)
    missing = [key for key in ENV_KEYS if key not in document]
    if unknown or missing:
        problem = f"unknown field {', '.join(unknown)}" if unknown else ""
        problem += ("; " if unknown and missing else "") + (
            f"missing field {', '.join(missing)}" if missing else ""
        )
        raise ConfigError(f"{path}: {problem}; allowed: {', '.join(ENV_KEYS)}")

    def text(key: str, choices: tuple[str, ...] = ()) -> str:
        value = document[key]
        if not isinstance(value, str) or not value or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a non-empty string"
            raise ConfigError(f"{path}: {key} = {value!r} is invalid; allowed: {allowed}")
        return value

    limits = document["limits"]
    if not isinstance(limits, dict) or sorted(map(str, limits)) != sorted(LIMIT_KEYS):
        raise ConfigError(
            f"{path}: limits = {limits!r} is invalid; allowed: a mapping of exactly "
            f"{', '.join(LIMIT_KEYS)} to positive integers"
        )
    for key in LIMIT_KEYS:
        _positive_int(path, f"limits.{key}", limits[key])
    warehouse = os.environ.get(WAREHOUSE_VAR) or text("warehouse")
    catalog = os.environ.get(CATALOG_VAR) or text("catalog")
    if "://" in warehouse:
        _check_url(path, warehouse)
    else:
        warehouse = str(_local(warehouse))
    catalog_path = _local(catalog)
    _check_locations(path, warehouse, catalog_path)
    return Environment(
        name=name,
        warehouse=warehouse,
        catalog=catalog_path,
        executor=text("executor", EXECUTORS),  # type: ignore[arg-type]
        max_concurrent=_positive_int(path, "max_concurrent", document["max_concurrent"]),
        log_level=text("log_level", LOG_LEVELS),
        limits=Limits(**{key: limits[key] for key in LIMIT_KEYS}),
    )


def _check_url(path: Path, url: str) -> None:
    """A warehouse URL must name a file system fsspec can open here."""
    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        raise ConfigError(
            f"{path} (or ${WAREHOUSE_VAR}): warehouse = {url!r} uses protocol {protocol!r}, "
            f"which cannot be opened here ({exc}); allowed: a local folder or a URL of an "
            "installed fsspec file system (e.g. s3:// with s3fs installed)"
        ) from None


def _check_locations(path: Path, warehouse: str, catalog: Path) -> None:
    """Refuse locations that would make a build overwrite or a view read foreign files."""
    for variable, problem in (
        (WAREHOUSE_VAR, glob_refusal("warehouse", warehouse)),
        (CATALOG_VAR, glob_refusal("catalog", str(catalog))),
        (CATALOG_VAR, nesting_refusal(warehouse, catalog)),
        (CATALOG_VAR, inspect_catalog(catalog).refusal()),
    ):
        if problem:
            raise ConfigError(f"{path} (or ${variable}): {problem}")


def _local(location: str) -> Path:
    """A local path, relative ones taken from the project root."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _positive_int(path: Path, field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: {field} = {value!r} is invalid; allowed: an integer >= 1")
    return value


def _load_presets(folder: Path, environment: Environment) -> dict[str, Preset]:
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        raise ConfigError(f"{folder}: no preset files; allowed: one or more <name>.yaml files")
    presets = {}
    for path in files:
        if not NAME_PATTERN.fullmatch(path.stem):
            raise ConfigError(
                f"{path}: file name {path.stem!r} is not a preset name; "
                "allowed: 1 to 64 characters from a-z, 0-9, '_' and '-'"
            )
        try:
            preset = load_preset(path)
        except PresetError as exc:
            raise ConfigError(str(exc)) from None
        if preset.name != path.stem:
            raise ConfigError(
                f"{path}: name = {preset.name!r} differs from the file name; "
                f"allowed: {path.stem!r} (the name is the partition key)"
            )
        for key in PRESET_LIMIT_KEYS:
            value, limit = getattr(preset, key), getattr(environment.limits, key)
            if value > limit:
                raise ConfigError(
                    f"{path}: {key} = {value} exceeds the {environment.name} environment's "
                    f"limit; allowed: at most {limit}"
                )
        check_budget(path, preset, environment)
        presets[preset.name] = preset
    return presets


def check_budget(path: Path, preset: Preset, environment: Environment) -> None:
    """Refuse ``preset`` if its estimated peak memory or storage exceeds the budget.

    Each limit may pass while their product does not (a 1024x1024 grid and 100,000
    samples need 800 GiB), so the estimate of the whole build is what is checked.
    """
    cost = estimate_for(preset, default_workers())
    limits = environment.limits
    over = []
    if cost.peak_memory_bytes > limits.memory_mib * MIB:
        over.append(f"limits.memory_mib = {limits.memory_mib}")
    if cost.storage_bytes > limits.storage_gib * GIB:
        over.append(f"limits.storage_gib = {limits.storage_gib}")
    if over:
        raise ConfigError(
            f"{path}: {cost.describe()} exceeds the {environment.name} environment's "
            f"{' and '.join(over)}; allowed: a preset within them (fewer num_samples, a "
            f"smaller grid_size or fewer steps), or raise them in the environment file"
        )
