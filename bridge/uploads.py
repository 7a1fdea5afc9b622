"""The client's side of chunked uploads: big arrays sent ahead of their submit, resumable, each chunk answered.

`BridgeClient` holds a submit whose arrays include one above protocol.INLINE_BYTES, uploads those arrays chunk by
chunk (one chunk in flight, each answered with how much the server holds), and sends the submit, naming them by
hash, once all are complete. Nothing blocks: `next_messages()` says what to send at each tick.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bridge import protocol as P


@dataclass
class Upload:
    """One array's bytes on their way to the server."""

    sha: str
    data: np.ndarray  # the raw bytes (uint8, flat)
    received: int = 0  # what the server said it holds
    in_flight: bool = False
    asked: bool = False  # the server was asked what it holds (a song it has already costs one round trip, no bytes)

    @property
    def complete(self) -> bool:
        return self.asked and self.received >= self.data.nbytes

    def next_chunk(self, chunk_bytes: int = P.UPLOAD_CHUNK_BYTES) -> P.Message:
        """The message that asks what the server holds (first), then each that sends the chunk at its offset."""
        fields = {"upload": self.sha, "size": int(self.data.nbytes), "offset": self.received}
        if not self.asked:
            return P.Message("upload", fields)
        end = min(self.received + chunk_bytes, self.data.nbytes)
        return P.Message("upload", fields, {"chunk": self.data[self.received:end]})


@dataclass
class HeldSubmit:
    """A submit waiting for its uploads."""

    msg: P.Message
    shas: list[str]
    total: int = 0
    reported: int = -1  # bytes last reported to the caller


def raw_bytes(arr: np.ndarray) -> np.ndarray:
    """An array's bytes as a flat uint8 view (C order)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def split_arrays(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, np.ndarray]]]:
    """(arrays sent inline, {name: (sha256, bytes)} of those to upload first)."""
    inline, big = {}, {}
    for name, arr in arrays.items():
        if arr.nbytes <= P.INLINE_BYTES:
            inline[name] = arr
        else:
            data = raw_bytes(arr)
            big[name] = (hashlib.sha256(memoryview(data)).hexdigest(), data)
    return inline, big


@dataclass
class Uploads:
    """Every upload of this client and the submits held for them."""

    by_sha: dict[str, Upload] = field(default_factory=dict)
    held: dict[str, HeldSubmit] = field(default_factory=dict)  # submit's request id -> it

    def hold(self, request: str, kind: str, options: dict, arrays: dict[str, np.ndarray]) -> bool:
        """Hold the submit `request` while its big arrays upload; False when it has none (send it now)."""
        inline, big = split_arrays(arrays)
        if not big:
            return False
        refs = []
        for name, (sha, data) in big.items():
            self.by_sha.setdefault(sha, Upload(sha, data)).asked = False  # held since? ask again (uploads expire)
            refs.append({"name": name, "upload": sha, "dtype": arrays[name].dtype.name,
                         "shape": list(arrays[name].shape)})
        msg = P.Message("submit", {"kind": kind, "options": options, "uploads": refs, "request": request}, inline)
        shas = [r["upload"] for r in refs]
        self.held[request] = HeldSubmit(msg, shas, sum(self.by_sha[sha].data.nbytes for sha in set(shas)))
        return True

    def on_reply(self, sha: str, msg: P.Message) -> None:
        """Take the answer to a chunk of upload `sha` ('uploaded': how much the server holds)."""
        up = self.by_sha.get(sha)
        if up is None:
            return
        up.in_flight = False
        if msg.type == "uploaded" and isinstance(msg.get("received"), int):
            up.received, up.asked = msg.get("received"), True

    def to_send(self) -> list[P.Message]:
        """Chunks to send now (one per upload not in flight) and the submits whose uploads are all complete."""
        out = []
        for up in self.by_sha.values():
            if not up.complete and not up.in_flight and any(up.sha in h.shas for h in self.held.values()):
                up.in_flight = True
                out.append(up.next_chunk())
        for request, held in list(self.held.items()):
            if all(self.by_sha[sha].complete for sha in held.shas):
                del self.held[request]
                out.append(held.msg)
        return out

    def progress(self) -> list[P.Message]:
        """A local 'uploading' event for each held submit whose bytes moved since the last call."""
        events = []
        for request, held in self.held.items():
            sent = sum(min(self.by_sha[sha].received, self.by_sha[sha].data.nbytes) for sha in set(held.shas))
            if sent != held.reported:
                held.reported = sent
                events.append(P.Message("uploading", {"request": request, "sent": sent, "total": held.total,
                                                      "local": True}))
        return events

    def forget(self, sha: str) -> None:
        """Drop an upload the server refused for good (its held submits fail with it)."""
        self.by_sha.pop(sha, None)
        for request in [r for r, h in self.held.items() if sha in h.shas]:
            del self.held[request]
