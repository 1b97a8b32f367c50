"""Wall time and peak resident memory of a block of work, for the expect: ceilings."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

SAMPLE_INTERVAL_S = 0.02


def resident_bytes(process: psutil.Process | None = None) -> int:
    """Current resident set size of ``process`` (default: this process)."""
    return int((process or psutil.Process()).memory_info().rss)


def peak_resident_bytes() -> int:
    """Highest resident set size of this process since it started (VmHWM).

    Not getrusage's ru_maxrss: Linux carries that over from the parent through fork and
    exec, so a child of a large process (a long pytest run) reports the parent's peak.
    Read from /proc by hand because psutil 7 exposes no peak on Linux: memory_info
    reads statm and memory_full_info adds smaps' USS, PSS and swap, neither VmHWM
    (giampaolo/psutil#1540).
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("/proc/self/status has no VmHWM line")


@dataclass
class Usage:
    seconds: float = 0.0
    peak_rss_bytes: int = 0

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_bytes / 2**20


@contextlib.contextmanager
def metered() -> Iterator[Usage]:
    """Measure the block: wall seconds and the highest process RSS seen while it ran.

    The process-lifetime peak (getrusage) would report the worst moment of anything
    that ran before; a sampling thread records the peak during this block instead
    (still the whole process's resident memory, not this block's own allocations).
    """
    process = psutil.Process()  # one handle for every sample, not one per sample
    usage = Usage(peak_rss_bytes=resident_bytes(process))
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_INTERVAL_S):
            usage.peak_rss_bytes = max(usage.peak_rss_bytes, resident_bytes(process))

    sampler = threading.Thread(target=sample, name="mfn-rss-sampler", daemon=True)
    start = time.perf_counter()
    sampler.start()
    try:
        yield usage
    finally:
        done.set()
        sampler.join()
        usage.peak_rss_bytes = max(usage.peak_rss_bytes, resident_bytes(process))
        usage.seconds = time.perf_counter() - start
