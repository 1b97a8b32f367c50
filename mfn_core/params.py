"""Model parameters: each one's name, default, valid range, unit and meaning, spelled once.

:class:`SimParams` is a pydantic dataclass; every field carries a :class:`ParamSpec`
that both checks a value (with the project's one-line messages) and describes it
in the JSON Schema. :data:`PARAM_SPECS` is the same specs keyed by name, for the
data contract and the table layouts.
"""

from __future__ import annotations

import difflib
import functools
import math
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic import dataclasses as pydantic_dataclasses
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import ErrorDetails, PydanticCustomError, core_schema

from mfn_core.errors import ParamError

Boundary: TypeAlias = Literal["periodic", "neumann", "dirichlet"]
BOUNDARIES: tuple[Boundary, ...] = ("periodic", "neumann", "dirichlet")
SEED_MAX = 2**63 - 1  # seeds are stored as Int64 columns
_MISSING = object()
# Error types of the project's checks: describe() shows a VALUE_ERROR as "<path> =
# <value> <problem>" and a RULE_ERROR (a problem of several fields) as its message.
VALUE_ERROR, RULE_ERROR = "mfn_value", "mfn_rule"
_MISSING_TYPES = ("missing", "missing_keyword_only_argument", "missing_argument")
T = TypeVar("T")


@dataclass(frozen=True)
class ParamSpec:
    """How one field is checked and described: its kind, inclusive bounds or choices,
    unit and meaning.

    As pydantic metadata (``Annotated[int, ParamSpec(...)]``) it validates with the
    project's messages and adds the bounds, choices, unit and description to the
    JSON Schema.
    """

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    description: str = ""

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.high is None:
            return f"an integer >= {self.low}" if self.kind is int else f"a number >= {self.low:g}"
        if self.kind is int:
            return f"an integer in [{self.low}, {self.high}]"
        return f"a number in [{self.low:g}, {self.high:g}]"

    def problem(self, value: object) -> tuple[str, Any]:
        """What is wrong with ``value`` ("" if nothing) and the value as this kind."""
        if self.kind is bool:
            return ("" if isinstance(value, bool) else "is not a boolean"), value
        if self.kind is str:
            valid = isinstance(value, str) and value in self.choices
            return ("" if valid else "is not a known choice"), value
        # bool is an int subclass; True as a grid size is a mistake, not a 1.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "is not a number", value
        if self.kind is int:
            if isinstance(value, float):
                if not value.is_integer():
                    return "is not an integer", value
                value = int(value)
        elif not is_finite_number(value):
            return "is not finite", value
        else:
            value = float(value)
        assert self.low is not None
        inside = self.low <= value and (self.high is None or value <= self.high)
        return ("" if inside else "is out of range"), value

    def check(self, value: object) -> Any:
        """``value`` as this field's Python type, or a pydantic error naming what is allowed."""
        problem, converted = self.problem(value)
        if problem:
            raise refusal(problem, self.allowed())
        return converted

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # The check runs first and gives the message; the typed inner schema then
        # passes what it returns and states the bounds in the JSON Schema.
        inner: core_schema.CoreSchema
        if self.choices:
            inner = core_schema.literal_schema(list(self.choices))
        elif self.kind is bool:
            inner = core_schema.bool_schema(strict=True)
        elif self.kind is int:
            high = None if self.high is None else int(self.high)
            inner = core_schema.int_schema(ge=int(self.low or 0), le=high)
        else:
            inner = core_schema.float_schema(ge=self.low, le=self.high, allow_inf_nan=False)
        return core_schema.no_info_before_validator_function(self.check, inner)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if self.description:
            unit = f" Unit: {self.unit}." if self.unit else ""
            json_schema["description"] = f"{self.description}{unit}"
        return json_schema


def refusal(problem: str, allowed: str) -> PydanticCustomError:
    """A field's problem for pydantic to report: "<path> = <value> <problem>; allowed: ..."."""
    return PydanticCustomError(
        VALUE_ERROR, "{problem}; allowed: {allowed}", {"problem": problem, "allowed": allowed}
    )


def mapping_check(allowed: str, passes: tuple[type, ...] = ()) -> Callable[[object], object]:
    """A section of a file that must be a mapping (or one of ``passes``, already built);
    an empty one (``sweep:`` alone) has no entries."""

    def check(value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, (Mapping, *passes)):
            raise refusal("is not a mapping", allowed)
        return value

    return check


def integer(low: int, high: int | None, description: str, unit: str = "") -> ParamSpec:
    return ParamSpec(int, low, high, unit=unit, description=description)


def number(low: float, high: float, description: str, unit: str = "") -> ParamSpec:
    return ParamSpec(float, low, high, unit=unit, description=description)


def boolean(description: str) -> ParamSpec:
    return ParamSpec(bool, description=description)


class _ShortRepr(reprlib.Repr):
    """reprlib's abbreviation, and huge integers by size (repr() refuses > 4300 digits)."""

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 200:
            return f"<an integer of about {int((x.bit_length() - 1) * math.log10(2)) + 1} digits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = _SHORT.maxtuple = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def is_finite_number(value: object) -> bool:
    """A real int or float (never a bool) that is neither NaN nor infinite (nor too big
    for a float, where math.isfinite raises OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: object) -> str:
    """A value as a message shows it: repr() cut to a few dozen characters, one line."""
    return _SHORT.repr(value)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name nearest to ``name``, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_names(names: Iterable[object], known: Iterable[str]) -> str:
    """A message listing unknown names, with the nearest known name for each."""
    known = list(known)
    return ", ".join(shown(name) + did_you_mean(name, known) for name in sorted(map(str, names)))


def error_path(loc: Sequence[int | str]) -> str:
    """A pydantic location as the file spells it: ``sweep.alpha[1]``, ``expect.ranges.V_min``."""
    path = ""
    for part in loc:
        if part == "[key]":  # the key itself was refused: the path already names it
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe(
    error: ErrorDetails,
    known: Callable[[tuple[int | str, ...]], Sequence[str]],
    unknown: str = "unknown field",
) -> str:
    """One problem of a pydantic ValidationError as a message part.

    ``known(parent)`` lists the names allowed where an unknown one was given, for the
    "did you mean" hint; ``unknown`` is how such a name is introduced.
    """
    loc = tuple(error["loc"])
    path = error_path(loc)
    kind = error["type"]
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        names = known(loc[:-1])
        where = error_path(loc[:-1])
        return (
            f"{unknown} {unknown_names([loc[-1]], names)}{' in ' + where if where else ''}; "
            f"allowed: {', '.join(names)}"
        )
    if kind == VALUE_ERROR:
        return f"{path} = {shown(error['input'])} {error['msg']}"
    if not loc or kind == RULE_ERROR:
        return error["msg"]
    return f"{path} = {shown(error['input'])} is invalid; allowed: {error['msg'].lower()}"


def required_fields(cls: type) -> list[str]:
    """The fields of a pydantic dataclass that have no default."""
    fields_ = cls.__pydantic_fields__  # type: ignore[attr-defined]
    return [name for name, info in fields_.items() if info.is_required()]


def describe_all(
    errors: Sequence[ErrorDetails],
    describe_one: Callable[[ErrorDetails], str],
    required: Callable[[tuple[int | str, ...]], Sequence[str]] = lambda parent: (),
    more_problems: Sequence[str] = (),
    limit: int = 100,
) -> str:
    """Every problem of a ValidationError (and ``more_problems``) as one line: the first
    ``limit`` of them and a count.

    The fields missing from one mapping are named together, as one problem, with the
    fields ``required(parent)`` there.
    """
    missing: dict[tuple[int | str, ...], list[str]] = {}
    for error in errors:
        if error["type"] in _MISSING_TYPES:
            missing.setdefault(tuple(error["loc"][:-1]), []).append(error_path(error["loc"]))
    problems = [
        f"missing required field {', '.join(paths)}; required: {', '.join(required(parent))}"
        for parent, paths in missing.items()
    ]
    problems += [describe_one(error) for error in errors if error["type"] not in _MISSING_TYPES]
    problems += more_problems
    if len(problems) == 1:
        return problems[0]
    listed = [f"{k}) {problem}" for k, problem in enumerate(problems[:limit], 1)]
    more = f" ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problems: " + " ".join(listed) + more


def raising(
    error: type[Exception],
    known: Callable[[tuple[int | str, ...]], Sequence[str]],
    unknown: str = "unknown field",
) -> Callable[[T], T]:
    """Make a pydantic dataclass raise ``error`` with the project's message.

    Pydantic's generated ``__init__`` raises ValidationError (a ValueError the callers
    of this package do not expect); this wraps it, keeping validation in one place.
    A missing required argument stays a TypeError, as for any Python call.
    """

    def decorate(cls: T) -> T:
        init = cls.__init__  # type: ignore[misc]

        @functools.wraps(init)
        def validated_init(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                details = exc.errors()
                missing = [str(d["loc"][-1]) for d in details if d["type"] in _MISSING_TYPES]
                if missing:
                    raise TypeError(
                        f"{exc.title}() missing required keyword argument "
                        f"{', '.join(map(repr, missing))}"
                    ) from None
                raise error(describe_all(details, lambda d: describe(d, known, unknown))) from None

        cls.__init__ = validated_init  # type: ignore[misc]
        return cls

    return decorate


def _param_names(parent: tuple[int | str, ...]) -> Sequence[str]:
    return list(PARAM_SPECS)


@raising(ParamError, _param_names, "unknown parameter")
@pydantic_dataclasses.dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class SimParams:
    """Validated, immutable parameters of one simulation run.

    Every value is checked on construction; a wrong type, an out-of-range value or
    an unknown name raises :class:`ParamError` naming the parameter, the value and
    the allowed range.
    """

    grid_size: Annotated[int, integer(4, 1024, "Side of the square grid.", "cells")] = 64
    steps: Annotated[int, integer(1, 100_000, "Time steps of one run.", "steps")] = 100
    alpha: Annotated[
        float, number(0.05, 0.24, "Diffusion coefficient of the membrane potential V.", "1/step")
    ] = 0.18
    d_activator: Annotated[
        float, number(0.01, 0.24, "Diffusion coefficient of the activator.", "1/step")
    ] = 0.10
    d_inhibitor: Annotated[
        float, number(0.01, 0.24, "Diffusion coefficient of the inhibitor.", "1/step")
    ] = 0.05
    r_activator: Annotated[
        float, number(0.001, 0.1, "Reaction rate of the activator.", "1/step")
    ] = 0.01
    r_inhibitor: Annotated[
        float, number(0.001, 0.1, "Reaction rate of the inhibitor.", "1/step")
    ] = 0.02
    turing_enabled: Annotated[
        bool, boolean("Whether the activator crossing its threshold raises V (Turing growth).")
    ] = True
    turing_threshold: Annotated[
        float,
        number(
            0.5, 0.95, "Activator level above which a cell counts as active.", "activator units"
        ),
    ] = 0.75
    spike_probability: Annotated[
        float, number(0.0, 1.0, "Chance per step of a spike at one random cell.", "1/step")
    ] = 0.25
    quantum_jitter: Annotated[
        bool, boolean("Whether Gaussian noise is added to V every step (clamped afterwards).")
    ] = False
    jitter_var: Annotated[
        float, number(0.0, 0.01, "Variance of the noise on V when quantum_jitter is on.", "V^2")
    ] = 0.0005
    boundary: Annotated[
        Boundary,
        ParamSpec(str, choices=BOUNDARIES, description="How the grid's edges are treated."),
    ] = "periodic"
    seed: Annotated[int, integer(0, SEED_MAX, "Seed of the run's random number generator.")]

    def verify(self) -> None:
        """Raise ParamError unless every field still holds a valid value of its exact type.

        The constructor checks its arguments, but a frozen dataclass can still be
        changed with ``object.__setattr__`` or built without ``__init__`` (copy, a
        crafted pickle); the compiled kernels index arrays by these values without
        bounds checks, so they call this first.
        """
        for name, spec in PARAM_SPECS.items():
            # From the instance: the class holds each field's default.
            value = self.__dict__.get(name, _MISSING)
            if value is _MISSING:
                raise ParamError(f"SimParams.{name} is not set; allowed: {spec.allowed()}")
            label = f"SimParams.{name}"
            # Exact types: the constructor stores int, float, bool or str, and a kernel
            # handed another type would compile a new specialisation or misbehave.
            if type(value) is not spec.kind:
                raise ParamError(
                    f"{label} = {shown(value)} is of type {type(value).__name__}; "
                    f"allowed: {spec.allowed()}"
                )
            problem, _ = spec.problem(value)
            if problem:
                raise ParamError(f"{label} = {shown(value)} {problem}; allowed: {spec.allowed()}")

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        # Unpickling bypasses __init__: check what it restores the same way.
        if not isinstance(state, Mapping) or set(state) - set(PARAM_SPECS):
            raise ParamError(
                f"SimParams state {shown(state)} is invalid; allowed: a mapping of "
                f"{', '.join(PARAM_SPECS)}"
            )
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.verify()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SimParams:
        """Build from a mapping such as a parsed YAML document (``seed`` required)."""
        if "seed" not in values:
            raise ParamError(f"seed is required; allowed: {PARAM_SPECS['seed'].allowed()}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def cell_steps(self) -> int:
        return self.grid_size * self.grid_size * self.steps


def specs_of(cls: type) -> dict[str, ParamSpec]:
    """The ParamSpec of each field of a pydantic dataclass, in field order."""
    return {
        name: next(m for m in info.metadata if isinstance(m, ParamSpec))
        for name, info in cls.__pydantic_fields__.items()  # type: ignore[attr-defined]
        if any(isinstance(m, ParamSpec) for m in info.metadata)
    }


PARAM_SPECS: dict[str, ParamSpec] = specs_of(SimParams)
