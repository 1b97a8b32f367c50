"""One hardened reader for the project's hand-edited YAML files (presets, environments).

These files are written by people and by editors that crash half-way, and a code
location loads every one of them, so reading one must be bounded in time and memory
whatever it holds. The reader refuses anything that is not a small regular UTF-8
file and parses with PyYAML's SafeLoader plus a few refusals:

- aliases (``*name``): a 446-byte "billion laughs" file expands to gigabytes as soon as
  anything walks the result; the files never need them, so no expansion budget;
- nesting deeper than :data:`MAX_DEPTH` (the composer recurses once per level);
- integers longer than :data:`MAX_INT_CHARS` characters (Python refuses to convert
  more than 4300 digits, and sexagesimal ``1:2:3:...`` grows without that limit);
- a key given twice in one mapping (YAML says it is an error; PyYAML keeps the last).

SafeLoader already refuses ``!!python/...`` and unknown tags. A small subclass of
it is preferred to another YAML library (ruamel.yaml, strictyaml): PyYAML is
already a dependency of Dagster and of this project, and these refusals are a few
lines each; a new parser would be one more dependency to audit with its own
surprises.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from mfn_core.params import shown

# A preset is about 1.5 KiB and an environment file less; 32 KiB leaves room for long
# descriptions and comments. PyYAML spends 40-50 us per token, so the worst file of
# this size (a flow list of 16,000 one-character items) takes about a second.
MAX_FILE_BYTES = 32 * 1024
MAX_DEPTH = 32
MAX_INT_CHARS = 64  # seeds go to 2^63-1 (19 digits); underscores and signs fit too
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlFileError(ValueError):
    """A YAML file cannot be read safely; the message is one line and names the file."""


def _where(mark: yaml.Mark | None) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


class _Refused(yaml.YAMLError):
    """Raised inside the loader; read_yaml turns it into the caller's error type."""

    def __init__(self, mark: yaml.Mark | None, problem: str) -> None:
        super().__init__(f"{_where(mark)}{problem}")


class _HardenedLoader(yaml.SafeLoader):
    """SafeLoader without aliases, deep nesting, huge integers or duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: type[yaml.Token]) -> None:
        # The scanner looks ahead through nested flow brackets keeping one pending
        # "simple key" per level and rescans them all at every token: 32 KiB of "["
        # would take about half a minute. Stopping at the depth limit keeps it linear.
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(
                self.get_mark(),
                f"nested more than {MAX_DEPTH} levels deep; allowed: at most {MAX_DEPTH}",
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(
                event.start_mark,
                f"alias *{event.anchor} is not allowed; write the value out in full",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                    f"nested more than {MAX_DEPTH} levels deep; allowed: at most {MAX_DEPTH}",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # PyYAML's constructors trust the scalar behind an explicit tag: "!!int ''"
        # raises IndexError, "!!timestamp x" AttributeError. Name the value instead.
        try:
            return super().construct_object(node, deep)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, OverflowError):
            value = node.value if isinstance(node, ScalarNode) else type(node).__name__
            raise _Refused(
                node.start_mark, f"{shown(value)} cannot be read as {node.tag}"
            ) from None

    def construct_yaml_int(self, node: ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(
                node.start_mark,
                f"an integer of {len(node.value)} characters; allowed: at most {MAX_INT_CHARS}",
            )
        return super().construct_yaml_int(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):  # "!!set [1]"
            raise _Refused(node.start_mark, f"{node.tag} needs a mapping here")
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                raise _Refused(key_node.start_mark, "a key that is a list or mapping") from None
            if first is not None:
                raise _Refused(
                    key_node.start_mark,
                    f"key {shown(key)} is given twice (lines {first} and {line}); keep one",
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


_HardenedLoader.add_constructor("tag:yaml.org,2002:int", _HardenedLoader.construct_yaml_int)


def read_yaml(path: Path, error: type[Exception] = YamlFileError) -> Any:
    """The parsed document of ``path``; anything unsafe or unreadable raises ``error``.

    The message is one line beginning with the path. Only a regular file is read (a
    FIFO, a device such as /dev/zero or a directory is refused without blocking on
    it), at most :data:`MAX_FILE_BYTES` bytes, as strict UTF-8.
    """
    raw = _read_capped(path, error)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x}); "
            "allowed: a UTF-8 text file"
        ) from None
    try:
        loader = _HardenedLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise error(
            f"{path}: not valid YAML: line {line}: character #x{code:04x} "
            f"({exc.reason}); allowed: printable text"
        ) from None
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid"
        if exc.context:
            at = f" on line {exc.context_mark.line + 1}" if exc.context_mark else ""
            problem = f"{problem} ({exc.context}{at})"
        problem = " ".join(problem.split())
        raise error(f"{path}: not valid YAML: {_where(exc.problem_mark)}{problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    # A constructor that trusts its input (found by fuzzing, as the cases above were):
    # still one message naming the file, never a traceback.
    except (ValueError, IndexError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise error(f"{path}: not valid YAML: {shown(str(exc))}") from None
    finally:
        loader.dispose()


def _read_capped(path: Path, error: type[Exception]) -> bytes:
    # O_NONBLOCK: opening a FIFO must not wait for a writer. The type is checked on the
    # open descriptor, so a file swapped for a FIFO after a stat cannot slip through.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        kind = "a broken symbolic link" if path.is_symlink() else "no such file"
        raise error(f"{path}: {kind}; allowed: a regular file") from None
    except OSError as exc:
        raise error(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(
                f"{path}: is {_kind(info.st_mode)}, not a regular file; allowed: a regular file"
            )
        if info.st_size > MAX_FILE_BYTES:
            raise error(_too_big(path, info.st_size))
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_BYTES:  # it grew while being read
            raise error(_too_big(path, size))
        return b"".join(chunks)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise error(f"{path}: is a directory; allowed: a regular file") from None
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _too_big(path: Path, size: int) -> str:
    return f"{path}: {size} bytes; allowed: at most {MAX_FILE_BYTES} bytes for a YAML file"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"
