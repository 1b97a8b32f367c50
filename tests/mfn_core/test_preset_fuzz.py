"""Fuzzing the preset loader: any document is a Preset or a PresetError, nothing else."""

from __future__ import annotations

import copy
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfn_core.presets import Preset, PresetError, load_preset

VALID = yaml.safe_load((Path(__file__).parents[2] / "configs/presets/small.yaml").read_text())

# Values a hand-edited or generated file could hold in any field.
NASTY_TEXT = st.sampled_from(
    ["", "../etc/passwd", "a/b", "..", "C:\\x", "ünïcødé", "名前", "\x00", " small ", "small\n"]
)
SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    NASTY_TEXT,
)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
# Every place a value sits in a valid preset, so mutations reach nested fields too.
PATHS = [
    ("name",),
    ("description",),
    ("grid_size",),
    ("steps",),
    ("num_samples",),
    ("seeds_per_config",),
    ("base_seed",),
    ("sweep",),
    ("sweep", "alpha"),
    ("sweep", "r_activator"),
    ("params",),
    ("params", "turing_enabled"),
    ("params", "alpha"),
    ("expect",),
    ("expect", "ranges"),
    ("expect", "ranges", "D_box"),
    ("expect", "max_runtime_s"),
    ("expect", "max_peak_memory_mib"),
    ("unknown_field",),
]


def loads(text: str | bytes) -> Preset | None:
    """Load ``text`` as a preset file: a Preset, or None for a clean PresetError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzzed.yaml"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        try:
            return load_preset(path)
        except PresetError as exc:
            message = str(exc)
        assert message.startswith(f"{path}: "), f"the message does not name the file: {message}"
        assert "\n" not in message, f"the message is not one line: {message!r}"
        return None


def mutated(changes: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(VALID)
    for path, value in changes:
        target = document
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[path[-1]] = value
    return document


# The deadline catches a hang or a blow-up, not a slow example: a file is at most
# 32 KiB, which parses in well under a second even on a busy machine.
FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow],
)
# Pieces of YAML that reach the loader's refusals and PyYAML's corners: anchors and
# aliases, merge keys, tags (Python ones included), complex keys, flow and block
# nesting, documents, directives, long numbers, quoting and escapes.
YAML_PIECES = st.sampled_from(
    [
        "&a ",
        "*a",
        "&b ",
        "*b",
        "<<: ",
        "!!python/object/apply:os.system ",
        "!!binary ",
        "!!set ",
        "!!int ",
        "!!float ",
        "!include ",
        "!!str ",
        "? ",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "\n",
        "  ",
        "---\n",
        "...\n",
        "%YAML 1.1\n",
        "%TAG ! tag:x,\n",
        "# c\n",
        "name",
        "grid_size",
        "steps",
        "description",
        "sweep",
        "alpha",
        "expect",
        "small",
        "0x1F",
        "0o17",
        "1_000",
        "1:30:00",
        "9" * 70,
        "1e999",
        ".nan",
        "-.inf",
        "~",
        "null",
        "yes",
        "2026-11-23",
        '"\\x00"',
        "'it''s'",
        '"\\u00e9"',
        "|\n  x\n",
        ">-\n  y\n",
        "\t",
        "\ufeff",
        "\x85",
        "\u2028",
        "é",
        "0.15",
        "32",
    ]
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4))
def test_mutated_fields_load_or_fail_cleanly(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    preset = loads(yaml.safe_dump(mutated(changes), allow_unicode=True))
    if preset is not None:  # the mutation happened to stay valid: then it is sane
        assert preset.grid_size >= 1
        assert preset.num_samples >= 1


@FUZZ
@given(VALUES)
def test_any_yaml_document_loads_or_fails_cleanly(document: Any) -> None:
    assert loads(yaml.safe_dump(document, allow_unicode=True)) is None


@FUZZ
@given(st.text(max_size=200))
def test_any_text_loads_or_fails_cleanly(text: str) -> None:
    assert loads(text) is None


def test_the_valid_preset_loads() -> None:
    # The fuzzers' base case: without it every case above could fail for one reason.
    preset = loads(yaml.safe_dump(VALID))
    assert preset is not None
    assert preset.name == "small"


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_load_or_fail_cleanly(data: bytes) -> None:
    loads(data)


@FUZZ
@given(st.lists(YAML_PIECES, max_size=60).map("".join))
def test_any_yaml_syntax_loads_or_fails_cleanly(text: str) -> None:
    loads(text)


@FUZZ
@given(st.lists(YAML_PIECES, max_size=30).map("".join))
def test_yaml_syntax_inside_a_valid_preset_loads_or_fails_cleanly(text: str) -> None:
    # Appended to a valid file, so the pieces meet a mapping already under way.
    base = yaml.safe_dump(VALID)
    preset = loads(base + text)
    if preset is not None:
        assert preset.name == "small"
