"""Configuration of the code location: the environment file and every preset.

Everything is validated when the code location loads. :class:`Environment` and
:class:`Limits` are pydantic dataclasses whose fields are the file's keys; an invalid
environment file stops the load with one :class:`ConfigError` listing every problem
in it, each naming the file, the field, the value and what is allowed. An invalid
preset file fails only itself: it becomes a :class:`PresetProblem` with that message,
the other presets load, and under its name it stays a partition whose runs fail at
once with the message. ``MFN_ENV`` picks
``configs/environments/<name>.yaml`` (default ``dev``); ``MFN_CONFIG_DIR`` points at
another ``configs`` folder; ``MFN_WAREHOUSE`` and ``MFN_CATALOG`` override where data
is written (relative paths in them are taken from the working folder, those in the
environment file from the project folder).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import fsspec
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic import dataclasses as pydantic_dataclasses

from mfn_core.params import (
    ParamSpec,
    describe,
    describe_all,
    integer,
    is_finite_number,
    mapping_check,
    raising,
    refusal,
    required_fields,
)
from mfn_core.presets import NAME_PATTERN, NAME_RULE, Preset, PresetError, load_preset
from mfn_core.resources import GIB, MIB, estimate_for
from mfn_core.sweep import default_workers
from mfn_core.yaml_files import read_yaml
from mfn_pipeline.lib.catalog import inspect_catalog
from mfn_pipeline.lib.locations import folder_refusal, glob_refusal, nesting_refusal

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "configs"
ENV_VAR, CONFIG_DIR_VAR = "MFN_ENV", "MFN_CONFIG_DIR"
WAREHOUSE_VAR, CATALOG_VAR = "MFN_WAREHOUSE", "MFN_CATALOG"
DEFAULT_ENV = "dev"
EXECUTORS = ("in_process", "multiprocess")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PRESET_LIMIT_KEYS = ("grid_size", "steps", "num_samples")
PRESET_SUFFIX = ".yaml"

logger = logging.getLogger(__name__)

Executor = Literal["in_process", "multiprocess"]


class ConfigError(ValueError):
    """A configuration file is invalid; the message names file, field, value and what is allowed."""


def _text(value: object) -> object:
    if isinstance(value, Path):  # an Environment's own catalog, passed to a new one
        return value
    if not isinstance(value, str) or not value:
        raise refusal("is invalid", "a non-empty string")
    return value


_WHOLE_SECONDS = integer(1, None, "")


def _seconds(value: object, info: ValidationInfo) -> object:
    # A file sets whole seconds; code (a test forcing a timeout) may set a fraction.
    if info.context and info.context.get("file"):
        return _WHOLE_SECONDS.check(value)
    if not is_finite_number(value) or value <= 0:  # type: ignore[operator]
        raise refusal("is invalid", "a number > 0")
    return value


def _field_names(parent: tuple[int | str, ...]) -> Sequence[str]:
    """The fields an environment file may set at ``parent`` (for "did you mean")."""
    if parent and parent[0] == "limits":
        return list(Limits.__pydantic_fields__)  # type: ignore[attr-defined]
    return [name for name in Environment.__pydantic_fields__ if name != "name"]  # type: ignore[attr-defined]


def _required(parent: tuple[int | str, ...]) -> Sequence[str]:
    if parent:
        return required_fields(Limits)
    return [name for name in required_fields(Environment) if name != "name"]


_FORBID = ConfigDict(extra="forbid")


@raising(ConfigError, _field_names)
@pydantic_dataclasses.dataclass(frozen=True, config=_FORBID)
class Limits:
    """Largest preset the environment accepts, and how long one sweep may run.

    ``memory_mib`` and ``storage_gib`` bound a preset's estimated peak memory and
    stored bytes (mfn_core.resources), checked when the preset loads.
    """

    grid_size: Annotated[int, integer(1, None, "Largest grid_size of a preset.", "cells")]
    steps: Annotated[int, integer(1, None, "Most steps of a preset.", "steps")]
    num_samples: Annotated[int, integer(1, None, "Most runs of a preset.", "runs")]
    wall_clock_s: Annotated[
        int | float,
        BeforeValidator(_seconds),
        Field(gt=0, description="A sweep still running after this is stopped. Unit: s."),
    ]
    memory_mib: Annotated[
        int, integer(1, None, "Budget of a build's estimated peak resident memory.", "MiB")
    ]
    storage_gib: Annotated[int, integer(1, None, "Budget of the bytes a build stores.", "GiB")]


@raising(ConfigError, _field_names)
@pydantic_dataclasses.dataclass(frozen=True, config=_FORBID)
class Environment:
    """Where data lives and how builds execute, from ``configs/environments/<name>.yaml``."""

    name: Annotated[str, Field(description="The environment's name: its file name, MFN_ENV.")]
    warehouse: Annotated[
        str,
        BeforeValidator(_text),
        Field(
            min_length=1, description="Where tables are written: a local folder or an fsspec URL."
        ),
    ]
    catalog: Annotated[
        Path,
        BeforeValidator(_text),
        Field(description="The DuckDB catalog file of views over the warehouse."),
    ]
    executor: Annotated[
        Executor,
        ParamSpec(str, choices=EXECUTORS, description="How a build's steps run."),
    ]
    max_concurrent: Annotated[
        int, integer(1, None, "Steps at once with the multiprocess executor.", "steps")
    ]
    log_level: Annotated[
        str, ParamSpec(str, choices=LOG_LEVELS, description="Level of the pipeline's logs.")
    ]
    limits: Annotated[
        Limits,
        BeforeValidator(mapping_check("a mapping of limits", (Limits,))),
        Field(description="The largest preset and build the environment accepts."),
    ]


@dataclass(frozen=True)
class PresetProblem:
    """A preset file that did not load, and why (one line naming the file).

    ``partition`` is the key the file would have had: its runs fail with the message,
    so the nightly schedule and the UI show the problem where the preset would be. It
    is None when the file cannot be a partition (an invalid file name, or another
    file already holds the name).
    """

    path: Path
    message: str
    partition: str | None


@dataclass(frozen=True)
class Settings:
    """The validated configuration: one environment, the presets keyed by name, and
    the preset files that failed to load."""

    environment: Environment
    presets: Mapping[str, Preset]
    problems: tuple[PresetProblem, ...] = ()
    config_dir: Path = DEFAULT_CONFIG_DIR  # the folder these were read from

    @property
    def partitions(self) -> list[str]:
        """Every partition key: the presets that loaded and the files that failed."""
        return sorted({*self.presets, *(p.partition for p in self.problems if p.partition)})

    def problem_of(self, partition: str) -> PresetProblem | None:
        """Why ``partition`` has no preset, or None if it has one (or does not exist)."""
        return next((p for p in self.problems if p.partition == partition), None)


def load_settings(config_dir: Path | None = None, env_name: str | None = None) -> Settings:
    """Read and validate the environment file and every preset, or raise ConfigError."""
    config_dir = Path(config_dir or os.environ.get(CONFIG_DIR_VAR) or DEFAULT_CONFIG_DIR)
    env_name = env_name or os.environ.get(ENV_VAR) or DEFAULT_ENV
    if not NAME_PATTERN.fullmatch(env_name):
        raise ConfigError(
            f"{ENV_VAR} = {env_name!r} is not an environment name; "
            "allowed: a-z, 0-9, '_' and '-', e.g. dev or prod"
        )
    environment = _load_environment(config_dir / "environments" / f"{env_name}.yaml", env_name)
    presets, problems = _load_presets(config_dir / "presets", environment)
    return Settings(environment, presets, problems, config_dir)


def _read_yaml(path: Path) -> Any:
    """The environment file, read as safely as a preset (the same hardened reader)."""
    if not path.exists() and not path.is_symlink():
        folder = path.parent
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ConfigError(
            f"{path}: no such file; allowed: one of {', '.join(known) or '(none found)'}"
        )
    return read_yaml(path, ConfigError)


def _load_environment(path: Path, name: str) -> Environment:
    """The environment file at ``path`` validated as a whole: every problem in one message."""
    document = _read_yaml(path)
    keys = ", ".join(_field_names(()))
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: the document is a {type(document).__name__}; allowed: a mapping of {keys}"
        )
    # The name comes from the file's name, never from its content.
    fields = {key: value for key, value in document.items() if key != "name"}
    named = [f"unknown field 'name'; allowed: {keys}"] if "name" in document else []
    try:
        environment = TypeAdapter(Environment).validate_python(
            {**fields, "name": name}, context={"file": path}
        )
    except ValidationError as exc:
        problems = describe_all(
            exc.errors(), lambda error: describe(error, _field_names), _required, named
        )
        raise ConfigError(f"{path}: {problems}") from None
    if named:
        raise ConfigError(f"{path}: {named[0]}")
    # A location from the environment is the user's, relative to where they stand; one
    # from the file is the project's, relative to the project folder.
    warehouse, warehouse_base = _location(path, WAREHOUSE_VAR, environment.warehouse, "warehouse")
    catalog, catalog_base = _location(path, CATALOG_VAR, str(environment.catalog), "catalog")
    if "://" in warehouse:
        _check_url(path, warehouse)
    else:
        warehouse = str(_local(warehouse, warehouse_base))
    catalog_path = _local(catalog, catalog_base)
    _check_locations(path, warehouse, catalog_path)
    return dataclasses.replace(environment, warehouse=warehouse, catalog=catalog_path)


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
        (WAREHOUSE_VAR, folder_refusal(warehouse)),
        (CATALOG_VAR, glob_refusal("catalog", str(catalog))),
        (CATALOG_VAR, inspect_catalog(catalog).refusal()),
        (CATALOG_VAR, nesting_refusal(warehouse, catalog)),
    ):
        if problem:
            raise ConfigError(f"{path} (or ${variable}): {problem}")


def _location(path: Path, variable: str, value: str, field: str) -> tuple[str, Path]:
    """A location and the folder a relative one is taken from: $variable's, else the file's."""
    override = os.environ.get(variable)
    if override is None:
        return value, PROJECT_ROOT
    if not override.strip():
        raise ConfigError(
            f"${variable} is set but empty; allowed: a path (or URL), or unset it to use "
            f"{field} from {path}"
        )
    return override, Path.cwd()


def _local(location: str, base: Path = PROJECT_ROOT) -> Path:
    """A local path, relative ones taken from ``base``."""
    path = Path(location).expanduser()
    return path if path.is_absolute() else base / path


def _load_presets(
    folder: Path, environment: Environment
) -> tuple[dict[str, Preset], tuple[PresetProblem, ...]]:
    """Every preset in ``folder`` that loads, and a problem for each file that does not."""
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    candidates = [path for path in entries if not _ignored(path.name)]
    claimed = {path.stem for path in candidates if path.suffix == PRESET_SUFFIX}
    presets: dict[str, Preset] = {}
    problems: list[PresetProblem] = []
    for path in candidates:
        if path.suffix.lower() not in (PRESET_SUFFIX, ".yml"):
            continue  # a README or notes beside the presets
        valid_name = NAME_PATTERN.fullmatch(path.stem) is not None
        if path.suffix != PRESET_SUFFIX:
            # A preset under another spelling must not be silently skipped: say so, and
            # fail its partition unless the proper file holds that name.
            taken = path.stem in claimed
            problems.append(
                PresetProblem(
                    path,
                    f"{path}: preset files end in {PRESET_SUFFIX}, so this file is not read; "
                    + (
                        f"{path.stem}{PRESET_SUFFIX} exists too and is the one read: "
                        "delete this file or merge it into that one"
                        if taken
                        else f"rename it to {path.stem}{PRESET_SUFFIX}"
                    ),
                    path.stem if valid_name and not taken else None,
                )
            )
            continue
        if not valid_name:
            problems.append(
                PresetProblem(
                    path,
                    f"{path}: file name {path.stem!r} is not a preset name; allowed: {NAME_RULE}",
                    None,
                )
            )
            continue
        try:
            preset = load_preset(path)
            check_preset(path, preset, environment)
        except (PresetError, ConfigError) as exc:
            problems.append(PresetProblem(path, str(exc), path.stem))
            continue
        presets[preset.name] = preset
    if not presets and not problems:
        raise ConfigError(
            f"{folder}: no preset files; allowed: one or more <name>{PRESET_SUFFIX} files"
        )
    for problem in problems:
        logger.info("preset not loaded: %s", problem.message)
    return presets, tuple(problems)


def _ignored(name: str) -> bool:
    """Files editors and tools leave beside the presets, never presets themselves.

    Hidden files (Emacs lock links ``.#small.yaml``, Vim swap files, macOS ``._*``),
    backups ``small.yaml~`` and autosaves ``#small.yaml#``.
    """
    return name.startswith(".") or name.endswith("~") or (name.startswith("#") and len(name) > 1)


def check_preset(path: Path, preset: Preset, environment: Environment) -> None:
    """Refuse a loaded preset that does not fit its file name or the environment.

    One ConfigError naming the file; the caller turns it into this preset's problem
    alone. Each check of a preset against the environment belongs here.
    """
    problems = []
    if preset.name != path.stem:
        problems.append(
            f"name = {preset.name!r} differs from the file name; "
            f"allowed: {path.stem!r} (the name is the partition key)"
        )
    for key in PRESET_LIMIT_KEYS:
        value, limit = getattr(preset, key), getattr(environment.limits, key)
        if value > limit:
            problems.append(
                f"{key} = {value} exceeds the {environment.name} environment's limit; "
                f"allowed: at most {limit}"
            )
    if len(problems) > 1:
        listed = " ".join(f"{k}) {problem}" for k, problem in enumerate(problems, 1))
        raise ConfigError(f"{path}: {len(problems)} problems: {listed}")
    if problems:
        raise ConfigError(f"{path}: {problems[0]}")
    check_budget(path, preset, environment)


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
