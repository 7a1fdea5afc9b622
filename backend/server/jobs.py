"""Jobs and their on-disk store: states, inputs and results survive a server restart and expire by age.

The store holds other people's songs and each job's owner token: its folders are 0700 and its files 0600, whatever
the server's umask, so another account on a shared machine reads none of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class Job:
    """One unit of work and what is known about it."""

    id: str
    kind: str
    options: dict[str, Any]
    request: str = ""  # the client's request id: a resent submit finds the same job instead of doubling it
    token: str = ""  # the owner's secret: needed to cancel or attach (handed out with 'accepted')
    owner: str = ""  # on a CURVE server: the public key (z85) that made the job; only it may use the token
    digest: str = ""  # hash of the submit's content: a resend must match it, a clash of request ids must not
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    stage: str = "queued"
    step: int = 0
    total: int = 0
    attempts: int = 0
    error_code: str = ""
    error_message: str = ""


class JobStore:
    """Jobs under `root/jobs/<id>/`: job.json, the request's arrays (inputs.npz) and the result (result.npz)."""

    def __init__(self, root: Path, ttl_seconds: float = 7 * 24 * 3600):
        self.root = Path(root) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.root.parent, self.root):
            os.chmod(folder, 0o700)
        self.ttl = ttl_seconds
        self.jobs: dict[str, Job] = {}
        for path in self.root.glob("*/job.json"):
            try:
                job = Job(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue  # a half-written job from a crash: skip it rather than refuse to start
            self.jobs[job.id] = job

    def _dir(self, job_id: str) -> Path:
        return self.root / job_id

    def create(self, kind: str, options: dict[str, Any], inputs: dict[str, np.ndarray], request: str = "",
               digest: str = "", owner: str = "") -> Job:
        """A new queued job with its inputs saved and a fresh owner token (bound to `owner`'s key when given)."""
        job = Job(uuid.uuid4().hex[:16], kind, options, request, token=secrets.token_hex(16), digest=digest,
                  owner=owner)
        d = self._dir(job.id)
        d.mkdir(mode=0o700)
        try:
            _write_npz(d / "inputs.npz", inputs)
            self.save(job)
        except BaseException:  # a job that cannot be stored leaves no folder and is never counted
            self.jobs.pop(job.id, None)
            shutil.rmtree(d, ignore_errors=True)
            raise
        return job

    def by_request(self, request: str) -> Job | None:
        """The job a client request id already created, if any."""
        if not request:
            return None
        return next((j for j in self.jobs.values() if j.request == request), None)

    def save(self, job: Job) -> None:
        """Persist the job's state (atomically)."""
        job.updated = time.time()
        text = json.dumps(asdict(job))  # first: a job JSON cannot hold is never registered
        path = self._dir(job.id) / "job.json"
        _write_private(path, text.encode())
        self.jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def inputs(self, job_id: str) -> dict[str, np.ndarray]:
        with np.load(self._dir(job_id) / "inputs.npz", allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save_result(self, job: Job, fields: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Store the result and mark the job done."""
        d = self._dir(job.id)
        _write_npz(d / "result.npz", arrays)
        _write_private(d / "result.json", json.dumps(fields).encode())
        job.state, job.stage = DONE, "done"
        self.save(job)

    def result(self, job_id: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        d = self._dir(job_id)
        fields = json.loads((d / "result.json").read_text())
        with np.load(d / "result.npz", allow_pickle=False) as data:
            return fields, {k: data[k] for k in data.files}

    def expire(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than the time-to-live; returns their ids."""
        now = now or time.time()
        gone = [j.id for j in self.jobs.values() if j.state in FINISHED and now - j.updated > self.ttl]
        for job_id in gone:
            shutil.rmtree(self._dir(job_id), ignore_errors=True)
            del self.jobs[job_id]
        return gone

    def keep_newest(self, owner: str, n: int) -> list[str]:
        """Delete `owner`'s finished jobs beyond its newest `n` (a client flooding the store evicts its own); ids."""
        finished = sorted((j for j in self.jobs.values() if j.owner == owner and j.state in FINISHED),
                          key=lambda j: j.updated, reverse=True)
        gone = [j.id for j in finished[max(0, n):]]
        for job_id in gone:
            shutil.rmtree(self._dir(job_id), ignore_errors=True)
            del self.jobs[job_id]
        return gone

    def unfinished(self) -> list[Job]:
        """Jobs that were queued or running (e.g. when the server stopped), oldest first."""
        return sorted((j for j in self.jobs.values() if j.state not in FINISHED), key=lambda j: j.created)


def submit_digest(kind: str, options: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """A hash of what a submit asks for (kind, options, every array's name, dtype, shape and bytes)."""
    h = hashlib.sha256(kind.encode())
    h.update(json.dumps(options, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def token_matches(job: Job, token: Any, user: str = "") -> bool:
    """Whether `token` is the job's owner token, sent by the key that made the job (constant-time; jobs without a
    token are nobody's to control)."""
    if job.owner and not hmac.compare_digest(job.owner.encode(), str(user).encode()):
        return False
    return bool(job.token) and isinstance(token, str) and hmac.compare_digest(job.token, token)


def _private(path: Path):
    """A new file open for writing that only this account may read (0600 from its creation, not after it)."""
    path.unlink(missing_ok=True)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically as a 0600 file."""
    tmp = path.with_name(path.name + ".part")
    with _private(tmp) as fh:
        fh.write(data)
    tmp.replace(path)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".part")
    with _private(tmp) as fh:
        np.savez(fh, **arrays)
    tmp.replace(path)
