"""Exception types raised by ``mfn_core``."""

from __future__ import annotations


class ParamError(ValueError):
    """A model parameter, preset field or input array is invalid.

    Raised before any computation. The message names the parameter (or file and
    field), the offending value and what is allowed.
    """


class SimulationError(RuntimeError):
    """A run failed while computing (for example a non-finite value at some step)."""


class SweepTimeoutError(SimulationError):
    """A sweep ran past its wall-clock limit; the runs not yet started were cancelled."""
