"""mfn_pipeline: the Dagster code location that builds the MFN data sets.

``defs`` is the Definitions object Dagster's tools find (``dagster dev -m
mfn_pipeline``); resolving it validates every configuration file. It is resolved on
first access, so the ``mfn`` command can report an invalid file as a message
instead of failing while it imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from mfn_pipeline.definitions import defs  # noqa: PLC0415

        return defs
    raise AttributeError(f"module 'mfn_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    # Dagster discovers definitions through dir(); list the lazy one too.
    return sorted([*globals(), "defs"])
