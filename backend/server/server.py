"""`mace-dance serve`: a ZeroMQ ROUTER front end over a bounded job queue, an executor and a persistent job store.

The loop never trusts a message: every frame set is decoded inside a guard, and anything wrong earns an error reply
(or, if even the sender's identity is unusable, is dropped), so no input can stop the server. Events from the
executor are sent to the client that last submitted or attached to the job; a client that reconnects attaches again.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import zmq

from backend.server.executors import Event, Executor, InProcessExecutor
from backend.server.jobs import (CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, Job, JobStore, submit_digest,
                                 token_matches)
from backend.server.schema import SCHEMAS, check_arrays, check_options
from backend.server.uploads import CAPACITY_BYTES, UploadStore
from bridge import protocol as P

log = logging.getLogger("mace_dance.server")
SERVER_VERSION = "0.1.0"


def _cuda_available() -> bool:
    """Whether torch sees a GPU, without importing torch just to say hello (it is imported by then in practice)."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available())


class ServerConfigError(ValueError):
    """The server refuses to start with this configuration."""


@dataclass
class ServerConfig:
    """Where to listen, where to keep jobs, and the limits."""

    bind: str = "tcp://127.0.0.1:5555"
    data_dir: Path = Path(".cache/server")
    queue_limit: int = 16
    client_queue_limit: int = 8  # jobs one client key may have waiting or running (servers with --keys)
    jobs_per_client: int = 1000  # finished jobs kept per client key: its oldest go first
    result_ttl: float = 7 * 24 * 3600  # finished jobs (results and inputs) are deleted after this (`serve --keep`)
    limits: P.Limits = field(default_factory=P.Limits)
    model_dir: Path | None = None
    workers: int = 0  # 0: run jobs in the server process; N: N local worker processes with heartbeats
    ray_actors: int = 0  # N > 0: run jobs on N Ray actors (optional `ray`), on `ray_address` or a local Ray
    ray_address: str | None = None
    video_model_dir: Path | None = None  # a local Wan2.2-Animate folder: the server then also runs video jobs
    video_tiny: bool = False  # video jobs on a tiny random pipeline (dry runs, tests)
    part_bytes: int = 8 * 1024 * 1024  # video results stream in parts of at most this many bytes
    upload_capacity: int = CAPACITY_BYTES  # disk for songs being uploaded or kept for their next take
    keys_dir: Path | None = None  # CURVE keys (see backend/server/security.py): required for any non-loopback bind


_TCP_BIND = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-*]+):(\d{1,5}|\*)$")


def bind_host(endpoint: str) -> str:
    """The host part of one ZeroMQ bind endpoint, read the way ZeroMQ reads it; ServerConfigError otherwise.

    ZeroMQ takes `tcp://a:1;b:2` (source;destination) and `tcp://a:1@b` forms that urlparse reads as one host while
    ZeroMQ binds another: anything but `tcp://HOST:PORT` (one host, one port), `ipc://` or `inproc://` is refused.
    """
    if endpoint.startswith(("ipc://", "inproc://")):
        return ""
    match = _TCP_BIND.match(endpoint)
    if match is None:
        raise ServerConfigError(f"bind address {endpoint!r} is not one endpoint of the form tcp://HOST:PORT "
                                "(';', '@', paths and several hosts are not allowed)")
    return match.group(1).strip("[]")


def _user_id(frame) -> str:
    """The sender's key (z85) that the ZAP handler attached to a message frame ('' when there is none)."""
    try:
        return frame.get("User-Id") or ""
    except (zmq.ZMQError, AttributeError, UnicodeDecodeError):
        return ""


def is_loopback(endpoint: str) -> bool:
    """True for tcp endpoints on 127.0.0.0/8, ::1 or localhost, and for ipc/inproc (ServerConfigError if malformed)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = bind_host(endpoint)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*' or an interface name: treat as public


HANDSHAKE_MS = 10_000  # ZeroMQ drops a connection whose greeting/handshake takes longer (default 30 s)
FD_WANTED = 65_536  # open files the server asks for: every connection holds one


def raise_fd_limit(wanted: int = FD_WANTED) -> int:
    """Raise this process's soft limit on open files towards `wanted` (as far as the hard limit allows); returns it.

    A login shell's or a systemd unit's default of 1,024 let 1,100 idle connections lock every client out."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class Server:
    """The job server; `serve()` runs until `stop()` (or SIGINT in the CLI)."""

    def __init__(self, cfg: ServerConfig, executor: Executor | None = None, schemas: dict | None = None):
        if not is_loopback(cfg.bind) and not cfg.keys_dir:
            raise ServerConfigError(f"refusing to listen on {cfg.bind} without encryption: binding beyond loopback "
                                    "needs CURVE keys (create them with `mace-dance keys DIR`, then --keys DIR)")
        if cfg.keys_dir and cfg.bind.startswith("inproc://"):  # its clients would have to share its own context
            raise ServerConfigError(f"{cfg.bind}: an inproc address is for clients in this process, which need no "
                                    "keys; a keyed server listens on tcp:// or ipc://")
        self.cfg = cfg
        self.fd_limit = raise_fd_limit()  # before any socket or file is opened
        self.schemas = schemas or SCHEMAS  # the options each job kind takes (checked before a job exists)
        keys = None
        if cfg.keys_dir:
            from backend.server import security

            try:
                keys = security.load_server_keys(Path(cfg.keys_dir))
            except security.KeysError as exc:
                raise ServerConfigError(str(exc)) from None
        self.store = JobStore(cfg.data_dir, cfg.result_ttl)
        self.uploads = UploadStore(Path(cfg.data_dir) / "uploads", cfg.limits, cfg.upload_capacity)
        if executor is None and cfg.ray_actors > 0:
            from backend.server.ray_executor import RayExecutor

            executor = RayExecutor(cfg.ray_actors, cfg.model_dir, cfg.ray_address)
        elif executor is None and cfg.workers > 0:
            from backend.server.workers import WorkerPoolExecutor

            executor = WorkerPoolExecutor(cfg.workers, cfg.model_dir)
        elif executor is None:
            from backend.server.runner import JobRunner

            executor = InProcessExecutor(JobRunner(cfg.model_dir, cfg.video_model_dir, cfg.video_tiny))
        self.executor = executor
        self.subscribers: dict[str, set[bytes]] = {}  # job -> every connection watching it (owner and attachments)
        # ZAP is one handler per context at a fixed inproc address, and a closed socket leaves that address only
        # when zmq's reaper gets to it: a CURVE server owns its context (term() waits for the close), so servers
        # in one process neither share nor race for it. Plain servers share the instance (inproc clients reach them).
        self._own_ctx = keys is not None
        self.ctx = zmq.Context() if self._own_ctx else zmq.Context.instance()
        self.auth = self.sock = self.allow = None  # allow: the allow-list as it stands now (CURVE servers)
        self._running = True  # until stop(), even one called before serve() starts
        try:
            self.sock = self.ctx.socket(zmq.ROUTER)
            if keys is not None:
                self.auth = security.start_authenticator(self.ctx, keys)
                self.allow = security.AllowList(self.auth, keys.authorized)
                security.make_server_socket_secure(self.sock, keys)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)  # a connection that never finishes its greeting
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a vanished client must not block the loop
            # no frame may be big (songs arrive as uploads in chunks): a peer that stalls mid-frame holds little memory
            self.sock.setsockopt(zmq.MAXMSGSIZE, max(cfg.limits.max_frame_bytes, cfg.limits.max_header_bytes))
            self.sock.bind(cfg.bind)
        except BaseException:  # a port in use: the workers, the ZAP thread and the context go too
            self.close()
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._requeue_unfinished()

    def _requeue_unfinished(self) -> None:
        """Jobs a previous server left queued or running start again (bounded attempts)."""
        for job in self.store.unfinished():
            if job.attempts >= 3:
                self._finish(job, FAILED, P.JOB_FAILED, "the job was interrupted three times; giving up")
                continue
            job.state, job.stage = QUEUED, "queued"
            self.store.save(job)
            self.executor.submit(job, partial(self.store.inputs, job.id))

    # --- sending -------------------------------------------------------------------------------------------------

    def _send(self, identity: bytes, msg: P.Message, request: object = None) -> None:
        if isinstance(request, str) and len(request) <= 64:
            msg.fields["request"] = request  # lets the client match the answer to its request
        try:
            self.sock.send_multipart([identity, *P.encode(msg)], copy=False)
        except zmq.ZMQError as exc:  # the peer is gone: nothing to do
            log.debug("send failed: %s", exc)

    def _notify(self, job: Job, msg: P.Message) -> None:
        for identity in self.subscribers.get(job.id, ()):
            self._send(identity, P.Message(msg.type, dict(msg.fields), msg.arrays))

    def _watch(self, job: Job, identity: bytes) -> None:
        self.subscribers.setdefault(job.id, set()).add(identity)

    def _finish(self, job: Job, state: str, code: str = "", message: str = "") -> None:
        job.state, job.stage, job.error_code, job.error_message = state, state, code, message
        self.store.save(job)

    def _result_messages(self, job: Job) -> list[P.Message]:
        """The result, as one message (motion) or as parts of frames (video) no larger than `part_bytes` each."""
        fields, arrays = self.store.result(job.id)
        frames = arrays.pop("frames", None)
        if frames is None:
            return [P.Message("result", {"job": job.id, "part": 0, "parts": 1, **fields}, arrays)]
        per = max(1, self.cfg.part_bytes // max(1, frames[0].nbytes))
        starts = list(range(0, len(frames), per)) or [0]
        return [P.Message("result", {"job": job.id, "part": i, "parts": len(starts), "frame_start": s, **fields},
                          {**arrays, "frames": frames[s:s + per]}) for i, s in enumerate(starts)]

    def _final_messages(self, job: Job) -> list[P.Message]:
        if job.state == DONE:
            return self._result_messages(job)
        if job.state == CANCELLED:
            return [P.Message("cancelled", {"job": job.id})]
        return [P.error(job.error_code or P.JOB_FAILED, job.error_message or "the job failed", job=job.id)]

    # --- requests ------------------------------------------------------------------------------------------------

    def handle(self, identity: bytes, frames: list, user: str = "") -> None:
        """Answer one incoming message (never raises); `user` is the sender's key (z85) on a CURVE server."""
        msg = None
        try:
            msg = P.decode(frames, self.cfg.limits, expect="request")
            if self.allow is not None and not self.allow.admits(user):
                raise P.ProtocolError(P.FORBIDDEN, "this client's key is no longer on the server's allow-list")
            self._dispatch(identity, msg, user)
        except P.ProtocolError as exc:
            self._send(identity, P.error(exc.code, exc.message), msg.get("request") if msg else None)
        except OSError as exc:  # out of file handles or disk: the client can try again, the server goes on
            log.warning("could not take a request: %s", exc)
            self._send(identity, P.error(P.BUSY, f"the server cannot take the request just now ({exc.strerror or exc}); "
                                                 "try again shortly"), msg.get("request") if msg else None)
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything a peer sends
            log.exception("internal error while handling a message")
            self._send(identity, P.error(P.INTERNAL, f"internal error: {type(exc).__name__}"),
                       msg.get("request") if msg else None)

    def _dispatch(self, identity: bytes, msg: P.Message, user: str = "") -> None:
        req = msg.get("request")
        if msg.type == "ping":
            self._send(identity, P.Message("pong", {"time": time.time()}), req)
        elif msg.type == "hello":
            models = ["motion"] + (["video"] if self.cfg.video_model_dir or self.cfg.video_tiny else [])
            devices = ["cpu"] + (["cuda"] if _cuda_available() else [])
            self._send(identity, P.Message("welcome", {"server_version": SERVER_VERSION, "models": models,
                                                       "devices": devices, "protocol": P.PROTOCOL_VERSION}), req)
        elif msg.type == "submit":
            self._submit(identity, msg, user)
        elif msg.type == "upload":
            received, complete = self.uploads.offer(msg.get("upload"), msg.get("size"), msg.get("offset"),
                                                    msg.arrays.get("chunk"))
            self._send(identity, P.Message("uploaded", {"upload": msg.get("upload"), "received": received,
                                                        "complete": complete}), req)
        elif msg.type in ("cancel", "attach"):
            job_id = msg.get("job")
            job = self.store.get(job_id) if isinstance(job_id, str) else None
            # Only the owner's token controls a job; a wrong token reads as an unknown job, so ids leak nothing.
            if job is None or not token_matches(job, msg.get("token"), user):
                raise P.ProtocolError(P.UNKNOWN_JOB, f"no job {str(job_id)[:40]!r} with that token (finished jobs "
                                                     f"expire after {self.cfg.result_ttl / 3600:.0f} h)")
            self._watch(job, identity)
            if msg.type == "attach":
                self._send(identity, P.Message("accepted", {"job": job.id, "state": job.state}), req)
                if job.state in FINISHED:
                    for m in self._final_messages(job):
                        self._send(identity, m)
                elif job.total:
                    self._send(identity, P.Message("progress", {"job": job.id, "stage": job.stage, "step": job.step,
                                                                "total": job.total}))
            elif job.state in FINISHED:
                for m in self._final_messages(job):
                    self._send(identity, m, req)
            else:
                self._send(identity, P.Message("accepted", {"job": job.id, "state": job.state, "cancelling": True}),
                           req)
                self.executor.cancel(job.id)

    def _submit(self, identity: bytes, msg: P.Message, user: str = "") -> None:
        kind, options = msg.get("kind"), msg.get("options")
        if kind not in P.JOB_KINDS:
            raise P.ProtocolError(P.BAD_REQUEST, f"job kind must be one of {P.JOB_KINDS}, got {kind!r}")
        if kind == "video" and not (self.cfg.video_model_dir or self.cfg.video_tiny):
            raise P.ProtocolError(P.BAD_REQUEST, "this server has no Appearance Expert; video jobs are not offered")
        options = check_options(kind, options, self.schemas)
        arrays = {**msg.arrays, **self.uploads.arrays(msg.get("uploads"))}  # big ones arrived before, by hash
        if self.schemas is SCHEMAS:  # a server with its own job kinds declares its own arrays
            check_arrays(kind, arrays)
        request = msg.get("request", "")
        request = request if isinstance(request, str) else ""
        digest = submit_digest(kind, options, arrays)
        existing = self.store.by_request(request)
        if existing is not None and (existing.digest != digest or existing.owner != user):  # another's job
            raise P.ProtocolError(P.BAD_REQUEST, "this request id already names another job; use a fresh id")
        if existing is not None:  # a retried submit (same content): same job, never a second one
            self._watch(existing, identity)
            self._send(identity, P.Message("accepted", {"job": existing.id, "state": existing.state,
                                                        "token": existing.token}), request)
            if existing.state in FINISHED:
                for m in self._final_messages(existing):
                    self._send(identity, m)
            return
        if kind == "motion" and "audio" not in arrays:
            raise P.ProtocolError(P.BAD_REQUEST, "a motion job needs the audio file's bytes (array 'audio')")
        if kind == "video" and not {"image", "ref_rotations", "ref_root_translation"} <= set(arrays):
            raise P.ProtocolError(P.BAD_REQUEST, "a video job needs arrays 'image' (the reference image's bytes), "
                                                 "'ref_rotations' and 'ref_root_translation' (the dance)")
        waiting = [j for j in self.store.jobs.values() if j.state in (QUEUED, RUNNING)]
        if len(waiting) >= self.cfg.queue_limit:
            raise P.ProtocolError(P.BUSY, f"the server is busy ({len(waiting)} jobs waiting); try again later")
        mine = sum(1 for j in waiting if j.owner == user)
        if self.allow is not None and mine >= self.cfg.client_queue_limit:  # with keys, clients are told apart
            raise P.ProtocolError(P.BUSY, f"this client has {mine} jobs waiting, the most one client may; submit "
                                          "more when one has finished")
        self.store.keep_newest(user, self.cfg.jobs_per_client - 1)
        job = self.store.create(kind, options, arrays, request, digest, owner=user)
        self._watch(job, identity)
        self._send(identity, P.Message("accepted", {"job": job.id, "state": job.state, "token": job.token}), request)
        self.executor.submit(job, partial(self.store.inputs, job.id))  # read back when it starts: none held queued

    # --- executor events ---------------------------------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        job = self.store.get(ev.job_id)
        if job is None or job.state in FINISHED:
            return
        if ev.kind == "progress":
            if job.state != RUNNING:
                job.state = RUNNING
                job.attempts += 1
            job.stage, job.step, job.total = ev.stage, ev.step, ev.total
            if ev.step in (0, ev.total):  # persist at stage edges; progress in between lives in memory
                self.store.save(job)
            self._notify(job, P.Message("progress", {"job": job.id, "stage": ev.stage, "step": ev.step,
                                                     "total": ev.total}))
        elif ev.kind == "restarted":  # queued again: the next start counts as a new attempt
            job.state, job.stage, job.step, job.total = QUEUED, "restarted", 0, 0
            self.store.save(job)
            self._notify(job, P.Message("progress", {"job": job.id, "stage": "restarted", "step": 0, "total": 0,
                                                     "attempt": job.attempts, "message": ev.message}))
        elif ev.kind == "result":
            self.store.save_result(job, ev.fields or {}, ev.arrays or {})
            for m in self._result_messages(job):
                self._notify(job, m)
        elif ev.kind == "cancelled":
            self._finish(job, CANCELLED)
            self._notify(job, P.Message("cancelled", {"job": job.id}))
        else:
            self._finish(job, FAILED, ev.error_code, ev.message)
            self._notify(job, P.error(ev.error_code, ev.message, job=job.id))

    # --- loop ---------------------------------------------------------------------------------------------------

    def serve(self, poll_ms: int = 5) -> None:
        """Run until stop()."""
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        try:
            self._loop(poller, poll_ms)
        finally:  # a loop that dies still frees its port and its ZAP handler
            self.close()

    def _loop(self, poller: zmq.Poller, poll_ms: int) -> None:
        last_expiry = last_status = 0.0
        while self._running:
            ready = dict(poller.poll(poll_ms))
            if self.sock in ready:
                for _ in range(256):  # bounded batch so executor events are not starved
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    if len(frames) < 2:
                        continue
                    user = _user_id(frames[1]) if self.allow is not None else ""
                    self.handle(bytes(frames[0].buffer), [f.buffer for f in frames[1:]], user)
            for ev in self.executor.events():
                self._on_event(ev)
            if time.monotonic() - last_status >= P.STATUS_INTERVAL_S:
                if self.allow is not None:
                    self.allow.refresh()  # a key removed from authorized/ stops working within an interval
                self._send_status()
                last_status = time.monotonic()
            if time.time() - last_expiry > 60:
                self.store.expire()
                self.uploads.expire()
                last_expiry = time.time()

    def _send_status(self) -> None:
        """Tell the watchers of every queued or running job how it stands (queued: its place in the queue)."""
        waiting = sorted((j for j in self.store.jobs.values() if j.state == QUEUED), key=lambda j: j.created)
        place = {j.id: i + 1 for i, j in enumerate(waiting)}
        for job in list(self.store.jobs.values()):
            if job.state not in (QUEUED, RUNNING) or not self.subscribers.get(job.id):
                continue
            fields = {"job": job.id, "state": job.state, "stage": job.stage, "step": job.step, "total": job.total,
                      "attempt": job.attempts}
            if job.state == QUEUED:
                fields["position"] = place.get(job.id, 0)
            self._notify(job, P.Message("status", fields))

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        """Free the workers, the port and the ZAP handler (safe twice: `serve` calls it on its way out)."""
        try:
            self.executor.shutdown()
        finally:  # the port and the ZAP handler are freed even if a worker will not stop
            if self.sock is not None:
                self.sock.close(0)
            if self.auth is not None:
                self.auth.stop()
            self.auth = None
            if self._own_ctx and not self.ctx.closed:
                self.ctx.term()
