"""numba compilation flags, in one place.

Two flavours, because the model's contract is bit-for-bit reproducibility while its
summary statistics only need to agree within 1e-9:

* ``STRICT``: IEEE float64 in source order. No fast-math, so LLVM may neither
  reassociate sums nor fuse multiply-adds; this is what lets the compiled model
  equal the NumPy reference to the last bit.
* ``REDUCTION``: reductions (sums, maxima) over a frame may be reassociated, which
  lets LLVM vectorise them. Used only for per-step statistics, after the kernel has
  checked the frame for NaN.

``cache=True`` writes compiled machine code next to the sources (or to
``NUMBA_CACHE_DIR``), so a new process - a sweep worker, a Dagster step - loads it
instead of compiling again. ``tests/mfn_core/test_jit_cache.py`` starts several
processes at once on an empty cache to show this is safe.
"""

from __future__ import annotations

from typing import Any

STRICT: dict[str, Any] = {
    "nogil": True,  # sweeps run kernels on threads; the GIL must not serialise them
    "cache": True,
    "error_model": "numpy",  # float division by zero gives inf/nan, no Python check per op
    "fastmath": False,
}

REDUCTION: dict[str, Any] = {
    **STRICT,
    # No "contract": a fused multiply-add would round |a*1000 - b*1000| differently
    # from the reference (and make it non-zero for a == b).
    "fastmath": {"reassoc", "nsz", "nnan", "ninf"},
}
