"""Process-wide tuning for the CPU backend: the C allocator.

glibc's malloc serves large blocks with mmap and, after each free, raises its mmap threshold only up to 32 MiB; the
sampler's big per-step buffers therefore get mapped and unmapped on every call, and the kernel zero-fills fresh pages
each time (minor page faults show up as system time and erratic timings). Fixing the thresholds keeps those buffers
in the heap across denoising steps. `scripts/bench_me.py` measures default vs tuned in the same run.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # blocks above this still come from mmap (and go back to the system at once)
TRIM_THRESHOLD = 512 << 20  # free memory at the top of the heap beyond this is returned to the system

_tuned = False


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds once per process (no-op elsewhere, or with MACE_DANCE_MALLOC=default)."""
    global _tuned
    if _tuned:
        return True
    libc = None if os.environ.get("MACE_DANCE_MALLOC", "tuned") == "default" else _glibc()
    if libc is None:
        return False
    _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


RELEASE_AFTER_GROWTH = 64 << 20  # resident growth since the last release that makes the next one worth its cost

_settled_rss: int | None = None


def release_memory(min_growth: int = RELEASE_AFTER_GROWTH) -> bool:
    """Hand the heap's free pages back to the system once the process has grown: what a server calls between jobs.

    A finished job's song, features and buffers are freed, but glibc keeps freed heap pages for reuse (with the tuned
    thresholds, up to 512 MiB at the heap's top, and any page between blocks still in use), so a server that once ran a
    big job stays that big. `malloc_trim(0)` returns every free page; the next job faults its pages in again. A full
    collection and a trim cost tens of ms with torch loaded (trivial jobs ran at 107 a second, not 254), so they run
    only when the resident size grew by `min_growth` since the last release; True when pages were handed back.
    """
    global _settled_rss
    libc = _glibc()
    rss = _resident_bytes()
    if libc is None or rss is None:
        return False
    if _settled_rss is not None:
        _settled_rss = min(_settled_rss, rss)  # growth from the lowest it settled at, not from a past peak
        if rss - _settled_rss < min_growth:
            return False
    gc.collect()
    trimmed = bool(libc.malloc_trim(0))
    _settled_rss = _resident_bytes()
    return trimmed


def _resident_bytes() -> int | None:
    """This process's resident set size (Linux), read cheaply from /proc."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc on Linux, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None
