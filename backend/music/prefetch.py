"""Analyse a song section in a forked process while the caller loads the Motion Expert.

A cold CLI run spends ~2 s importing librosa and ~0.5 s on the features, and ~1.3 s importing torch and loading the
model; the two do not depend on each other. On a machine with a free core the fork runs them side by side (the
child never imports torch, the parent never imports librosa). Where fork is unavailable, or the child cannot be
started, the analysis runs in-process when the result is asked for: same features either way.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from backend.music.features import MusicFeatures, analyse_section


class SectionAnalysis:
    """`analyse_section(path, start, end)` started now, its MusicFeatures delivered by `result()`."""

    def __init__(self, path: str | Path, start: float = 0.0, end: float | None = None):
        self.args = (Path(path), float(start), None if end is None else float(end))
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future | None = None
        if "fork" in multiprocessing.get_all_start_methods():
            try:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
                self._future = self._pool.submit(analyse_section, *self.args)
            except OSError:  # no processes to spare: analyse in-process instead
                self.close()

    def result(self) -> MusicFeatures:
        """The section's features (errors such as AudioError are raised here, as from analyse_section)."""
        try:
            if self._future is not None:
                try:
                    return self._future.result()
                except BrokenProcessPool:  # the helper died (killed, out of memory): do the work here
                    pass
            return analyse_section(*self.args)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the helper process (a pending analysis is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._future = None, None

    def __enter__(self) -> "SectionAnalysis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
