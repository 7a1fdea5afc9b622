"""Local worker processes: jobs run in separate processes that send heartbeats; a dead worker's job moves on.

The executor owns a ROUTER socket only its own workers can reach: an `ipc://` socket in a fresh 0700 folder (on
systems without ipc, loopback TCP under CURVE with a key pair made for this run and handed to the workers through
their environment, never their command line). Worker ids are unguessable and also travel in the environment, and
the executor talks only to the ids it spawned, so a stranger on the machine can neither connect nor pose as a worker.
Each worker connects a DEALER (its jobs, progress and results) and, from a second thread, another DEALER for
heartbeats every 0.5 s. Messages reuse the bridge protocol (msgpack header +
raw array frames), so nothing is pickled and a worker killed mid-send cannot wedge a shared queue. A worker whose
process exits or whose heartbeats stop for `dead_after` seconds is replaced; its job is retried on another worker up
to `max_attempts` times, then fails with a clear error. Results are accepted once per job, so nothing is doubled.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from backend.server.executors import Event, Inputs, InputsGone, JobCancelled, load_inputs
from backend.server.jobs import Job
from bridge import protocol as P

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT_S = 0.5
# what a worker learns from its environment (a process's environment is readable only by its own user and root)
ENV_ENDPOINT, ENV_ID, ENV_SERVER_KEY = "MACE_DANCE_WORKER_ENDPOINT", "MACE_DANCE_WORKER_ID", "MACE_DANCE_WORKER_SERVER_KEY"


class _Channel:
    """The executor's private endpoint: ipc in a 0700 folder, or CURVE-secured loopback TCP without ipc."""

    def __init__(self, sock: zmq.Socket, use_ipc: bool | None = None):
        self.folder: str | None = None
        self.server_public: bytes | None = None
        if use_ipc if use_ipc is not None else zmq.has("ipc"):
            self.folder = tempfile.mkdtemp(prefix="mace-dance-workers-")  # mode 0700: only this user
            if len(self.folder) > 90:  # a unix socket's path has ~107 bytes: a long TMPDIR takes the TCP way
                shutil.rmtree(self.folder)
                self.folder = None
        if self.folder:
            os.chmod(self.folder, 0o700)
            self.endpoint = f"ipc://{self.folder}/jobs"
            sock.bind(self.endpoint)
        else:
            self.server_public, secret = zmq.curve_keypair()
            sock.curve_server, sock.curve_secretkey, sock.curve_publickey = True, secret, self.server_public
            self.endpoint = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"

    def env(self) -> dict[str, str]:
        """What a worker needs to join (besides its id)."""
        out = {ENV_ENDPOINT: self.endpoint}
        if self.server_public is not None:
            out[ENV_SERVER_KEY] = self.server_public.decode("ascii")
        return out

    def close(self) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def worker_socket(ctx: zmq.Context, identity: str) -> zmq.Socket:
    """A worker's DEALER joined to its executor's channel (read from the environment)."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity.encode())
    server_key = os.environ.get(ENV_SERVER_KEY)
    if server_key:  # CURVE: only a process told the server's key completes the handshake
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_key.encode("ascii"), public, secret
    sock.connect(os.environ[ENV_ENDPOINT])
    return sock


@dataclass
class _Worker:
    id: str
    proc: subprocess.Popen
    last_beat: float = field(default_factory=time.monotonic)
    job: str | None = None
    ready: bool = False


class WorkerPoolExecutor:
    """Runs jobs on `n` local worker processes (one per GPU, or a few on a CPU)."""

    # A healthy worker's heartbeats can pause for seconds on an overloaded machine (its heartbeat thread needs the
    # GIL and a core); a process that exits is noticed at once anyway, so the silence deadline is generous.
    DEAD_AFTER_S = 15.0

    def __init__(self, n: int = 2, model_dir: Path | None = None, dead_after: float = DEAD_AFTER_S,
                 max_attempts: int = 2, use_ipc: bool | None = None):
        self.n, self.model_dir, self.dead_after, self.max_attempts = n, model_dir, dead_after, max_attempts
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.channel = _Channel(self.sock, use_ipc)
        self.endpoint = self.channel.endpoint
        self.workers: dict[str, _Worker] = {}
        self.queue: deque[tuple[Job, Inputs]] = deque()
        self.jobs: dict[str, tuple[Job, Inputs]] = {}
        self.attempts: dict[str, int] = {}
        self.finished: set[str] = set()
        self.cancelled: set[str] = set()
        self._events: list[Event] = []
        self._serial = 0
        for _ in range(n):
            self._spawn()

    def _spawn(self) -> None:
        self._serial += 1
        wid = f"w{self._serial}-{secrets.token_hex(12)}"  # unguessable: a stranger cannot pose as one
        cmd = [sys.executable, "-m", "backend.server.workers", "--parent", str(os.getpid())]
        if self.model_dir:
            cmd += ["--model-dir", str(self.model_dir)]
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               ENV_ID: wid, **self.channel.env()}
        self.workers[wid] = _Worker(wid, subprocess.Popen(cmd, env=env))

    # --- Executor interface ----------------------------------------------------------------------------------------

    def submit(self, job: Job, inputs: Inputs) -> None:
        self.jobs[job.id] = (job, inputs)
        self.queue.append((job, inputs))

    def cancel(self, job_id: str) -> None:
        self.cancelled.add(job_id)
        for w in self.workers.values():
            if w.job == job_id:
                self._send(w.id, P.Message("cancel", {"job": job_id}))
                return
        if any(j.id == job_id for j, _ in self.queue):
            self.queue = deque((j, i) for j, i in self.queue if j.id != job_id)
            self._finish(job_id, Event(job_id, "cancelled"))

    def events(self) -> list[Event]:
        self._receive()
        self._check_health()
        self._dispatch()
        out, self._events = self._events, []
        return out

    def shutdown(self) -> None:
        for w in self.workers.values():
            if w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers.values():
            try:
                w.proc.wait(5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        self.sock.close(0)
        self.channel.close()

    # --- internals ---------------------------------------------------------------------------------------------------

    def _send(self, wid: str, msg: P.Message) -> None:
        try:
            self.sock.send_multipart([wid.encode(), *P.encode(msg)], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError:
            pass

    def _finish(self, job_id: str, ev: Event) -> None:
        if job_id in self.finished:
            return  # a late duplicate from a worker presumed dead: the job already has its outcome
        self.finished.add(job_id)
        self.jobs.pop(job_id, None)
        self._events.append(ev)

    def _receive(self) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            ident = bytes(frames[0].buffer).decode(errors="replace")
            wid = ident.removesuffix("-hb")
            worker = self.workers.get(wid)
            if worker is None:
                continue
            worker.last_beat = time.monotonic()
            try:
                msg = P.decode([f.buffer for f in frames[1:]], expect="reply")
            except P.ProtocolError:
                continue
            job_id = msg.get("job")
            if msg.type == "pong":
                if msg.get("ready"):
                    worker.ready = True
                continue
            if job_id != worker.job:
                continue
            if msg.type == "progress":
                if job_id not in self.finished:
                    self._events.append(Event(job_id, "progress", msg.get("stage"), msg.get("step"), msg.get("total")))
                continue
            worker.job = None
            if msg.type == "result":
                fields = {k: v for k, v in msg.fields.items() if k not in ("job", "request")}
                self._finish(job_id, Event(job_id, "result", fields=fields, arrays={k: np.array(v) for k, v in
                                                                                     msg.arrays.items()}))
            elif msg.type == "cancelled":
                self._finish(job_id, Event(job_id, "cancelled"))
            elif msg.type == "error":
                self._finish(job_id, Event(job_id, "failed", error_code=msg.get("code"), message=msg.get("message")))

    def _check_health(self) -> None:
        now = time.monotonic()
        for wid, w in list(self.workers.items()):
            dead = w.proc.poll() is not None or (w.ready and now - w.last_beat > self.dead_after)
            if not dead:
                continue
            if w.proc.poll() is None:
                w.proc.kill()
            del self.workers[wid]
            self._spawn()
            if w.job and w.job not in self.finished:
                job, inputs = self.jobs[w.job]
                if self.attempts.get(job.id, 0) >= self.max_attempts or job.id in self.cancelled:
                    self._finish(job.id, Event(job.id, "failed", error_code=P.JOB_FAILED,
                                               message=f"the worker running this job died {self.attempts[job.id]} "
                                                       "times; giving up"))
                else:
                    self.queue.appendleft((job, inputs))  # retried first, elsewhere
                    self._events.append(Event(job.id, "restarted", "restarted", 0, 0,
                                              message="its worker stopped; the job starts again on another"))

    def _dispatch(self) -> None:
        for w in self.workers.values():
            if not self.queue:
                return
            if w.ready and w.job is None:
                job, inputs = self.queue.popleft()
                if job.id in self.cancelled:
                    self._finish(job.id, Event(job.id, "cancelled"))
                    continue
                try:
                    arrays = load_inputs(job, inputs)  # read now: queued jobs hold no song in the server
                except InputsGone as exc:
                    self._finish(job.id, Event(job.id, "failed", error_code=P.JOB_FAILED, message=str(exc)))
                    continue
                self.attempts[job.id] = self.attempts.get(job.id, 0) + 1
                w.job = job.id
                self._send(w.id, P.Message("submit", {"kind": job.kind, "options": job.options, "job": job.id,
                                                      "attempt": self.attempts[job.id]}, arrays))


# --- the worker process -------------------------------------------------------------------------------------------------

def die_with_parent(parent: int) -> None:
    """Make this process end when `parent` (the server) does, even after kill -9 of the server.

    Linux: the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG); the heartbeat thread also exits the
    process when the parent pid changes (other systems, and a parent that died before the prctl took effect).
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the server is already gone
        os._exit(1)


def _heartbeats(ctx: zmq.Context, wid: str, stop: threading.Event, parent: int | None) -> None:
    sock = worker_socket(ctx, f"{wid}-hb")
    sock.setsockopt(zmq.LINGER, 0)
    while not stop.is_set():
        if parent is not None and os.getppid() != parent:  # orphaned: nobody will ever send a job again
            os._exit(1)
        sock.send_multipart(P.encode(P.Message("pong", {"ready": True, "pid": os.getpid()})))
        stop.wait(HEARTBEAT_S)
    sock.close(0)


def worker_main(wid: str, model_dir: Path | None, parent: int | None = None) -> None:
    """Serve jobs from the executor (its channel in the environment) until told to stop or its server is gone."""
    if parent is not None:
        die_with_parent(parent)
    from backend.runtime import release_memory, tune_allocator
    from backend.server.runner import MotionRunner

    tune_allocator()  # a fresh (spawned) process: the CLI's tuning does not carry over
    runner = MotionRunner(model_dir)
    ctx = zmq.Context.instance()
    sock = worker_socket(ctx, wid)
    sock.setsockopt(zmq.LINGER, 1000)
    stop = threading.Event()
    threading.Thread(target=_heartbeats, args=(ctx, wid, stop, parent), daemon=True).start()
    try:
        while True:
            frames = sock.recv_multipart(copy=False)
            try:
                msg = P.decode([f.buffer for f in frames], expect="request")
            except P.ProtocolError:
                continue
            if msg.type != "submit":
                continue
            job = Job(msg.get("job"), msg.get("kind"), msg.get("options"))
            cancelled = False

            def progress(stage: str, step: int, total: int, job_id: str = job.id) -> None:
                nonlocal cancelled
                while sock.poll(0):  # a cancel may be waiting
                    m = P.decode([f.buffer for f in sock.recv_multipart(copy=False)], expect="request")
                    if m.type == "cancel" and m.get("job") == job_id:
                        cancelled = True
                if cancelled:
                    raise JobCancelled
                sock.send_multipart(P.encode(P.Message("progress", {"job": job_id, "stage": stage, "step": step,
                                                                    "total": total, "pid": os.getpid()})))

            try:
                fields, arrays = runner(job, dict(msg.arrays), progress, lambda: cancelled)
                reply = P.Message("result", {"job": job.id, **fields}, arrays)
            except JobCancelled:
                reply = P.Message("cancelled", {"job": job.id})
            except ValueError as exc:
                reply = P.error(P.BAD_REQUEST, str(exc), job=job.id)
            except Exception as exc:  # noqa: BLE001 - report, keep serving
                reply = P.error(P.JOB_FAILED, f"{type(exc).__name__}: {exc}", job=job.id)
            sock.send_multipart(P.encode(reply))
            frames = msg = reply = fields = arrays = None  # the song and the dance: gone before the heap is trimmed
            release_memory()
    finally:
        stop.set()


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="mace-dance worker process (started by the server, which hands it its "
                                             f"channel and id in {ENV_ENDPOINT} and {ENV_ID})")
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--parent", type=int, default=None, help="the server's pid: exit when it is gone")
    a = ap.parse_args()
    if ENV_ENDPOINT not in os.environ or ENV_ID not in os.environ:
        sys.exit(f"a worker is started by `mace-dance serve --workers N`, which sets {ENV_ENDPOINT} and {ENV_ID}")
    try:
        worker_main(os.environ[ENV_ID], a.model_dir, a.parent)
    except KeyboardInterrupt:
        pass
