"""Live progress of a sweep, for whoever in this process wants to show it.

The simulation_runs asset publishes (preset, done, total) after every run; the
``mfn build`` command subscribes to draw its progress bar. Only listeners in the
asset's own process hear it (the in-process executor that ``mfn build`` uses).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

Listener = Callable[[str, int, int], None]

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
