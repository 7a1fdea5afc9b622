"""Run work under a fixed thread count and see which threads it started (for the side-by-side tests)."""

from __future__ import annotations

import threading
from typing import Any, Callable


def run_with_threads(monkeypatch, count: int, work: Callable[[], Any]) -> tuple[Any, set[str]]:
    """(work's result, the names of the threads it started) with the thread policy fixed at `count` threads."""
    import backend.cpu_threads as cpu_threads

    monkeypatch.setenv("MACE_DANCE_THREADS", str(count))
    monkeypatch.setattr(cpu_threads, "_policy", None)
    seen: set[str] = set()
    real = threading.Thread.start

    def start(self):
        seen.add(self.name)
        return real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    try:
        return work(), seen
    finally:
        monkeypatch.setattr(threading.Thread, "start", real)
