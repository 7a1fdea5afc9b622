"""Analyse a song section in a forked process while the caller loads the Motion Expert.

A cold CLI run spends ~1.3 s of CPU on the analysis (its first calls load madmom and the numba kernels), and ~1.4 s
importing torch and loading the model and the figure library; the two do not depend on each other. The fork runs them
side by side (the child never imports torch), and counts the parent as its own work when it sizes its threads
(backend.cpu_threads.count_as_own). Where fork is unavailable, or the child fails to deliver, the analysis runs
in-process when the result is asked for: same features either way. A section analysed before
(backend.music.analysis_cache) is read back instead, and no process is forked.
"""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path

from backend.music import analysis_cache
from backend.music.features import MusicFeatures, analyse_section


def _child(conn, args) -> None:
    import os

    from backend.cpu_threads import count_as_own

    count_as_own(os.getppid())  # the parent loading the model is this job's other half, not another's work
    try:
        conn.send(("ok", analyse_section(*args)))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent, which raises it
        try:
            conn.send(("error", exc))
        except Exception:  # noqa: BLE001 - an exception that does not pickle: send its text
            conn.send(("error", RuntimeError("".join(traceback.format_exception_only(exc)).strip())))
    finally:
        conn.close()


class SectionAnalysis:
    """`analyse_section(path, start, end)` started now, its MusicFeatures delivered by `result()`."""

    def __init__(self, path: str | Path, start: float = 0.0, end: float | None = None):
        self.args = (Path(path), float(start), None if end is None else float(end))
        self._proc = self._conn = None
        self._key = analysis_cache.entry_key(*self.args) if analysis_cache.cache_dir() is not None else None
        self.cached = analysis_cache.load(self._key)  # the section's analysis from an earlier run, if kept
        if self.cached is None and "fork" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("fork")
            try:
                self._conn, child_conn = ctx.Pipe(duplex=False)
                self._proc = ctx.Process(target=_child, args=(child_conn, self.args), daemon=True)
                self._proc.start()
                child_conn.close()
            except OSError:  # no process to spare: analyse in-process instead
                self.close()

    def result(self) -> MusicFeatures:
        """The section's features (errors such as AudioError are raised here, as from analyse_section)."""
        if self.cached is not None:
            return self.cached
        music = self._analysed()
        analysis_cache.store(self._key, music)
        return music

    def _analysed(self) -> MusicFeatures:
        """The helper's analysis, or this process's when the helper did not deliver."""
        try:
            if self._conn is not None:
                try:
                    status, value = self._conn.recv()
                except (EOFError, OSError):  # the helper died (killed, out of memory): do the work here
                    status, value = "lost", None
                if status == "ok":
                    return value
                if status == "error":
                    raise value
            return analyse_section(*self.args)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the helper process (an unfinished analysis is abandoned)."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def __enter__(self) -> "SectionAnalysis":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
