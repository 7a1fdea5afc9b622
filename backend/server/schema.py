"""The options a job may carry, checked field by field before anything is stored, counted or run.

Whatever a client sends in `options` ends up in job.json and in the runners. A value JSON cannot hold (bytes, an
ext type, a timestamp), a nested structure where a number belongs, or a name the runners do not know is refused here
with a sentence naming the field, so no malformed submit reaches the job store (where it used to count as queued
and leave an orphan folder) or a runner (where it used to surface as `internal`).
"""

from __future__ import annotations

from typing import Any

from bridge import protocol as P
from bridge.checks import Check, OptionError, checked, integer, matrix4, number, optional
from bridge.request_wire import ARRAYS as MOTION_ARRAYS, wire_schema

MOTION = wire_schema()  # derived from bridge.request.DanceRequest: one list of a dance's options

VIDEO = {
    "fps": number(1.0, 1000.0),
    "width": integer(16, 16384),
    "height": integer(16, 16384),
    "steps": integer(1, 1000),
    "segment": integer(1, 10_000),
    "seed": integer(0, 2 ** 63 - 1),
    "camera_matrix": optional(matrix4),
    "lens": number(0.1, 10_000.0),
    "sensor_width": number(0.1, 1000.0),
}

SCHEMAS = {"motion": MOTION, "video": VIDEO}
# the arrays each kind of job may carry: anything else is refused, not stored (a job never reads it)
ARRAYS = {"motion": MOTION_ARRAYS, "video": ("image", "ref_rotations", "ref_root_translation")}


def check_arrays(kind: str, names) -> None:
    """Refuse (BAD_REQUEST, one sentence) an array a `kind` job does not take."""
    allowed = ARRAYS.get(kind)
    unknown = sorted(str(n) for n in names if allowed is not None and n not in allowed)
    if unknown:
        raise P.ProtocolError(P.BAD_REQUEST, f"a {kind} job takes no array named {unknown[0][:40]!r}; it takes "
                                             f"{', '.join(allowed)}")


def validate_options(kind: str, options: Any) -> dict:
    """The options of a `kind` job, each checked (ProtocolError BAD_REQUEST with a sentence otherwise)."""
    return check_options(kind, options, SCHEMAS)


def check_options(kind: str, options: Any, schemas: dict[str, dict[str, Check]]) -> dict:
    """`validate_options` against other schemas (a server with its own executor declares what its jobs take)."""
    if kind not in schemas:
        raise P.ProtocolError(P.BAD_REQUEST, f"job kind must be one of {tuple(schemas)}, got {kind!r}")
    if not isinstance(options, dict):
        raise P.ProtocolError(P.BAD_REQUEST, "options must be a map")
    try:
        checked_options = checked(options, schemas[kind])
    except OptionError as exc:
        raise P.ProtocolError(P.BAD_REQUEST, str(exc)) from None
    if kind == "video" and checked_options.get("camera_matrix") is not None \
            and not {"lens", "sensor_width"} <= set(checked_options):
        raise P.ProtocolError(P.BAD_REQUEST, "a camera_matrix needs the camera's lens and sensor_width too")
    return checked_options
