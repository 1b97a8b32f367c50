"""Model parameters: names, defaults and valid ranges from MODEL.md section 1."""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeAlias

from mfn_core.errors import ParamError

Boundary: TypeAlias = Literal["periodic", "neumann", "dirichlet"]
BOUNDARIES: tuple[Boundary, ...] = ("periodic", "neumann", "dirichlet")
SEED_MAX = 2**63 - 1  # seeds are stored as Int64 columns
_MISSING = object()


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is checked: its kind and inclusive bounds or choices."""

    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool:
            return "true or false"
        if self.kind is int:
            return f"an integer in [{self.low}, {self.high}]"
        return f"a number in [{self.low:g}, {self.high:g}]"


PARAM_SPECS: dict[str, ParamSpec] = {
    "grid_size": ParamSpec(int, 4, 1024),
    "steps": ParamSpec(int, 1, 100_000),
    "alpha": ParamSpec(float, 0.05, 0.24),
    "d_activator": ParamSpec(float, 0.01, 0.24),
    "d_inhibitor": ParamSpec(float, 0.01, 0.24),
    "r_activator": ParamSpec(float, 0.001, 0.1),
    "r_inhibitor": ParamSpec(float, 0.001, 0.1),
    "turing_enabled": ParamSpec(bool),
    "turing_threshold": ParamSpec(float, 0.5, 0.95),
    "spike_probability": ParamSpec(float, 0.0, 1.0),
    "quantum_jitter": ParamSpec(bool),
    "jitter_var": ParamSpec(float, 0.0, 0.01),
    "boundary": ParamSpec(str, choices=BOUNDARIES),
    "seed": ParamSpec(int, 0, SEED_MAX),
}


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


def check_value(name: str, value: object, label: str | None = None) -> Any:
    """Return ``value`` as parameter ``name``'s Python type, or raise ParamError.

    ``label`` replaces the name in the message, e.g. "small.yaml: sweep.alpha[2]".
    """
    spec = PARAM_SPECS[name]
    label = label or name

    def fail(problem: str) -> ParamError:
        return ParamError(f"{label} = {shown(value)} {problem}; allowed: {spec.allowed()}")

    if spec.kind is bool:
        if not isinstance(value, bool):
            raise fail("is not a boolean")
        return value
    if spec.kind is str:
        if not isinstance(value, str) or value not in spec.choices:
            raise fail("is not a known choice")
        return value
    # bool is an int subclass; True as a grid size is a mistake, not a 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail("is not a number")
    if spec.kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise fail("is not an integer")
            value = int(value)
        number: float = value
    else:
        if not is_finite_number(value):
            raise fail("is not finite")
        number = float(value)
    assert spec.low is not None
    assert spec.high is not None
    if not spec.low <= number <= spec.high:
        raise fail("is out of range")
    return number


def unknown_names(names: Iterable[object], known: Iterable[str]) -> str:
    """A message listing unknown names, with the nearest known name for each."""
    known = list(known)
    parts = []
    for name in sorted(map(str, names)):
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(shown(name) + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(parts)


@dataclass(frozen=True, init=False)
class SimParams:
    """Validated, immutable parameters of one simulation run.

    Every value is checked on construction; a wrong type, an out-of-range value or
    an unknown name raises :class:`ParamError` naming the parameter, the value and
    the allowed range.
    """

    grid_size: int
    steps: int
    alpha: float
    d_activator: float
    d_inhibitor: float
    r_activator: float
    r_inhibitor: float
    turing_enabled: bool
    turing_threshold: float
    spike_probability: float
    quantum_jitter: bool
    jitter_var: float
    boundary: Boundary
    seed: int

    def __init__(
        self,
        *,
        seed: int,
        grid_size: int = 64,
        steps: int = 100,
        alpha: float = 0.18,
        d_activator: float = 0.10,
        d_inhibitor: float = 0.05,
        r_activator: float = 0.01,
        r_inhibitor: float = 0.02,
        turing_enabled: bool = True,
        turing_threshold: float = 0.75,
        spike_probability: float = 0.25,
        quantum_jitter: bool = False,
        jitter_var: float = 0.0005,
        boundary: Boundary = "periodic",
        **unknown: object,
    ) -> None:
        if unknown:
            raise ParamError(
                f"unknown parameter {unknown_names(unknown, PARAM_SPECS)}; "
                f"known: {', '.join(PARAM_SPECS)}"
            )
        given = dict(locals())
        for name in PARAM_SPECS:
            object.__setattr__(self, name, check_value(name, given[name]))

    def verify(self) -> None:
        """Raise ParamError unless every field still holds a valid value of its exact type.

        The constructor checks its arguments, but a frozen dataclass can still be
        changed with ``object.__setattr__`` or built without ``__init__`` (copy, a
        crafted pickle); the compiled kernels index arrays by these values without
        bounds checks, so they call this first.
        """
        for name, spec in PARAM_SPECS.items():
            value = getattr(self, name, _MISSING)
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
            check_value(name, value, label)

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
            raise ParamError("seed is required; allowed: an integer in [0, 2^63-1]")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def cell_steps(self) -> int:
        return self.grid_size * self.grid_size * self.steps
