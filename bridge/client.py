"""Clients for the job server.

`BridgeClient` never blocks: Blender calls `tick()` from one timer and gets back the events that arrived. It follows
the lazy-pirate pattern of the ZeroMQ guide: a request that gets no answer in time makes the client close its socket,
reconnect with backoff, re-send what is unanswered (a submit carries a request id, so the server never doubles a job)
and re-attach to the jobs it follows. `Client` is the blocking convenience wrapper for scripts and the CLI.
"""

from __future__ import annotations

import math
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zmq

from bridge import protocol as P
from bridge.uploads import Uploads

CLIENT_VERSION = "0.1.0"
# a followed job's server that stays silent this long (3 status intervals) is asked about the job again
REATTACH_AFTER_S = 3 * P.STATUS_INTERVAL_S


@dataclass
class _Pending:
    msg: P.Message
    sent: float
    request: str
    timeout: float  # seconds without an answer before it is sent again on a new connection


@dataclass
class BridgeClient:
    """Non-blocking client: `submit_motion`/`cancel`/`attach` queue requests, `tick()` moves messages."""

    endpoint: str
    timeout: float = 3.0  # seconds without any answer before a request is retried on a new connection
    max_backoff: float = 8.0
    server_public_key: bytes | None = None  # CURVE: the server's public key ...
    client_keys: tuple[bytes, bytes] | None = None  # ... and this client's (public, secret) pair on its allow-list
    limits: P.Limits = field(default_factory=P.Limits)

    def __post_init__(self) -> None:
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.last_heard = time.monotonic()  # when the server last said anything
        self.next_reattach = 0.0
        self.ctx = zmq.Context.instance()
        self.pending: dict[str, _Pending] = {}  # request id -> request awaiting its first answer
        self.jobs: set[str] = set()  # jobs we follow (re-attached after a reconnect)
        self.tokens: dict[str, str] = {}  # job -> its owner token (from 'accepted'): needed to cancel or attach
        self.backoff = 0.5
        self.next_retry = 0.0
        self.reconnects = 0
        self.uploads = Uploads()  # big arrays on their way, and the submits that wait for them
        self._connect()

    def _connect(self) -> None:
        self._close_socket()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if self.server_public_key:
            public, secret = self.client_keys or zmq.curve_keypair()
            self.sock.curve_serverkey = self.server_public_key
            self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
        # The connection is watched: a refused key (CURVE) is otherwise silence, to be said in a sentence, and a
        # dropped connection loses the request in flight (an upload's chunk), to be sent again at once rather than
        # after its answer's timeout.
        self.monitor = self.sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_DISCONNECTED)
        self.sock.connect(self.endpoint)

    def _close_socket(self) -> None:
        if getattr(self, "monitor", None) is not None:
            self.sock.disable_monitor()
            self.monitor.close(0)
        self.monitor = None
        if self.sock is not None:
            self.sock.close(0)

    def _connection_events(self) -> list[P.Message]:
        """An error event when the server refused this client's key in the handshake (CURVE + allow-list); a dropped
        connection makes what is unanswered due for sending again."""
        if self.monitor is None:
            return []
        refused = dropped = False
        while self.monitor.poll(0):
            try:
                event = struct.unpack("=H", self.monitor.recv_multipart(zmq.NOBLOCK)[0][:2])[0]
            except (zmq.Again, struct.error):
                break
            refused |= event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            dropped |= event == zmq.EVENT_DISCONNECTED
        if dropped and not refused:
            for p in self.pending.values():
                p.sent = -math.inf
        if not refused:
            return []
        self.pending.clear()  # retrying with the same key is refused again
        return [P.error(P.FORBIDDEN, f"{self.endpoint} refused this client's key: it is not on the server's "
                                     "allow-list (ask whoever runs the server to add your .key to authorized/)",
                        local=True)]

    # --- requests --------------------------------------------------------------------------------------------------

    def _request(self, msg: P.Message, request: str | None = None) -> str:
        request = request or uuid.uuid4().hex
        msg.fields["request"] = request
        # a chunk is given the time the slowest link needs to carry it, so a slow upload is never cut and resent
        wait = self.timeout + sum(a.nbytes for a in msg.arrays.values()) / P.UPLOAD_MIN_RATE
        self.pending[request] = _Pending(msg, time.monotonic(), request, wait)
        self._send(msg)
        return request

    def _submit(self, kind: str, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        """Send a submit now, or hold it while its big arrays upload (see bridge/uploads.py); its request id."""
        request = uuid.uuid4().hex
        if self.uploads.hold(request, kind, options, arrays):
            self._pump_uploads()
            return request
        return self._request(P.Message("submit", {"kind": kind, "options": options}, arrays), request)

    def _pump_uploads(self) -> None:
        """Send the next chunk of each upload, and the submits whose uploads are complete."""
        for msg in self.uploads.to_send():
            self._request(msg, msg.get("request"))

    def _send(self, msg: P.Message) -> None:
        assert self.sock is not None
        try:
            self.sock.send_multipart(P.encode(msg), zmq.NOBLOCK, copy=False)
        except zmq.Again:
            pass  # not connected yet: the retry path re-sends

    def hello(self) -> str:
        return self._request(P.Message("hello", {"client_version": CLIENT_VERSION,
                                                 "capabilities": ["motion", "video", "edit", "parts"]}))

    def submit_motion(self, audio: bytes, audio_name: str = "song.wav", arrays: dict[str, np.ndarray] | None = None,
                      **options: Any) -> str:
        """Queue a motion job for `audio` (the file's bytes); options: beta, seed, steps, start, end, edit.

        Edits: options["edit"] = {"keep_frames": [[a, b], ...], "keep_joints": [...], "path": True} with the dance to
        edit in `arrays` (see `edit_arrays`) and/or a root path array "path_xz" (frames, 2).
        """
        opts = {"audio_name": audio_name, **options}
        arrays = {"audio": np.frombuffer(audio, dtype=np.uint8), **(arrays or {})}
        self._check_size(audio_name, arrays)
        return self._submit("motion", opts, arrays)

    def _check_size(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Refuse here, in a sentence, what the server would drop unread (it closes the connection: silence)."""
        mb = 1024 * 1024
        for key, arr in arrays.items():
            if arr.nbytes > self.limits.max_array_bytes:
                what = f"the song file {name}" if key == "audio" else f"the array {key!r}"
                raise BridgeFailure(P.TOO_LARGE, f"{what} is {arr.nbytes / mb:.0f} MB; a server takes at most "
                                                 f"{self.limits.max_array_bytes / mb:.0f} MB (send a section, or "
                                                 "the song as mp3/ogg)")
        total = sum(a.nbytes for a in arrays.values())
        if total > self.limits.max_total_bytes:
            raise BridgeFailure(P.TOO_LARGE, f"the request is {total / mb:.0f} MB; a server takes at most "
                                             f"{self.limits.max_total_bytes / mb:.0f} MB at once")

    def submit_job(self, kind: str, options: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> str:
        """Queue a job of any kind the server runs (e.g. "video") with its options and arrays."""
        self._check_size(kind, dict(arrays or {}))
        return self._submit(kind, dict(options), dict(arrays or {}))

    def cancel(self, job: str, token: str | None = None) -> str:
        """Ask the server to cancel a job (the token from its submit, or one given for a job submitted elsewhere)."""
        if token:
            self.tokens[job] = token
        return self._request(P.Message("cancel", {"job": job, "token": self.tokens.get(job, "")}))

    def attach(self, job: str, token: str | None = None) -> str:
        """Follow a job again (after a reconnect, or from another process with the job's token)."""
        if token:
            self.tokens[job] = token
        self.jobs.add(job)
        return self._request(P.Message("attach", {"job": job, "token": self.tokens.get(job, "")}))

    def ping(self) -> str:
        return self._request(P.Message("ping"))

    # --- the tick ---------------------------------------------------------------------------------------------------

    def tick(self, max_messages: int = 64, timeout_ms: int = 0) -> list[P.Message]:
        """Receive up to `max_messages` events (waiting at most `timeout_ms` for the first) and run retries."""
        assert self.sock is not None
        events: list[P.Message] = []
        if timeout_ms and not self.sock.poll(timeout_ms, zmq.POLLIN):
            self._maybe_retry()
            return self._connection_events() + self._reattach_if_silent()
        for _ in range(max_messages):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                msg = P.decode([f.buffer for f in frames], self.limits, expect="reply")
            except P.ProtocolError as exc:
                msg = P.error(exc.code, f"unreadable reply from the server: {exc.message}")
            self._on_reply(msg)
            events.append(msg)
        events += self.uploads.progress()  # before a finished upload's submit leaves the held ones
        self._pump_uploads()
        self._maybe_retry()
        return events + self._connection_events() + self._reattach_if_silent()

    def _on_reply(self, msg: P.Message) -> None:
        self.backoff = 0.5
        self.last_heard = time.monotonic()
        job = msg.get("job")
        if msg.type == "accepted" and isinstance(job, str):
            self.jobs.add(job)
            if isinstance(msg.get("token"), str):
                self.tokens[job] = msg.get("token")
        last_part = msg.get("part", 0) == msg.get("parts", 1) - 1
        if (msg.type == "result" and last_part) or msg.type == "cancelled" or (msg.type == "error" and job):
            self.jobs.discard(job)
        request = msg.get("request")
        if isinstance(request, str):
            asked = self.pending.pop(request, None)  # the server echoes the request id of every direct reply
            if asked is not None and asked.msg.type == "upload":
                self.uploads.on_reply(asked.msg.get("upload"), msg)
                if msg.type == "error":  # refused for good (too big, no space): its submits fail with this error
                    self.uploads.forget(asked.msg.get("upload"))

    def _maybe_retry(self) -> None:
        now = time.monotonic()
        stale = [p for p in self.pending.values() if now - p.sent > p.timeout]
        if not stale or now < self.next_retry:
            return
        # Lazy pirate: the connection may be dead; start a new one, re-send and re-attach.
        self._connect()
        self.reconnects += 1
        for p in self.pending.values():
            p.sent = now
            self._send(p.msg)
        for job in self.jobs:
            if not any(p.msg.type == "attach" and p.msg.get("job") == job for p in self.pending.values()):
                self._send(P.Message("attach", {"job": job, "token": self.tokens.get(job, ""),
                                                "request": uuid.uuid4().hex}))
        self.next_retry = now + self.backoff
        self.backoff = min(self.backoff * 2, self.max_backoff)

    def _reattach_if_silent(self) -> list[P.Message]:
        """Jobs followed while the server says nothing for REATTACH_AFTER_S (it tells watchers how each job stands
        every STATUS_INTERVAL_S): a restarted server does not know this connection, so attach again; the retry
        path reconnects if the attach goes unanswered. Returns a 'status' event per job for the caller to show,
        marked `local` (it came from this client, not the server)."""
        now = time.monotonic()
        if not self.jobs or now - self.last_heard < REATTACH_AFTER_S or now < self.next_reattach:
            return []
        self.next_reattach = now + REATTACH_AFTER_S
        events = []
        for job in sorted(self.jobs):
            if not any(p.msg.type == "attach" and p.msg.get("job") == job for p in self.pending.values()):
                self._request(P.Message("attach", {"job": job, "token": self.tokens.get(job, "")}))
            events.append(P.Message("status", {"job": job, "state": "reconnecting", "stage": "waiting for the server",
                                               "silent_s": round(now - self.last_heard, 1), "local": True}))
        return events

    def close(self) -> None:
        self._close_socket()
        self.sock = None


def edit_arrays(reference=None, path_xz: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Arrays that carry an edit: the dance to edit (a rigs.Motion) and/or a root path (frames, 2)."""
    out: dict[str, np.ndarray] = {}
    if reference is not None:
        out["ref_rotations"] = reference.rotations
        out["ref_root_translation"] = reference.root_translation
    if path_xz is not None:
        out["path_xz"] = np.asarray(path_xz, dtype=np.float32)
    return out


def key_arrays(frames, rotations, joints, root) -> dict[str, np.ndarray]:
    """Arrays that carry keyed poses: frames (K,), local quaternions (K, 24, 4), keyed joints (K, 24), root (K, 3)."""
    return {"key_frames": np.asarray(frames, dtype=np.int64), "key_rotations": np.asarray(rotations, np.float32),
            "key_joints": np.asarray(joints, dtype=bool), "key_root": np.asarray(root, dtype=np.float32)}


class BridgeFailure(ConnectionError):
    """The server answered with an error, or never answered."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Client:
    """Blocking client for scripts and the CLI."""

    def __init__(self, endpoint: str, timeout: float = 3.0, give_up_after: float = P.SILENCE_LIMIT_S,
                 server_public_key: bytes | None = None, client_keys: tuple[bytes, bytes] | None = None):
        self.bridge = BridgeClient(endpoint, timeout=timeout, server_public_key=server_public_key,
                                   client_keys=client_keys)
        self.give_up_after = give_up_after

    def _wait(self, accept: Callable[[P.Message], bool], on_event: Callable[[P.Message], None] | None = None,
              deadline: float | None = None) -> P.Message:
        last_heard = time.monotonic()
        while True:
            for msg in self.bridge.tick(timeout_ms=50):
                if msg.get("local") and msg.type != "error":  # this client's own note: the server is still silent
                    if on_event:
                        on_event(msg)
                    continue
                last_heard = time.monotonic()
                if on_event:
                    on_event(msg)
                if msg.type == "error" and not accept(msg):
                    raise BridgeFailure(msg.get("code", "error"), msg.get("message", "the server reported an error"))
                if accept(msg):
                    return msg
            # an upload's chunk may take the slowest link's time to be answered
            uploading = bool(self.bridge.uploads.held)
            patience = self.give_up_after + (P.UPLOAD_CHUNK_BYTES / P.UPLOAD_MIN_RATE if uploading else 0)
            if time.monotonic() - last_heard > patience:
                raise BridgeFailure("timeout", f"no answer from {self.bridge.endpoint} for {self.give_up_after:.0f} s")
            if deadline and time.monotonic() > deadline:
                raise BridgeFailure("timeout", "the job took too long")

    def hello(self) -> P.Message:
        self.bridge.hello()
        return self._wait(lambda m: m.type == "welcome")

    def submit(self, audio_path: Path, **options: Any) -> str:
        """Submit a motion job; returns its id."""
        path = Path(audio_path)
        self.bridge.submit_motion(path.read_bytes(), path.name, **options)
        return self._wait(lambda m: m.type == "accepted").get("job")

    def submit_request(self, audio_path: Path, request, on_upload: Callable[[int, int], None] | None = None) -> str:
        """Submit a bridge.request.DanceRequest (one take) for the song at `audio_path`; returns the job's id.

        `on_upload(sent, total)` hears how a big song's upload goes (bytes), before the job exists."""
        from bridge.request_wire import to_wire

        options, arrays = to_wire(request)
        path = Path(audio_path)
        self.bridge.submit_motion(path.read_bytes(), path.name, arrays=arrays, **options)
        return self._wait(lambda m: m.type == "accepted",
                          lambda m: on_upload(m.get("sent"), m.get("total")) if on_upload and m.type == "uploading"
                          else None).get("job")

    def wait_result(self, job: str, on_progress: Callable[[P.Message], None] | None = None) -> P.Message:
        """Block until the job's result (raises BridgeFailure on error or cancellation)."""
        def accept(m: P.Message) -> bool:
            if m.get("job") != job:
                return False
            if m.type == "cancelled":
                raise BridgeFailure("cancelled", f"job {job} was cancelled")
            return m.type == "result"

        return self._wait(accept, lambda m: on_progress(m) if on_progress and m.type == "progress" else None)

    def render_video(self, motion, image_path: Path, on_progress=None, **options: Any) -> np.ndarray:
        """Submit a video job (a rigs.Motion and a reference image) and gather the frames, streamed in parts."""
        arrays = {"image": np.frombuffer(Path(image_path).read_bytes(), dtype=np.uint8),
                  "ref_rotations": motion.rotations, "ref_root_translation": motion.root_translation}
        self.bridge.submit_job("video", {"fps": motion.fps, **options}, arrays)
        job = self._wait(lambda m: m.type == "accepted").get("job")
        parts: dict[int, np.ndarray] = {}

        def accept(m: P.Message) -> bool:
            if m.get("job") != job:
                return False
            if m.type == "cancelled":
                raise BridgeFailure("cancelled", f"job {job} was cancelled")
            if m.type == "result":
                parts[int(m.get("part", 0))] = np.array(m.arrays["frames"])
                return len(parts) == int(m.get("parts", 1))
            return False

        self._wait(accept, lambda m: on_progress(m) if on_progress and m.type == "progress" else None)
        return np.concatenate([parts[i] for i in sorted(parts)])

    def generate_motion(self, audio_path: Path, on_progress=None, **options: Any):
        """Submit and wait: the generated rigs.Motion."""
        job = self.submit(audio_path, **options)
        return P.motion_from_message(self.wait_result(job, on_progress))

    def close(self) -> None:
        self.bridge.close()
