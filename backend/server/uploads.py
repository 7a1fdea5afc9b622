"""Big arrays (songs above all) uploaded in chunks ahead of their submit, kept on disk by content hash.

A chunk is appended only at the offset the server already holds, so a chunk sent twice (a retry after a reconnect)
is never stored twice, and a client that lost its connection asks how much arrived and resumes from there, even across
a server restart. A complete upload is checked against its hash before any job may use it. Uploads untouched for
UPLOAD_TTL_S are deleted, and all of them together never take more than the store's capacity.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from bridge import protocol as P

UPLOAD_TTL_S = 3600.0  # a song's takes (one job each) reuse its upload within this time
CAPACITY_BYTES = 2 * 1024 ** 3
_SHA = re.compile(r"^[0-9a-f]{64}$")


class UploadStore:
    """Uploads under `root` (0700): `<sha>.part` while arriving, `<sha>.bin` once whole and checked."""

    def __init__(self, root: Path, limits: P.Limits, capacity_bytes: int = CAPACITY_BYTES,
                 ttl_s: float = UPLOAD_TTL_S):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        self.limits, self.capacity, self.ttl = limits, capacity_bytes, ttl_s

    def _paths(self, sha: Any) -> tuple[Path, Path]:
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise P.ProtocolError(P.BAD_REQUEST, "an upload is named by the sha256 of its bytes (64 lowercase hex "
                                                 "digits)")
        return self.root / f"{sha}.part", self.root / f"{sha}.bin"

    def used(self) -> int:
        """Bytes held by all uploads, partial and complete."""
        return sum(p.stat().st_size for p in self.root.iterdir() if p.suffix in (".part", ".bin"))

    def offer(self, sha: Any, size: Any, offset: Any, chunk: np.ndarray | None) -> tuple[int, bool]:
        """Take a chunk (None: only ask) and return (bytes held, complete)."""
        part, whole = self._paths(sha)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= self.limits.max_array_bytes:
            raise P.ProtocolError(P.TOO_LARGE if isinstance(size, int) and size > 0 else P.BAD_REQUEST,
                                  f"an upload's size must be 1 to {self.limits.max_array_bytes} bytes, got {size!r}")
        if whole.exists():
            whole.touch()
            return size, True
        held = part.stat().st_size if part.exists() else 0
        if chunk is None or offset != held:  # a question, or a chunk sent again or out of order: say where to go on
            return held, False
        data = np.ascontiguousarray(chunk).view(np.uint8).reshape(-1)
        if held + data.nbytes > size:
            raise P.ProtocolError(P.BAD_REQUEST, f"the chunk at {offset} runs past the upload's {size} bytes")
        if self.used() + data.nbytes > self.capacity:
            raise P.ProtocolError(P.BUSY, "the server's upload space is full; try again later")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as fh:
            fh.write(memoryview(data))
        held += data.nbytes
        if held < size:
            return held, False
        if _sha256(part) != sha:
            part.unlink(missing_ok=True)
            raise P.ProtocolError(P.BAD_REQUEST, "the uploaded bytes do not match their sha256; send them again")
        part.replace(whole)
        return size, True

    def array(self, ref: Any) -> tuple[str, np.ndarray]:
        """The (name, array) a submit's upload reference names: {name, upload, dtype, shape}."""
        if not isinstance(ref, dict):
            raise P.ProtocolError(P.BAD_MESSAGE, "an upload reference is a map of name, upload, dtype and shape")
        name, dtype, shape = ref.get("name"), ref.get("dtype"), ref.get("shape")
        _, whole = self._paths(ref.get("upload"))
        if not isinstance(name, str) or not name:
            raise P.ProtocolError(P.BAD_MESSAGE, "an upload reference needs the array's name")
        if not isinstance(dtype, str) or dtype not in P.DTYPES:
            raise P.ProtocolError(P.BAD_MESSAGE, f"array {name!r}: dtype {dtype!r} is not allowed")
        if (not isinstance(shape, list) or len(shape) > self.limits.max_dims
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2 ** 40 for d in shape)):
            raise P.ProtocolError(P.BAD_MESSAGE, f"array {name!r}: bad shape {shape!r}")
        if not whole.exists():
            raise P.ProtocolError(P.BAD_REQUEST, f"array {name!r} names an upload this server does not hold "
                                                 "(incomplete or expired): upload it again")
        size = whole.stat().st_size
        if math.prod(shape) * np.dtype(dtype).itemsize != size:
            raise P.ProtocolError(P.BAD_MESSAGE, f"array {name!r}: {size} uploaded bytes do not make {dtype} {shape}")
        whole.touch()
        return name, np.fromfile(whole, dtype=dtype).reshape(shape)

    def arrays(self, refs: Any) -> dict[str, np.ndarray]:
        """The arrays a submit names by upload (none when it names none)."""
        if refs is None:
            return {}
        if not isinstance(refs, list) or len(refs) > self.limits.max_arrays:
            raise P.ProtocolError(P.BAD_MESSAGE, f"'uploads' must be a list of at most {self.limits.max_arrays} "
                                                 "references")
        return dict(self.array(ref) for ref in refs)

    def expire(self, now: float | None = None) -> int:
        """Delete uploads untouched for the store's TTL; returns how many."""
        now = time.time() if now is None else now
        gone = 0
        for path in self.root.iterdir():
            try:
                if now - path.stat().st_mtime > self.ttl:
                    path.unlink()
                    gone += 1
            except OSError:
                continue
        return gone


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
