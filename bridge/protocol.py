"""The wire protocol between Blender (or any client) and the backend server.

A message is a ZeroMQ multipart message: one msgpack header frame, then one raw frame per array. The header is a map
with the protocol version `v`, the message `type`, its fields, and `arrays`: a list of {name, dtype, shape} that
describes the frames that follow, in order. Arrays never go through msgpack or pickle: they travel as their raw
bytes, and every declared size is checked against the limits and against the frame's length before any array is
built. Decoding never trusts the peer: any malformed message raises ProtocolError with a code and a sentence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

# Requests (client -> server) and replies/events (server -> client), with the header fields each must carry.
REQUESTS: dict[str, tuple[str, ...]] = {
    "hello": ("client_version",),  # optional: capabilities (list of what the client can take)
    "submit": ("kind", "options"),
    "cancel": ("job",),
    "attach": ("job",),
    "ping": (),
    # part of a big array (a song) sent ahead of its submit: `upload` is the sha256 (hex) of all `size` bytes, `offset`
    # where the frame "chunk" starts; without the frame it only asks how much the server holds (to resume)
    "upload": ("upload", "size", "offset"),
}
REPLIES: dict[str, tuple[str, ...]] = {
    "welcome": ("server_version", "models", "devices"),
    "accepted": ("job",),
    "progress": ("job", "stage", "step", "total"),
    "result": ("job",),
    "error": ("code", "message"),
    "cancelled": ("job",),
    "status": ("job", "state"),  # sent every STATUS_INTERVAL_S while a job is queued or running
    "pong": (),
    "uploaded": ("upload", "received"),  # the server holds the first `received` bytes (all: `complete` is true)
}
# The server tells every watcher of a queued or running job how it stands at this interval (a queued job its place in
# the queue), so a client can tell a long silent stage (a long song's music analysis, a queue) from a dead server: its
# silence limit is a multiple of this interval.
STATUS_INTERVAL_S = 2.0
SILENCE_LIMIT_S = 15 * STATUS_INTERVAL_S
JOB_KINDS = ("motion", "video")
DTYPES = {"float32", "float64", "int32", "int64", "uint8", "bool"}
# Arrays above INLINE_BYTES (a song, a long dance) are uploaded in chunks of UPLOAD_CHUNK_BYTES before their submit,
# which then names them by hash ("uploads"). So no frame is ever big: a slow link sends each chunk well inside the
# client's answer timeout, an interrupted upload resumes where it stopped, and a stalled peer holds at most one small
# frame of the server's memory (the server's frame limit, Limits.max_frame_bytes, is ZeroMQ's MAXMSGSIZE).
UPLOAD_CHUNK_BYTES = 1024 * 1024
INLINE_BYTES = 1024 * 1024
UPLOAD_MIN_RATE = 32 * 1024  # bytes/s the slowest link is assumed to carry: a chunk's answer is awaited that long

# error codes
BAD_MESSAGE = "bad_message"
BAD_VERSION = "bad_version"
UNKNOWN_TYPE = "unknown_type"
TOO_LARGE = "too_large"
BUSY = "busy"
UNKNOWN_JOB = "unknown_job"
FORBIDDEN = "forbidden"  # the client's key is no longer on the server's allow-list
BAD_REQUEST = "bad_request"
JOB_FAILED = "job_failed"
INTERNAL = "internal"


class ProtocolError(Exception):
    """A message that cannot be accepted; `code` is one of the error codes above."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Size limits checked before anything is allocated."""

    max_header_bytes: int = 64 * 1024
    max_arrays: int = 16
    max_array_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024
    max_dims: int = 6
    max_frame_bytes: int = 4 * 1024 * 1024  # one frame on the wire: a chunk or an inline array (ZeroMQ MAXMSGSIZE)


DEFAULT_LIMITS = Limits()


@dataclass
class Message:
    """A decoded message: its type, header fields and named arrays."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def encode(msg: Message) -> list[bytes | memoryview]:
    """Frames for a message: the msgpack header, then each array's raw bytes (C-contiguous, no copy if already so)."""
    descs, frames = [], []
    for name, arr in msg.arrays.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.name not in DTYPES:
            raise ProtocolError(BAD_MESSAGE, f"array {name!r} has dtype {arr.dtype.name}, not one of {sorted(DTYPES)}")
        descs.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
        frames.append(memoryview(arr).cast("B") if arr.size else b"")
    header = {"v": PROTOCOL_VERSION, "type": msg.type, **msg.fields, "arrays": descs}
    return [msgpack.packb(header, use_bin_type=True), *frames]


def _check_fields(kind: str, header: dict, table: dict[str, tuple[str, ...]]) -> None:
    missing = [f for f in table[kind] if f not in header]
    if missing:
        raise ProtocolError(BAD_MESSAGE, f"'{kind}' message lacks {', '.join(missing)}")


def decode(frames: list[bytes | memoryview], limits: Limits = DEFAULT_LIMITS, expect: str = "request") -> Message:
    """Parse and validate frames; `expect` is 'request' (server side) or 'reply' (client side)."""
    if not frames:
        raise ProtocolError(BAD_MESSAGE, "empty message")
    size = memoryview(frames[0]).nbytes  # checked before the frame is copied
    if size > limits.max_header_bytes:
        raise ProtocolError(TOO_LARGE, f"header of {size} bytes exceeds {limits.max_header_bytes}")
    head = bytes(frames[0])
    try:
        header = msgpack.unpackb(head, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for garbage
        raise ProtocolError(BAD_MESSAGE, f"header is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError(BAD_MESSAGE, "header is not a map")
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # 1.0 and True are not version 1
        raise ProtocolError(BAD_VERSION, f"protocol version {version!r} is not supported; this side speaks "
                                         f"version {PROTOCOL_VERSION}")
    kind = header.get("type")
    table = REQUESTS if expect == "request" else REPLIES
    if not isinstance(kind, str) or kind not in table:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {kind!r}; expected one of {sorted(table)}")
    _check_fields(kind, header, table)
    descs = header.get("arrays", [])
    if not isinstance(descs, list) or len(descs) > limits.max_arrays:
        raise ProtocolError(BAD_MESSAGE, f"'arrays' must be a list of at most {limits.max_arrays} descriptions")
    if len(descs) != len(frames) - 1:
        raise ProtocolError(BAD_MESSAGE, f"header describes {len(descs)} arrays but {len(frames) - 1} frames follow")
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for desc, frame in zip(descs, frames[1:]):
        if not isinstance(desc, dict):
            raise ProtocolError(BAD_MESSAGE, "array description is not a map")
        name, dtype, shape = desc.get("name"), desc.get("dtype"), desc.get("shape")
        if not isinstance(name, str) or not name or name in arrays:
            raise ProtocolError(BAD_MESSAGE, f"bad or repeated array name {name!r}")
        if not isinstance(dtype, str) or dtype not in DTYPES:  # a list or map would not even hash
            raise ProtocolError(BAD_MESSAGE, f"array {name!r}: dtype {dtype!r} is not allowed")
        if (not isinstance(shape, list) or len(shape) > limits.max_dims
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2 ** 40 for d in shape)):
            raise ProtocolError(BAD_MESSAGE, f"array {name!r}: bad shape {shape!r}")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > limits.max_array_bytes:
            raise ProtocolError(TOO_LARGE, f"array {name!r} of {nbytes} bytes exceeds {limits.max_array_bytes}")
        total += nbytes
        if total > limits.max_total_bytes:
            raise ProtocolError(TOO_LARGE, f"arrays exceed {limits.max_total_bytes} bytes in total")
        buf = memoryview(frame)
        if expect == "request" and nbytes > limits.max_frame_bytes:
            raise ProtocolError(TOO_LARGE, f"array {name!r} of {nbytes} bytes is over one frame's "
                                           f"{limits.max_frame_bytes}: send it as an upload")
        if buf.nbytes != nbytes:
            raise ProtocolError(BAD_MESSAGE, f"array {name!r}: frame has {buf.nbytes} bytes, shape and dtype say "
                                             f"{nbytes}")
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape) if nbytes else np.zeros(shape, dtype=dtype)
        arrays[name] = arr
    fields = {k: v for k, v in header.items() if k not in ("v", "type", "arrays")}
    return Message(kind, fields, arrays)


def error(code: str, message: str, **fields: Any) -> Message:
    """An error reply."""
    return Message("error", {"code": code, "message": message, **fields})


# --- Motion on the wire ---------------------------------------------------------------------------------------------

def motion_arrays(motion) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header fields and arrays that carry a rigs.Motion."""
    fields = {"fps": float(motion.fps), "joint_names": list(motion.joint_names)}
    arrays = {"rotations": motion.rotations, "root_translation": motion.root_translation}
    if motion.contacts is not None:
        arrays["contacts"] = motion.contacts
    if motion.betas is not None:
        arrays["betas"] = motion.betas
    if motion.root_motion is not None:
        arrays["root_motion"] = motion.root_motion
    return fields, arrays


def motion_from_message(msg: Message):
    """The rigs.Motion in a result message (ProtocolError if it is malformed)."""
    from rigs.motion import Motion

    try:
        return Motion(msg.arrays["rotations"], msg.arrays["root_translation"], fps=float(msg.fields["fps"]),
                      joint_names=tuple(msg.fields["joint_names"]), contacts=msg.arrays.get("contacts"),
                      betas=msg.arrays.get("betas"), root_motion=msg.arrays.get("root_motion"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(BAD_MESSAGE, f"result does not hold a valid motion: {exc}") from None
