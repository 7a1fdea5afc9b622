"""Executors run jobs away from the server loop and report back through a queue of events.

The in-process executor (the embedded default) runs one job at a time on a worker thread. Worker processes and the
Ray executor (more machines) implement the same interface: `submit`, `cancel`, `events`, `shutdown`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from backend.runtime import release_memory
from backend.server.jobs import Job


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


@dataclass
class Event:
    """Something an executor reports: progress, a result, a failure or a cancellation."""

    job_id: str
    kind: str  # "progress", "result", "failed", "cancelled", "restarted" (its worker died; queued again)
    stage: str = ""
    step: int = 0
    total: int = 0
    fields: dict[str, Any] | None = None
    arrays: dict[str, np.ndarray] | None = None
    error_code: str = ""
    message: str = ""


# run(job, inputs, progress, cancelled) -> (result fields, result arrays)
Runner = Callable[[Job, dict, Callable[[str, int, int], None], Callable[[], bool]], tuple[dict, dict]]

# A job's arrays, read when it starts: a queued job holds no copy of its song in memory (the store has it on disk).
Inputs = Callable[[], dict[str, np.ndarray]]

INPUTS_GONE = "the job's stored song could not be read back ({}); submit it again"


def load_inputs(job: Job, inputs: Inputs) -> dict[str, np.ndarray]:
    """Read a starting job's arrays; a store that lost them is the job's failure, told in a sentence."""
    try:
        return inputs()
    except (OSError, ValueError, KeyError) as exc:
        raise InputsGone(INPUTS_GONE.format(type(exc).__name__)) from exc


class InputsGone(Exception):
    """A starting job's stored arrays could not be read."""


class Executor(Protocol):
    def submit(self, job: Job, inputs: Inputs) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def events(self) -> list[Event]: ...
    def shutdown(self) -> None: ...


# A collection and a trim right after each job held the GIL for 0.12 s while the server loop waited to tell its result
# (60-s dances), and handed back pages the next job faulted in again: jobs back to back keep them, and the heap goes
# back to the system once no job has come for this long (the process workers trim after their reply: no GIL shared).
IDLE_TRIM_S = 1.0
BUSY_TRIM_S = 30.0  # under a steady stream of jobs, a trim before the next job once this long has passed since one


class InProcessExecutor:
    """Runs jobs one after another on a background thread of this process."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self._todo: queue.Queue = queue.Queue()
        self._events: queue.Queue = queue.Queue()
        self._cancel: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="mace-dance-executor", daemon=True)
        self._thread.start()

    def submit(self, job: Job, inputs: Inputs) -> None:
        self._todo.put((job, inputs))

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancel.add(job_id)

    def _is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancel

    def events(self) -> list[Event]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def shutdown(self) -> None:
        self._todo.put(None)
        self._thread.join(timeout=5)

    def _work(self) -> None:
        trim, trimmed = False, time.monotonic()  # trim: a finished job's garbage is still on the heap
        while True:
            try:
                item = self._todo.get(timeout=IDLE_TRIM_S if trim else None)
            except queue.Empty:  # idle: the results have long been told
                trim, trimmed = False, time.monotonic()
                release_memory()
                continue
            if item is None:
                return
            if trim and time.monotonic() - trimmed > BUSY_TRIM_S:  # never idle: a 10-min song's peak must not stay
                trim, trimmed = False, time.monotonic()
                release_memory()
            job, inputs = item
            if self._is_cancelled(job.id):
                self._events.put(Event(job.id, "cancelled"))
                continue

            def progress(stage: str, step: int, total: int, job_id: str = job.id) -> None:
                if self._is_cancelled(job_id):
                    raise JobCancelled
                self._events.put(Event(job_id, "progress", stage, step, total))

            try:
                fields, arrays = self.runner(job, load_inputs(job, inputs), progress,
                                             lambda job_id=job.id: self._is_cancelled(job_id))
                event = Event(job.id, "result", fields=fields, arrays=arrays)
            except JobCancelled:
                event = Event(job.id, "cancelled")
            except InputsGone as exc:
                event = Event(job.id, "failed", error_code="job_failed", message=str(exc))
            except ValueError as exc:  # bad input the runner detected: the user's problem, said plainly
                event = Event(job.id, "failed", error_code="bad_request", message=str(exc))
            except Exception as exc:  # noqa: BLE001 - a job failure must never take the server down
                event = Event(job.id, "failed", error_code="job_failed", message=f"{type(exc).__name__}: {exc}")
            item = inputs = fields = arrays = None  # the song and what the job made of it: gone before the trim
            self._events.put(event)
            event, trim = None, True
