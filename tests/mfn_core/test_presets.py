from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev environment
import pytest
import yaml

from mfn_core import ParamError
from mfn_core.presets import Expectations, PresetError, load_preset, preset_json_schema
from mfn_core.yaml_files import MAX_FILE_BYTES

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
        ({"num_samples": 0}, r"num_samples = 0 is out of range; allowed: an integer in \[1, "),
        ({"colour": 1}, r"unknown field 'colour'"),
        ({"sweep": {"alpha": [0.1, 0.3]}}, r"sweep.alpha\[1\] = 0.3 is out of range"),
        ({"sweep": {"seed": [1]}}, r"sweep.seed is not a model parameter that can be set here"),
        ({"sweep": {"alpha": []}}, r"sweep.alpha = \[\] is not a non-empty list"),
        ({"params": {"alpha": 0.1}}, r"params.alpha is also swept"),
        ({"params": {"boundry": "periodic"}}, r"did you mean 'boundary'"),
        ({"params": {"spike_probability": "high"}}, r"params.spike_probability = 'high' is not a"),
        ({"base_seed": -3}, r"base_seed = -3 is out of range; allowed: an integer in \[0, "),
        ({"name": "-x"}, r"name = '-x' is not a valid preset name; .* starting with a letter"),
        ({"name": "_x"}, r"name = '_x' is not a valid preset name"),
        ({"description": "evil\x1b[31mred"}, r"description holds the control character U\+001B"),
        ({"description": "left\u202etxt"}, r"control character U\+202E at position 4"),
        (
            {"expect": {"constant": {"D_box": "zero\x07"}}},
            r"expect.constant.D_box = .* printable characters",
        ),
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
    with pytest.raises(PresetError, match=r"absent\.yaml: no such file"):
        load_preset(tmp_path / "absent.yaml")


def test_preset_error_is_a_param_error() -> None:
    assert issubclass(PresetError, ParamError)


SMALL = (PRESETS / "small.yaml").read_text(encoding="utf-8")


def line_of(text: str, start: str) -> int:
    """The 1-based number of the first line of ``text`` that starts with ``start``."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


# The classic "billion laughs": 445 bytes that stand for 9^9 strings once expanded.
ALIAS_BOMB = "description:\n" + "".join(
    f"  {name}: &{name} [{', '.join([item] * 9)}]\n"
    for name, item in zip("abcdefghi", ['"lol"', *(f"*{c}" for c in "abcdefgh")], strict=True)
)


def _hostile(folder: Path) -> dict[str, str]:
    """Write every hostile file into ``folder``; return file name -> expected message."""
    expected: dict[str, str] = {}

    def put(name: str, content: str | bytes, message: str) -> None:
        data = content.encode() if isinstance(content, str) else content
        (folder / name).write_bytes(data)
        expected[name] = message

    bomb = SMALL.replace("description: Quick", "title: Quick") + ALIAS_BOMB
    first_alias = SMALL.count("\n") + 3
    put("bomb.yaml", bomb, f"line {first_alias}, column 10: alias *a is not allowed")
    put("deep.yaml", SMALL + "x: " + "[" * 900 + "]" * 900 + "\n", "nested more than 32 levels")
    put(
        "bigint.yaml",
        SMALL.replace("base_seed: 42", "base_seed: " + "9" * 5000),
        f"line {line_of(SMALL, 'base_seed:')}, column 12: an integer of 5000 characters; "
        "allowed: at most 64",
    )
    put(
        "sexagesimal.yaml",
        SMALL.replace("base_seed: 42", "base_seed: " + ":".join(["59"] * 2000)),
        "an integer of 5999 characters",
    )
    put(
        "dup.yaml",
        SMALL.replace("steps: 50", "steps: 50\nnum_samples: 99\nsteps: 5000"),
        f"line {line_of(SMALL, 'steps:') + 2}, column 1: key 'steps' is given twice "
        f"(lines {line_of(SMALL, 'steps:')} and {line_of(SMALL, 'steps:') + 2}); keep one",
    )
    put(
        "dup_nested.yaml",
        SMALL.replace("alpha: [0.15]", "{alpha: [0.15], alpha: [0.2]}").replace(
            "sweep:\n  ", "sweep: "
        ),
        f"key 'alpha' is given twice (lines {line_of(SMALL, 'sweep:')} and "
        f"{line_of(SMALL, 'sweep:')})",
    )
    put(
        "python_tag.yaml",
        SMALL + "x: !!python/object/apply:os.system ['touch /tmp/owned']\n",
        "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply",
    )
    put("local_tag.yaml", SMALL + "x: !include /etc/passwd\n", "for the tag '!include'")
    put("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\xff" * 50, "not UTF-8 text (byte 0 is 0x89)")
    put("latin1.yaml", SMALL.replace("Quick", "Qu\xefck").encode("latin-1"), "not UTF-8 text")
    put("nul.yaml", SMALL + "\x00\n", "special characters are not allowed")
    put("huge.yaml", SMALL + "#" * 200_000 + "\n", f"allowed: at most {MAX_FILE_BYTES} bytes")
    # The slowest kind of file PyYAML parses, as large as allowed.
    wide = SMALL + "x: ["
    put("wide.yaml", wide + "1," * ((MAX_FILE_BYTES - len(wide) - 2) // 2) + "]\n", "'x'")
    put(
        "long_scalar.yaml",
        SMALL.replace("Quick check", "Quick check" + "!" * 20_000),
        "description = 'Quick check!!!",
    )
    put("empty.yaml", "", "the file is empty")
    put("half.yaml", SMALL[: SMALL.index("num_samples")], "missing required field num_samples")
    put("list.yaml", "- " * 31 + "x\n", "the document is a list")
    put("two_documents.yaml", SMALL + "---\n" + SMALL, "expected a single document")
    put(
        "merge.yaml",
        SMALL.replace("params:\n", "params:\n  <<: *base\n").replace("sweep:", "sweep: &base"),
        "alias *base is not allowed",
    )
    put("unhashable.yaml", SMALL + "? [a, b]\n: 1\n", "a key that is a list or mapping")
    os.mkfifo(folder / "fifo.yaml")
    expected["fifo.yaml"] = "is a FIFO (named pipe), not a regular file"
    (folder / "zero.yaml").symlink_to("/dev/zero")
    expected["zero.yaml"] = "is a character device, not a regular file"
    (folder / ".#lock.yaml").symlink_to("user@host.12345:1700000000")
    expected[".#lock.yaml"] = "a broken symbolic link"
    (folder / "folder.yaml").mkdir()
    expected["folder.yaml"] = "is a directory"
    return expected


# Loads each file in a child process whose address space is capped, so a bomb fails
# with MemoryError there instead of exhausting the machine, and a hang hits the timeout.
LOAD_ALL = """
import json, resource, sys, time
from pathlib import Path
from mfn_core.presets import PresetError, load_preset
valid = Path(sys.argv[2])
load_preset(valid)  # every module loaded
start = time.perf_counter()
load_preset(valid)
print(json.dumps(["(valid)", "loaded", time.perf_counter() - start]), flush=True)
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
for path in sorted(Path(sys.argv[1]).iterdir()):
    start = time.perf_counter()
    try:
        load_preset(path)
        outcome = "loaded"
    except PresetError as exc:
        outcome = str(exc)
    except BaseException as exc:
        outcome = f"ESCAPED {type(exc).__name__}: {str(exc)[:200]}"
    seconds = time.perf_counter() - start
    print(json.dumps([path.name, outcome, seconds]), flush=True)
"""


def _address_space() -> int:
    """This interpreter's address space with the loader imported, for the child's cap."""
    code = (
        "import resource, mfn_core.presets;"
        "print(int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize())"
    )
    return int(subprocess.check_output([sys.executable, "-c", code], text=True, timeout=120))


def test_hostile_files_fail_alone_bounded_and_named(tmp_path: Path) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    expected = _hostile(folder)
    # 512 MiB above what the loaded interpreter maps: the bomb alone needs gigabytes.
    cap = _address_space() + 512 * 2**20
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ALL, str(folder), str(PRESETS / "small.yaml"), str(cap)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes = {
        name: (message, seconds)
        for name, message, seconds in map(json.loads, result.stdout.splitlines())
    }
    valid_load = outcomes.pop("(valid)")[1]
    assert sorted(outcomes) == sorted(expected)
    for name, fragment in expected.items():
        message, seconds = outcomes[name]
        assert message.startswith(f"{folder / name}: "), (name, message)
        assert fragment in message, (name, message)
        assert "\n" not in message
        assert len(message) < 400, (name, len(message))
        # Time grows with the bytes read, which are capped: per byte, no file costs
        # more than a few times a valid preset (a loose factor: the machine is shared).
        size = (folder / name).lstat().st_size if (folder / name).is_file() else 0
        assert seconds < 40 * valid_load * max(1.0, size / len(SMALL)), (name, seconds)


def test_aliases_are_refused_but_a_lone_anchor_and_other_encodings_load(tmp_path: Path) -> None:
    anchored = SMALL.replace("sweep:", "sweep: &grid")
    assert load_preset(write(tmp_path, anchored)).name == "small"
    assert load_preset(write(tmp_path, "\ufeff" + SMALL)).name == "small"  # a BOM
    assert load_preset(write(tmp_path, SMALL.replace("\n", "\r\n"))).name == "small"
    with pytest.raises(PresetError, match=r"line 3, column 14: alias \*d is not allowed"):
        load_preset(write(tmp_path, "x: &d text\nname: small\ndescription: *d\n"))


def test_every_problem_of_a_file_is_listed_at_once(tmp_path: Path) -> None:
    document = {
        **GOOD,
        "grid_size": 2,
        "colour": 1,
        "sweep": {"alpha": [0.1, 0.3]},
        "params": {"boundry": "periodic"},
        "expect": {"ranges": {"D_bax": [0, 1]}, "max_runtime_s": -1},
    }
    del document["steps"]
    path = write(tmp_path, document)
    with pytest.raises(PresetError) as excinfo:
        load_preset(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: 7 problems: 1) missing required field steps; ")
    for fragment in (
        "grid_size = 2 is out of range; allowed: an integer in [4, 1024]",
        "unknown field 'colour'",
        "sweep.alpha[1] = 0.3 is out of range; allowed: a number in [0.05, 0.24]",
        "params.boundry is not a model parameter that can be set here (did you mean 'boundary'?)",
        "expect.ranges.D_bax is not a numeric data set column (did you mean 'D_box'?)",
        "expect.max_runtime_s = -1 is invalid; allowed: a finite number > 0",
    ):
        assert fragment in message
    assert "\n" not in message


def test_a_preset_can_be_changed_only_into_a_valid_one() -> None:
    small = load_preset(PRESETS / "small.yaml")
    assert dataclasses.replace(small, num_samples=4).config_hash != small.config_hash
    with pytest.raises(PresetError, match=r"num_samples = 0 is out of range"):
        dataclasses.replace(small, num_samples=0)
    with pytest.raises(PresetError, match=r"^ranges.V_mean = \(1, 0\) is invalid"):
        Expectations(ranges={"V_mean": (1, 0)})


# Hashes of the shipped presets: stored data sets carry them, so they must not change.
CONFIG_HASHES = {
    # pragma: allowlist nextline secret
    "benchmark": "5545dd0aeecc54a3df47d096c53f3b92b5ce1c975fb0fefcfde844d92d3f9ad7",
    # pragma: allowlist nextline secret
    "large": "f8920fbaa8d1dd7df099b2903672135d0680c0c20197745133f69bb8a5413311",
    # pragma: allowlist nextline secret
    "medium": "a6a65485e10435171a8afee89835c362d8df7f1c6f38e9bab0b2332d648ab230",
    # pragma: allowlist nextline secret
    "small": "2cc79f3d4f3265521a7708caa89d2870759e788ce23713d10316c3d1571421cd",
    # pragma: allowlist nextline secret
    "transition": "5d3d068ec6f2df18a2a0aaf3cc2b82871ac234f86fcb88a3fe74cf27d3fd8e40",
}


@pytest.mark.parametrize("name", sorted(CONFIG_HASHES))
def test_config_hashes_of_the_shipped_presets_are_stable(name: str) -> None:
    assert load_preset(PRESETS / f"{name}.yaml").config_hash == CONFIG_HASHES[name]


SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "preset.schema.json"


def test_the_published_schema_is_the_models_schema() -> None:
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == preset_json_schema(), (
        f"{SCHEMA_FILE} is stale: regenerate it with `mfn schema > docs/preset.schema.json`"
    )
    jsonschema.Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("path", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_presets_validate_against_the_schema(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == []


@pytest.mark.parametrize(
    "change",
    [
        {"grid_size": 2},
        {"colour": 1},
        {"name": "Bad/Name"},
        {"sweep": {"seed": [1]}},
        {"sweep": {"alpha": []}},
        {"params": {"boundary": "torus"}},
        {"expect": {"ranges": {"D_bax": [0, 1]}}},
        {"expect": {"constant": {"D_box": ""}}},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(tmp_path: Path, change: dict[str, Any]) -> None:
    document = {**GOOD, **change}
    with pytest.raises(PresetError):
        load_preset(write(tmp_path, document))
    validator = jsonschema.Draft202012Validator(preset_json_schema())
    assert list(validator.iter_errors(document)) != []


def test_a_preset_with_many_mistakes_lists_every_one_in_one_message(tmp_path: Path) -> None:
    text = SMALL.replace("steps: 50", "steps: -5").replace("grid_size: 32", "grid_size: big")
    text += "".join(f"colour_{k}: red\n" for k in range(15))
    path = tmp_path / "small.yaml"
    path.write_text(text)
    with pytest.raises(PresetError) as refused:
        load_preset(path)
    message = str(refused.value)
    assert "\n" not in message
    assert "17 problems" in message
    assert all(f"{k}) " in message for k in range(1, 18))
    assert "more" not in message
    assert "steps = -5 is out of range" in message
    assert "unknown field 'colour_14'" in message
