"""Presets: one YAML file describes a sweep of runs (docs/model.md section 7).

Sample order reproduces MFN 4.1: a counter sim_id starts at 0; the cartesian grid of
the ``sweep`` values (in the order listed) is cycled, each grid point giving
``seeds_per_config`` consecutive runs with seed = base_seed + sim_id, until
``num_samples`` runs exist.

:class:`Preset` and :class:`Expectations` are pydantic dataclasses: their fields are
the file's keys, so the same definition validates a file, lists every problem in it
at once and gives the JSON Schema that editors use (:func:`preset_json_schema`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic import dataclasses as pydantic_dataclasses
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema
from typing_extensions import TypedDict

from mfn_core.errors import ParamError
from mfn_core.features import ALL_FEATURE_NAMES
from mfn_core.params import (
    PARAM_SPECS,
    RULE_ERROR,
    SEED_MAX,
    SimParams,
    describe,
    describe_all,
    did_you_mean,
    integer,
    is_finite_number,
    mapping_check,
    raising,
    refusal,
    required_fields,
    shown,
)
from mfn_core.yaml_files import read_yaml

# A name is a partition key, a file name and a command-line argument: it starts with a
# letter or digit, so no command reads it as an option.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
NAME_RULE = "1 to 64 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"
MAX_SAMPLES = 1_000_000
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
SWEEPABLE: tuple[str, ...] = tuple(name for name in PARAM_SPECS if name not in _NOT_SWEEPABLE)


class PresetError(ParamError):
    """A preset file is unreadable or invalid; the message names file, field and value."""


def _is_control(character: str) -> bool:
    """A character that steers a terminal or the text direction instead of showing."""
    return character not in "\n\t" and unicodedata.category(character) in ("Cc", "Cf")


def _name(value: object) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise refusal("is not a valid preset name", NAME_RULE)
    return value


def _description(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_CHARS:
        raise refusal("is invalid", f"text of at most {MAX_DESCRIPTION_CHARS} characters")
    # Printed by `mfn presets` and shown in the UI: no terminal escapes, no bidi overrides.
    hidden = next((c for c in value if _is_control(c)), None)
    if hidden is not None:
        raise PydanticCustomError(
            RULE_ERROR,
            "description holds the control character U+{code} at position {at}; allowed: "
            "printable text, line breaks and tabs",
            {"code": f"{ord(hidden):04X}", "at": value.index(hidden)},
        )
    return value.strip()


def _column(columns: tuple[str, ...], kind: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if value not in columns:
            raise PydanticCustomError(
                RULE_ERROR,
                "is not {kind} column{near}; allowed: {allowed}",
                {
                    "kind": kind,
                    "near": did_you_mean(str(value), columns),
                    "allowed": ", ".join(columns),
                },
            )
        return str(value)

    return check


def _bounds(value: object) -> tuple[float, float]:
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(is_finite_number(b) for b in value)
        or value[0] > value[1]
    ):
        raise refusal("is invalid", "[low, high], two finite numbers with low <= high")
    return (float(value[0]), float(value[1]))


def _ceiling(value: object) -> float | None:
    if value is None:
        return None
    if not is_finite_number(value) or value <= 0:  # type: ignore[operator]
        raise refusal("is invalid", "a finite number > 0")
    return float(value)  # type: ignore[arg-type]


_Ceiling = Annotated[float, Field(gt=0)]


def _reason(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_REASON_CHARS
        or any(_is_control(c) for c in value)
    ):
        raise refusal(
            "is invalid", f"a non-empty reason of at most {MAX_REASON_CHARS} printable characters"
        )
    return " ".join(value.split())


def _columns_schema(columns: tuple[str, ...]) -> dict[str, Any]:
    """A mapping keyed by ``columns`` as JSON Schema: editors complete the column names.

    Each value's schema is filled in by :func:`preset_json_schema`, as one shared
    definition (pydantic resolves every "$ref" it is given, so it cannot be written here).
    """
    return {
        "type": "object",
        "properties": {column: {} for column in columns},
        "additionalProperties": False,
    }


_RANGE_SCHEMA = {
    "type": "array",
    "prefixItems": [{"type": "number"}, {"type": "number"}],
    "minItems": 2,
    "maxItems": 2,
    "description": "[low, high] in the column's unit (the V_* features in mV): every "
    "run's value lies in this closed range.",
}
_REASON_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REASON_CHARS,
    "description": "Why this feature holds one value across every run of the preset.",
}
_FORBID = ConfigDict(extra="forbid")


def _expect_names(parent: tuple[int | str, ...]) -> Sequence[str]:
    return list(Expectations.__pydantic_fields__)  # type: ignore[attr-defined]


@raising(PresetError, _expect_names)
@pydantic_dataclasses.dataclass(frozen=True, config=_FORBID)
class Expectations:
    """What a preset's build must show: column value ranges and resource ceilings."""

    ranges: Annotated[
        Mapping[
            Annotated[str, BeforeValidator(_column(EXPECTABLE_COLUMNS, "a numeric data set"))],
            Annotated[tuple[float, float], BeforeValidator(_bounds)],
        ],
        BeforeValidator(mapping_check("column -> [low, high]")),
        WithJsonSchema(_columns_schema(EXPECTABLE_COLUMNS)),
        Field(description="Data set column -> [low, high] that every run's value must lie in."),
    ] = field(default_factory=dict)
    max_runtime_s: Annotated[
        _Ceiling | None,
        BeforeValidator(_ceiling),
        Field(description="Longest the build may take. Unit: s."),
    ] = None
    max_peak_memory_mib: Annotated[
        _Ceiling | None,
        BeforeValidator(_ceiling),
        Field(description="Highest peak memory the build may use. Unit: MiB."),
    ] = None
    # Feature columns known to hold one value across every run, each with the reason.
    constant: Annotated[
        Mapping[
            Annotated[str, BeforeValidator(_column(ALL_FEATURE_NAMES, "a feature"))],
            Annotated[str, BeforeValidator(_reason)],
        ],
        BeforeValidator(mapping_check("feature column -> the reason it is constant")),
        WithJsonSchema(_columns_schema(ALL_FEATURE_NAMES)),
        Field(description="Feature column -> why it holds one value across every run."),
    ] = field(default_factory=dict)


def _expectations(value: object) -> object:
    return mapping_check(", ".join(_expect_names(())), (Expectations,))(value)


def _param_type(name: str) -> Any:
    """Parameter ``name``'s annotated type as SimParams declares it (type and ParamSpec)."""
    info = SimParams.__pydantic_fields__[name]  # type: ignore[attr-defined]
    return Annotated[(info.annotation, *info.metadata)]


def _non_empty_list(value: object) -> object:
    if not isinstance(value, list | tuple) or not value:
        raise refusal("is not a non-empty list", "a list of values, e.g. [0.1, 0.2]")
    return list(value)


def _table(name: str, value_type: Callable[[str], Any]) -> Any:
    """A mapping from each sweepable parameter to ``value_type(name)``, as a TypedDict."""
    make: Any = TypedDict  # built from the parameter specs, so not a literal class
    table = make(name, {param: value_type(param) for param in SWEEPABLE}, total=False)
    table.__pydantic_config__ = _FORBID
    return table


_SWEEP_TABLE = _table(
    "Sweep",
    lambda param: Annotated[
        list[_param_type(param)],  # type: ignore[misc]
        BeforeValidator(_non_empty_list),
        Field(min_length=1),
    ],
)
_PARAMS_TABLE = _table("Params", _param_type)


def _in_file_order(
    section: str, pairs: Callable[[Mapping[str, Any]], Any]
) -> Callable[[object, core_schema.ValidatorFunctionWrapHandler], Any]:
    """Validate a section against its table, keeping the file's order of keys."""

    def validate(value: object, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, tuple):  # a Preset's own sweep, passed to a new Preset
            value = dict(value)
        value = mapping_check(f"parameter -> {section}")(value)
        assert isinstance(value, Mapping)
        odd = next((key for key in value if not isinstance(key, str)), None)
        if odd is not None:
            raise refusal(f"has the key {shown(odd)}", f"parameter names: {', '.join(SWEEPABLE)}")
        checked = handler(value)
        return pairs({key: checked[key] for key in value if key in checked})

    return validate


def _sweep_to_pairs(table: Mapping[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    return tuple((name, tuple(values)) for name, values in table.items())


def _section(table: Any, section: str, pairs: Callable[[Mapping[str, Any]], Any]) -> Any:
    return GetPydanticSchema(
        lambda _, handler: core_schema.no_info_wrap_validator_function(
            _in_file_order(section, pairs), handler.generate_schema(table)
        )
    )


def _preset_names(parent: tuple[int | str, ...]) -> Sequence[str]:
    if parent and parent[0] in ("sweep", "params"):
        return SWEEPABLE
    if parent and parent[0] == "expect":
        return _expect_names(parent)
    return [name for name in Preset.__pydantic_fields__ if name != "source"]  # type: ignore[attr-defined]


@raising(PresetError, _preset_names)
@pydantic_dataclasses.dataclass(frozen=True, config=_FORBID)
class Preset:
    """A validated preset: fixed parameters plus a sweep grid expanded in 4.1 order."""

    name: Annotated[
        str,
        BeforeValidator(_name),
        Field(
            description="The preset's name: its file name, partition key and command argument.",
            json_schema_extra={"pattern": f"^{NAME_PATTERN.pattern}$"},
        ),
    ]
    grid_size: Annotated[int, PARAM_SPECS["grid_size"]]
    steps: Annotated[int, PARAM_SPECS["steps"]]
    num_samples: Annotated[int, integer(1, MAX_SAMPLES, "Runs in the data set.", "runs")]
    seeds_per_config: Annotated[
        int, integer(1, MAX_SAMPLES, "Consecutive runs (seeds) per sweep grid point.", "runs")
    ]
    base_seed: Annotated[int, integer(0, SEED_MAX, "Seed of run 0; run k has seed base_seed + k.")]
    description: Annotated[
        str,
        BeforeValidator(_description),
        Field(max_length=MAX_DESCRIPTION_CHARS, description="What the preset is for."),
    ] = ""
    sweep: Annotated[
        tuple[tuple[str, tuple[Any, ...]], ...],
        _section(_SWEEP_TABLE, "list of values", _sweep_to_pairs),
        Field(
            description="Parameter -> list of values; the cartesian grid of these values, "
            "first listed parameter outermost, is cycled through the runs.",
            # The default is the Python value (no pairs); in a file it is no mapping at all.
            json_schema_extra=lambda schema: schema.pop("default", None),
        ),
    ] = ()
    params: Annotated[
        Mapping[str, Any],
        _section(_PARAMS_TABLE, "value", dict),
        Field(description="Parameter -> value, fixed for every run."),
    ] = field(default_factory=dict)
    expect: Annotated[
        Expectations,
        BeforeValidator(_expectations),
        Field(description="What every build of the preset must show (checked after it)."),
    ] = field(default_factory=Expectations)
    source: SkipJsonSchema[Path | None] = None

    @model_validator(mode="after")
    def _fits_together(self) -> Preset:
        swept = {name for name, _ in self.sweep}
        for name in self.params:
            if name in swept:
                raise PydanticCustomError(
                    RULE_ERROR,
                    "params.{name} is also swept; allowed: set it in sweep or params, not both",
                    {"name": name},
                )
        if self.base_seed > SEED_MAX - self.num_samples:
            raise PydanticCustomError(
                RULE_ERROR,
                "base_seed = {value} is invalid; allowed: an integer in [0, {high}] "
                "(the last run's seed must fit in a 64-bit integer)",
                {"value": self.base_seed, "high": SEED_MAX - self.num_samples},
            )
        points = math.prod(len(values) for _, values in self.sweep)
        if points > MAX_SAMPLES:
            raise PydanticCustomError(
                RULE_ERROR,
                "sweep has {points} grid points; allowed: at most {most}",
                {"points": points, "most": MAX_SAMPLES},
            )
        return self

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


@cache
def _adapter() -> TypeAdapter[Preset]:
    return TypeAdapter(Preset)


def preset_json_schema() -> dict[str, Any]:
    """The JSON Schema of a preset file (docs/preset.schema.json), for editors and checks."""
    schema = _adapter().json_schema()
    expect = schema["$defs"]["Expectations"]["properties"]
    for key, definition, value in (
        ("ranges", "Range", _RANGE_SCHEMA),
        ("constant", "Reason", _REASON_SCHEMA),
    ):
        schema["$defs"][definition] = value
        reference = f"#/$defs/{definition}"
        expect[key]["properties"] = {
            column: {"$ref": reference} for column in expect[key]["properties"]
        }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "MFN preset"
    schema["description"] = (
        "One file of configs/presets/: a sweep of simulation runs. "
        "Field units are given in each description."
    )
    return schema


def load_preset(path: str | Path) -> Preset:
    """Read and validate one preset file; raise PresetError naming file, field and value."""
    path = Path(path)
    return parse_preset(read_yaml(path, PresetError), path)


def _describe(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] in ("sweep", "params"):
        return (
            f"{loc[0]}.{loc[1]} is not a model parameter that can be set here"
            f"{did_you_mean(str(loc[1]), SWEEPABLE)}; allowed: {', '.join(SWEEPABLE)} "
            "(grid_size and steps are top-level fields, seeds come from base_seed)"
        )
    if loc and loc[-1] == "[key]":
        return f"{'.'.join(map(str, loc[:-1]))} {error['msg']}"
    return describe(error, _preset_names)


def parse_preset(document: object, path: Path) -> Preset:
    """Validate a parsed YAML document as a preset read from ``path``.

    Every problem of the document is listed in one PresetError.
    """
    keys = ", ".join(_preset_names(()))
    if document is None:
        raise PresetError(
            f"{path}: the file is empty (a half-written or truncated file?); allowed: a "
            f"mapping of {keys}"
        )
    if not isinstance(document, dict):
        raise PresetError(
            f"{path}: the document is a {type(document).__name__}; allowed: a mapping of {keys}"
        )
    # The file's path is the Preset's source, never a key the file may set.
    fields = {key: value for key, value in document.items() if key != "source"}
    source = [f"unknown field 'source'; allowed: {keys}"] if "source" in document else []
    try:
        preset = _adapter().validate_python({**fields, "source": path})
    except ValidationError as exc:
        # Only top-level fields are required: sweep, params and expect are optional.
        required = required_fields(Preset)
        problems = describe_all(exc.errors(), _describe, lambda _: required, source)
        raise PresetError(f"{path}: {problems}") from None
    if source:
        raise PresetError(f"{path}: {source[0]}")
    return preset
