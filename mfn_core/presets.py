"""Presets: one YAML file describes a sweep of runs (DESIGN.md, Configuration).

Sample order reproduces MFN 4.1: a counter sim_id starts at 0; the cartesian grid of
the ``sweep`` values (in the order listed) is cycled, each grid point giving
``seeds_per_config`` consecutive runs with seed = base_seed + sim_id, until
``num_samples`` runs exist.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfn_core.errors import ParamError
from mfn_core.features import ALL_FEATURE_NAMES
from mfn_core.params import (
    PARAM_SPECS,
    SEED_MAX,
    SimParams,
    check_value,
    is_finite_number,
    shown,
    unknown_names,
)
from mfn_core.yaml_files import read_yaml

# A name is a partition key, a file name and a command-line argument: it starts with a
# letter or digit, so no command reads it as an option.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_RULE = "1 to 64 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"
MAX_SAMPLES = 1_000_000
REQUIRED_KEYS = ("name", "grid_size", "steps", "num_samples", "seeds_per_config", "base_seed")
OPTIONAL_KEYS = ("description", "sweep", "params", "expect")
EXPECT_KEYS = ("ranges", "constant", "max_runtime_s", "max_peak_memory_mib")
MAX_REASON_CHARS = 500
MAX_DESCRIPTION_CHARS = 2000
# Columns of the data set whose values an expect: block may bound.
EXPECTABLE_COLUMNS: tuple[str, ...] = (
    "growth_events",
    "turing_activations",
    "clamping_events",
    "lyapunov",
    "duration_s",
    *ALL_FEATURE_NAMES,
)
# Set at the top level (grid_size, steps) or by the sample order (seed), never in
# sweep: or params:.
_NOT_SWEEPABLE = ("grid_size", "steps", "seed")


class PresetError(ParamError):
    """A preset file is unreadable or invalid; the message names file, field and value."""


@dataclass(frozen=True)
class Expectations:
    """What a preset's build must show: column value ranges and resource ceilings."""

    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    max_runtime_s: float | None = None
    max_peak_memory_mib: float | None = None
    # Feature columns known to hold one value across every run, each with the reason.
    constant: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """A validated preset: fixed parameters plus a sweep grid expanded in 4.1 order."""

    name: str
    description: str
    grid_size: int
    steps: int
    num_samples: int
    seeds_per_config: int
    base_seed: int
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    expect: Expectations = field(default_factory=Expectations)
    source: Path | None = None

    def grid_points(self) -> list[dict[str, Any]]:
        """The sweep's cartesian grid, first listed parameter outermost."""
        names = [name for name, _ in self.sweep]
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(values for _, values in self.sweep))
        ]

    def runs(self) -> Iterator[tuple[int, SimParams]]:
        """(sim_id, parameters) of every run, in the 4.1 sample order."""
        points = itertools.cycle(self.grid_points())
        sim_id = 0
        while sim_id < self.num_samples:
            point = next(points)
            for _ in range(self.seeds_per_config):
                if sim_id == self.num_samples:
                    return
                yield (
                    sim_id,
                    SimParams(
                        grid_size=self.grid_size,
                        steps=self.steps,
                        seed=self.base_seed + sim_id,
                        **{**self.params, **point},
                    ),
                )
                sim_id += 1

    @property
    def cell_steps(self) -> int:
        return self.grid_size * self.grid_size * self.steps * self.num_samples

    @property
    def config_hash(self) -> str:
        """SHA-256 of everything that determines the runs (not the name, text or expect:)."""
        canonical = {
            "grid_size": self.grid_size,
            "steps": self.steps,
            "num_samples": self.num_samples,
            "seeds_per_config": self.seeds_per_config,
            "base_seed": self.base_seed,
            "sweep": [[name, list(values)] for name, values in self.sweep],
            "params": dict(sorted(self.params.items())),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def load_preset(path: str | Path) -> Preset:
    """Read and validate one preset file; raise PresetError naming file, field and value."""
    path = Path(path)
    return parse_preset(read_yaml(path, PresetError), path)


def parse_preset(document: object, path: Path) -> Preset:
    """Validate a parsed YAML document as a preset read from ``path``."""
    if document is None:
        raise PresetError(
            f"{path}: the file is empty (a half-written or truncated file?); allowed: a "
            f"mapping of {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    if not isinstance(document, dict):
        raise PresetError(
            f"{path}: the document is a {type(document).__name__}; allowed: a mapping of "
            f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}"
        )
    _reject_unknown(document, REQUIRED_KEYS + OPTIONAL_KEYS, path, "")
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise PresetError(
            f"{path}: missing required field {', '.join(missing)}; "
            f"required: {', '.join(REQUIRED_KEYS)}"
        )

    name = document["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PresetError(
            f"{path}: name = {shown(name)} is not a valid preset name; allowed: {NAME_RULE}"
        )
    description = document.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise PresetError(
            f"{path}: description = {shown(description)} is invalid; allowed: text of at "
            f"most {MAX_DESCRIPTION_CHARS} characters"
        )
    # Printed by `mfn presets` and shown in the UI: no terminal escapes, no bidi overrides.
    hidden = next((c for c in description if _is_control(c)), None)
    if hidden is not None:
        raise PresetError(
            f"{path}: description holds the control character U+{ord(hidden):04X} at "
            f"position {description.index(hidden)}; allowed: printable text, line breaks "
            "and tabs"
        )

    def integer(key: str, low: int, high: int) -> int:
        value = document[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PresetError(
                f"{path}: {key} = {shown(value)} is invalid; allowed: an integer in [{low}, {high}]"
            )
        return value

    grid_size = _checked(path, "grid_size", document["grid_size"], "grid_size")
    steps = _checked(path, "steps", document["steps"], "steps")
    num_samples = integer("num_samples", 1, MAX_SAMPLES)
    seeds_per_config = integer("seeds_per_config", 1, MAX_SAMPLES)
    base_seed = integer("base_seed", 0, SEED_MAX - num_samples)

    sweep = _parse_sweep(document.get("sweep") or {}, path)
    params = _parse_params(document.get("params") or {}, path, {key for key, _ in sweep})
    expect = _parse_expect(document.get("expect") or {}, path)
    return Preset(
        name=name,
        description=description.strip(),
        grid_size=grid_size,
        steps=steps,
        num_samples=num_samples,
        seeds_per_config=seeds_per_config,
        base_seed=base_seed,
        sweep=sweep,
        params=params,
        expect=expect,
        source=path,
    )


def _is_control(character: str) -> bool:
    """A character that steers a terminal or the text direction instead of showing."""
    return character not in "\n\t" and unicodedata.category(character) in ("Cc", "Cf")


def _checked(path: Path, param: str, value: object, label: str) -> Any:
    try:
        return check_value(param, value, f"{path}: {label}")
    except ParamError as exc:
        raise PresetError(str(exc)) from None


def _sweepable(key: object, path: Path, section: str) -> str:
    if not isinstance(key, str) or key not in PARAM_SPECS or key in _NOT_SWEEPABLE:
        allowed = [name for name in PARAM_SPECS if name not in _NOT_SWEEPABLE]
        raise PresetError(
            f"{path}: {section}.{key} is not a model parameter that can be set here "
            f"({unknown_names([key], allowed)}); allowed: {', '.join(allowed)} "
            "(grid_size and steps are top-level fields, seeds come from base_seed)"
        )
    return key


def _parse_sweep(section: object, path: Path) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(section, dict):
        raise PresetError(
            f"{path}: sweep = {shown(section)} is not a mapping; "
            "allowed: parameter -> list of values"
        )
    sweep = []
    for key, values in section.items():
        name = _sweepable(key, path, "sweep")
        if not isinstance(values, list) or not values:
            raise PresetError(
                f"{path}: sweep.{name} = {shown(values)} is not a non-empty list; "
                "allowed: a list of values, e.g. [0.1, 0.2]"
            )
        checked = tuple(
            _checked(path, name, value, f"sweep.{name}[{k}]") for k, value in enumerate(values)
        )
        sweep.append((name, checked))
    points = math.prod(len(values) for _, values in sweep)
    if points > MAX_SAMPLES:
        raise PresetError(f"{path}: sweep has {points} grid points; allowed: at most {MAX_SAMPLES}")
    return tuple(sweep)


def _parse_params(section: object, path: Path, swept: set[str]) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise PresetError(
            f"{path}: params = {shown(section)} is not a mapping; allowed: parameter -> value"
        )
    params = {}
    for key, value in section.items():
        name = _sweepable(key, path, "params")
        if name in swept:
            raise PresetError(
                f"{path}: params.{name} is also swept; allowed: set it in sweep or params, not both"
            )
        params[name] = _checked(path, name, value, f"params.{name}")
    return params


def _reject_unknown(
    section: Mapping[object, object], allowed: tuple[str, ...], path: Path, prefix: str
) -> None:
    unknown = [key for key in section if key not in allowed]
    if unknown:
        raise PresetError(
            f"{path}: unknown field {prefix}{unknown_names(unknown, allowed)}; "
            f"allowed: {', '.join(allowed)}"
        )


def _parse_expect(section: object, path: Path) -> Expectations:
    if not isinstance(section, dict):
        raise PresetError(
            f"{path}: expect = {shown(section)} is not a mapping; allowed: {', '.join(EXPECT_KEYS)}"
        )
    _reject_unknown(section, EXPECT_KEYS, path, "expect.")
    ranges_section = section.get("ranges") or {}
    if not isinstance(ranges_section, dict):
        raise PresetError(
            f"{path}: expect.ranges = {shown(ranges_section)} is not a mapping; "
            "allowed: column -> [low, high]"
        )
    ranges = {}
    for column, bounds in ranges_section.items():
        _known_column(path, "ranges", column, "a data set", EXPECTABLE_COLUMNS)
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(is_finite_number(b) for b in bounds)
            or bounds[0] > bounds[1]
        ):
            raise PresetError(
                f"{path}: expect.ranges.{column} = {shown(bounds)} is invalid; "
                "allowed: [low, high], two finite numbers with low <= high"
            )
        ranges[column] = (float(bounds[0]), float(bounds[1]))
    ceilings = {}
    for key in ("max_runtime_s", "max_peak_memory_mib"):
        value = section.get(key)
        if value is not None and (not is_finite_number(value) or value <= 0):
            raise PresetError(
                f"{path}: expect.{key} = {shown(value)} is invalid; allowed: a finite number > 0"
            )
        ceilings[key] = None if value is None else float(value)
    return Expectations(
        ranges=ranges, constant=_parse_constant(section.get("constant") or {}, path), **ceilings
    )


def _known_column(
    path: Path, section: str, column: object, kind: str, columns: tuple[str, ...]
) -> None:
    """Refuse an entry of expect.``section`` that names no column of ``columns``."""
    if column not in columns:
        raise PresetError(
            f"{path}: expect.{section}.{column} is not {kind} column "
            f"({unknown_names([column], columns)}); allowed: {', '.join(columns)}"
        )


def _parse_constant(section: object, path: Path) -> dict[str, str]:
    """expect.constant: feature column -> why it holds one value across the preset."""
    if not isinstance(section, dict):
        raise PresetError(
            f"{path}: expect.constant = {shown(section)} is not a mapping; "
            "allowed: feature column -> the reason it is constant"
        )
    constant = {}
    for column, reason in section.items():
        _known_column(path, "constant", column, "a feature", ALL_FEATURE_NAMES)
        if (
            not isinstance(reason, str)
            or not reason.strip()
            or len(reason) > MAX_REASON_CHARS
            or any(_is_control(c) for c in reason)
        ):
            raise PresetError(
                f"{path}: expect.constant.{column} = {shown(reason)} is invalid; allowed: a "
                f"non-empty reason of at most {MAX_REASON_CHARS} printable characters"
            )
        constant[column] = " ".join(reason.split())
    return constant
