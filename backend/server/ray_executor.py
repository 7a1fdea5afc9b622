"""Jobs on Ray actors, for more than one machine (optional: `pip install ray`; no home-made cluster manager).

Each actor holds one Motion Expert (a GPU each when the cluster has GPUs). Progress travels back through a Ray queue,
cancellation through a small registry actor that the job's step callback consults, results as object references
the executor polls without blocking. An actor that dies mid-job surfaces as an error on its reference: the job is
retried on a fresh actor (bounded), then fails with a clear message. On one machine Ray is told to stay on
loopback and not to report usage.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from pathlib import Path

from backend.server.executors import Event, Inputs, InputsGone, load_inputs
from backend.server.jobs import Job


def _ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    return ray


class RayExecutor:
    """Executor on `n_actors` Ray actors; connects to `address` or starts a local Ray on loopback."""

    def __init__(self, n_actors: int = 1, model_dir: Path | None = None, address: str | None = None,
                 gpus_per_actor: float = 0.0, max_attempts: int = 2):
        ray = _ray()
        from ray.util.queue import Queue

        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, n_actors), include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1", configure_logging=False)
        self.ray = ray
        self.model_dir = str(model_dir) if model_dir else None
        self.queue = Queue()
        self.registry = _Registry.options(num_cpus=0).remote()
        self.gpus = gpus_per_actor
        self.actors = [self._new_actor() for _ in range(n_actors)]
        self.idle = deque(self.actors)
        self.pending: deque[tuple[Job, dict]] = deque()
        self.running: dict = {}  # object ref -> (job, inputs, actor)
        self.attempts: dict[str, int] = {}
        self.max_attempts = max_attempts

    def _new_actor(self):
        return _JobActor.options(num_cpus=1, num_gpus=self.gpus).remote(self.model_dir)

    def submit(self, job: Job, inputs: Inputs) -> None:
        self.pending.append((job, inputs))

    def cancel(self, job_id: str) -> None:
        self.registry.cancel.remote(job_id)
        before = len(self.pending)
        self.pending = deque((j, i) for j, i in self.pending if j.id != job_id)
        if len(self.pending) != before:
            self.queue.put_nowait(("cancelled", job_id, None))

    def events(self) -> list[Event]:
        self._dispatch()
        out: list[Event] = []
        while not self.queue.empty():
            kind, job_id, payload = self.queue.get_nowait()
            if kind == "progress":
                out.append(Event(job_id, "progress", *payload))
            elif kind == "cancelled":
                out.append(Event(job_id, "cancelled"))
            elif kind == "failed":
                out.append(Event(job_id, "failed", error_code="job_failed", message=payload))
        if self.running:
            done, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            for ref in done:
                job, inputs, actor = self.running.pop(ref)
                out.extend(self._finish(ref, job, inputs, actor))
        return out

    def _finish(self, ref, job: Job, inputs: dict, actor) -> list[Event]:
        from ray.exceptions import RayActorError

        try:
            status, fields, arrays, message = self.ray.get(ref)
        except RayActorError:
            self.actors.remove(actor)
            replacement = self._new_actor()
            self.actors.append(replacement)
            self.idle.append(replacement)
            if self.attempts.get(job.id, 0) < self.max_attempts:
                self.pending.appendleft((job, inputs))
                return []
            return [Event(job.id, "failed", error_code="job_failed",
                          message=f"the Ray actor running this job died {self.attempts[job.id]} times; giving up")]
        self.idle.append(actor)
        if status == "result":
            return [Event(job.id, "result", fields=fields, arrays=arrays)]
        if status == "cancelled":
            return [Event(job.id, "cancelled")]
        return [Event(job.id, "failed", error_code=status, message=message)]

    def _dispatch(self) -> None:
        while self.pending and self.idle:
            job, inputs = self.pending.popleft()
            try:
                arrays = load_inputs(job, inputs)  # read now: queued jobs hold no song in the server
            except InputsGone as exc:
                self.queue.put_nowait(("failed", job.id, str(exc)))
                continue
            actor = self.idle.popleft()
            self.attempts[job.id] = self.attempts.get(job.id, 0) + 1
            ref = actor.run.remote(job.id, job.kind, job.options, arrays, self.queue, self.registry)
            self.running[ref] = (job, inputs, actor)

    def shutdown(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.ray.kill(self.registry)


@functools.lru_cache(maxsize=None)
def _define_actors():
    ray = _ray()

    @ray.remote
    class Registry:
        def __init__(self):
            self.cancelled: set[str] = set()

        def cancel(self, job_id: str) -> None:
            self.cancelled.add(job_id)

        def is_cancelled(self, job_id: str) -> bool:
            return job_id in self.cancelled

    @ray.remote
    class JobActor:
        def __init__(self, model_dir: str | None):
            from backend.server.runner import MotionRunner

            self.runner = MotionRunner(Path(model_dir) if model_dir else None)

        def run(self, job_id, kind, options, inputs, queue, registry):
            from backend.server.executors import JobCancelled

            def progress(stage: str, step: int, total: int) -> None:
                if ray.get(registry.is_cancelled.remote(job_id)):
                    raise JobCancelled
                queue.put_nowait(("progress", job_id, (stage, step, total)))

            try:
                fields, arrays = self.runner(Job(job_id, kind, options), inputs, progress, lambda: False)
                return "result", fields, arrays, ""
            except JobCancelled:
                return "cancelled", None, None, ""
            except ValueError as exc:
                return "bad_request", None, None, str(exc)
            except Exception as exc:  # noqa: BLE001 - reported to the client, the actor keeps serving
                return "job_failed", None, None, f"{type(exc).__name__}: {exc}"

    return Registry, JobActor


class _Lazy:
    """Defers the @ray.remote classes until Ray is imported (it is optional)."""

    def __init__(self, index: int):
        self.index = index

    def options(self, **kw):
        return _define_actors()[self.index].options(**kw)


_Registry, _JobActor = _Lazy(0), _Lazy(1)
