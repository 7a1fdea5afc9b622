"""The options a job may carry, checked field by field before anything is stored, counted or run.

Whatever a client sends in `options` ends up in job.json and in the runners. A value JSON cannot hold (bytes, an
ext type, a timestamp), a nested structure where a number belongs, or a name the runners do not know is refused here
with a sentence naming the field, so no malformed submit reaches the job store (where it used to count as queued
and leave an orphan folder) or a runner (where it used to surface as `internal`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from bridge import protocol as P

Check = Callable[[str, Any], Any]


def _fail(name: str, what: str, value: Any) -> None:
    shown = repr(value)
    raise P.ProtocolError(P.BAD_REQUEST, f"option {name!r} must be {what}, got {shown[:60]}")


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    def check(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(name, "a finite number", value)
        if not lo <= value <= hi:
            _fail(name, f"between {lo:g} and {hi:g}", value)
        return float(value)
    return check


def integer(lo: int = -(2 ** 53), hi: int = 2 ** 53) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(name, "a whole number", value)
        if not lo <= value <= hi:
            _fail(name, f"between {lo} and {hi}", value)
        return int(value)
    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(name, "true or false", value)
    return value


def text(limit: int = 256) -> Check:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit:
            _fail(name, f"a string of at most {limit} characters", value)
        return value
    return check


def choice(*allowed: str) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            _fail(name, "one of " + ", ".join(repr(a) for a in allowed), value)
        return value
    return check


def optional(inner: Check) -> Check:
    def check(name: str, value: Any) -> Any:
        return None if value is None else inner(name, value)
    return check


def list_of(inner: Check, limit: int) -> Check:
    def check(name: str, value: Any) -> list:
        if not isinstance(value, list) or len(value) > limit:
            _fail(name, f"a list of at most {limit} items", value)
        return [inner(f"{name}[{i}]", v) for i, v in enumerate(value)]
    return check


def fields(spec: dict[str, Check]) -> Check:
    def check(name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            _fail(name, "a map", value)
        return _checked(value, spec, prefix=f"{name}.")
    return check


def _frame_range(name: str, value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) != 2:
        _fail(name, "a [first, last] pair of frame numbers", value)
    return [integer(0, 10 ** 7)(f"{name}[0]", value[0]), integer(0, 10 ** 7)(f"{name}[1]", value[1])]


def _matrix4(name: str, value: Any) -> list[list[float]]:
    if not isinstance(value, list) or len(value) != 4 or not all(isinstance(r, list) and len(r) == 4 for r in value):
        _fail(name, "a 4x4 matrix (four rows of four numbers)", value)
    return [list_of(number(), 4)(f"{name}[{i}]", row) for i, row in enumerate(value)]


EDIT = {
    "ref_fps": number(1.0, 1000.0),
    "keep_frames": list_of(_frame_range, 10_000),
    "keep_joints": list_of(text(64), 64),
    "keep_root": boolean,
    "path": boolean,
    "transitions": list_of(integer(0, 10 ** 7), 10_000),  # joins of a comp: the frames around each are regenerated
    "transition_frames": integer(1, 300),  # frames regenerated on each side of a join
}

KEYS = {
    "snap_to_beats": boolean,  # move each keyed pose to its nearest music beat first
}

MOTION = {
    "audio_name": text(),
    "beta": number(),
    "seed": integer(0, 2 ** 63 - 1),
    "steps": integer(),
    "start": number(0.0),
    "end": optional(number(0.0)),
    "loop": number(0.0, 60.0),
    "in_place": boolean,
    "lock_feet": boolean,
    "beat_sync": number(),
    "style": text(32),
    "beat_guidance": number(0.0, 100.0),
    "style_guidance": number(0.0, 20.0),
    "speed_limit": number(0.0, 100.0),  # m/s; 0: off (SampleOptions.validate refuses 0-1)
    "fps": number(1.0, 1000.0),
    "edit": optional(fields(EDIT)),
    "keys": optional(fields(KEYS)),  # dance through keyed poses (arrays key_frames, key_rotations, key_joints, key_root)
    "repeat": choice("off", "same", "mirror"),  # repeated sections dance their first occurrence's phrase
}

VIDEO = {
    "fps": number(1.0, 1000.0),
    "width": integer(16, 16384),
    "height": integer(16, 16384),
    "steps": integer(1, 1000),
    "segment": integer(1, 10_000),
    "seed": integer(0, 2 ** 63 - 1),
    "camera_matrix": optional(_matrix4),
    "lens": number(0.1, 10_000.0),
    "sensor_width": number(0.1, 1000.0),
}

SCHEMAS = {"motion": MOTION, "video": VIDEO}


def _checked(options: dict, spec: dict[str, Check], prefix: str = "") -> dict:
    unknown = sorted(str(k) for k in options if k not in spec)
    if unknown:
        raise P.ProtocolError(P.BAD_REQUEST, f"unknown option {prefix}{unknown[0]!s:.40}; known: {', '.join(spec)}")
    return {key: spec[key](prefix + key, value) for key, value in options.items()}


def validate_options(kind: str, options: Any) -> dict:
    """The options of a `kind` job, each checked (ProtocolError BAD_REQUEST with a sentence otherwise)."""
    return check_options(kind, options, SCHEMAS)


def check_options(kind: str, options: Any, schemas: dict[str, dict[str, Check]]) -> dict:
    """`validate_options` against other schemas (a server with its own executor declares what its jobs take)."""
    if kind not in schemas:
        raise P.ProtocolError(P.BAD_REQUEST, f"job kind must be one of {tuple(schemas)}, got {kind!r}")
    if not isinstance(options, dict):
        raise P.ProtocolError(P.BAD_REQUEST, "options must be a map")
    checked = _checked(options, schemas[kind])
    if kind == "video" and checked.get("camera_matrix") is not None and not {"lens", "sensor_width"} <= set(checked):
        raise P.ProtocolError(P.BAD_REQUEST, "a camera_matrix needs the camera's lens and sensor_width too")
    return checked
