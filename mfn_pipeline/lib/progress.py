"""Live progress of a sweep: published by the simulation_runs asset, shown by ``mfn build``.

The asset publishes (preset, done, total) after every run; whoever listens in the
asset's own process hears it (the in-process executor that ``mfn build`` uses).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

Listener = Callable[[str, int, int], None]

# Off a terminal a preset's progress is one line at every tenth of its runs: enough
# to see a long build move in a log, few enough to read.
LINES_PER_PRESET = 10

_listeners: list[Listener] = []
_lock = threading.Lock()


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener(preset, done, total)`` for every finished run inside the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def publish(preset: str, done: int, total: int) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(preset, done, total)


def _pace(start: float, done: int, total: int) -> tuple[float, float]:
    """Runs per second since ``start`` and the seconds left at that rate."""
    rate = done / max(time.perf_counter() - start, 1e-9)
    return rate, (total - done) / rate if rate > 0 else 0.0


@contextlib.contextmanager
def shown(stream: TextIO) -> Iterator[None]:
    """Show the runs finished inside the block on ``stream``: runs done, runs/s, time left.

    An interactive terminal gets a bar redrawn in place. A log, a pipe or CI gets plain
    lines instead: no carriage returns or escape codes there, even when FORCE_COLOR asks
    for colour, since nobody watches a redraw in a file.
    """
    start = time.perf_counter()
    console = Console(file=stream, highlight=False)
    if not (stream.isatty() and console.is_interactive):
        with listening(_Lines(stream, start)):
            yield
        return
    bar = Progress(
        TextColumn("{task.description:<12}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs {task.fields[rate]:6.1f} runs/s {task.fields[left]:6.1f} s left"),
        console=console,
        # Lines written to stderr meanwhile (Dagster's warnings) appear above the bar;
        # stdout is the command's own output and is left alone.
        redirect_stdout=False,
    )
    with bar, listening(_Bar(bar, start)):
        yield


class _Bar:
    """One rich bar per preset, updated in place."""

    def __init__(self, bar: Progress, start: float) -> None:
        self.bar = bar
        self.start = start
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, preset: str, done: int, total: int) -> None:
        rate, left = _pace(self.start, done, total)
        if preset not in self.tasks:
            self.tasks[preset] = self.bar.add_task(preset, total=total, rate=rate, left=left)
        self.bar.update(self.tasks[preset], completed=done, total=total, rate=rate, left=left)


class _Lines:
    """Plain lines, one per tenth of a preset's runs and one when it is done."""

    def __init__(self, stream: TextIO, start: float) -> None:
        self.stream = stream
        self.start = start
        self.said: dict[str, int] = {}

    def __call__(self, preset: str, done: int, total: int) -> None:
        step = done * LINES_PER_PRESET // max(total, 1)
        if step <= self.said.get(preset, 0) and done != total:
            return
        self.said[preset] = step
        rate, left = _pace(self.start, done, total)
        self.stream.write(f"{preset}: {done}/{total} runs  {rate:.1f} runs/s  {left:.1f} s left\n")
        self.stream.flush()
