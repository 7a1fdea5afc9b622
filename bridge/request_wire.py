"""A DanceRequest on the wire: the submit's `options` map (checked field by field) and its raw arrays.

Scalars travel only when they differ from their default, so a server from before an option still takes the job.
The dance to edit travels as ref_rotations / ref_root_translation / ref_contacts (its rate as `fps`, and as edit.ref_fps for an
edit), a root path as path_xz (N, 2) with edit.path, keyed poses as key_frames / key_rotations / key_joints /
key_root with a `keys` map, the animator's beat map as beat_map (s in the song). Arrays keep their dtype, so a
request danced through a server is the request danced locally.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bridge import checks as C
from bridge.request import MAX_FRAME, DanceRequest, Edit, KeyedPoses, RequestError, check_value, option_fields

EDIT = {
    "ref_fps": C.number(1.0, 1000.0),
    "keep_frames": C.list_of(C.pair_of(C.integer(0, MAX_FRAME), "a [first, last] pair of frame numbers"), 10_000),
    "keep_joints": C.list_of(C.text(64), 64),
    "keep_root": C.boolean,
    "path": C.boolean,
    "transitions": C.list_of(C.integer(0, MAX_FRAME), 10_000),  # joins of a comp: the frames around each are danced
    "transition_frames": C.integer(1, 300),  # frames regenerated on each side of a join
}
KEYS = {"snap_to_beats": C.boolean}  # move each keyed pose to its nearest music beat first
KEY_ARRAYS = ("key_frames", "key_rotations", "key_joints", "key_root")
# every array a motion job may carry (the song's bytes, the dance to edit, a root path, keyed poses)
ARRAYS = ("audio", "ref_rotations", "ref_root_translation", "ref_contacts", "path_xz", *KEY_ARRAYS, "beat_map")


def _scalar(spec) -> C.Check:
    def check(name: str, value: Any) -> Any:
        return check_value(name, spec, value)
    return check


def wire_schema(cls: type = DanceRequest) -> dict[str, C.Check]:
    """The checks of a motion job's options: every wire option of the request class, then the wire-only ones."""
    schema = {f.name: _scalar(f.metadata["spec"]) for f in option_fields(cls) if f.metadata["spec"].wire}
    schema.update({
        "audio_name": C.text(),  # the user's file name, for messages
        "fps": C.number(1.0, 1000.0),  # the rate of the dance to edit or repeat
        "edit": C.optional(C.fields(EDIT)),
        "keys": C.optional(C.fields(KEYS)),
    })
    return schema


def to_wire(request: DanceRequest) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The request as a submit's options and arrays (the audio is added by the client)."""
    options: dict[str, Any] = {}
    for f in option_fields(type(request)):
        value = getattr(request, f.name)
        if f.metadata["spec"].wire and value != f.default:
            options[f.name] = value
    arrays: dict[str, np.ndarray] = {}
    edit: dict[str, Any] = {}
    if request.reference is not None:
        arrays["ref_rotations"] = request.reference.rotations
        arrays["ref_root_translation"] = request.reference.root_translation
        if request.reference.contacts is not None:  # kept frames keep their foot contacts too
            arrays["ref_contacts"] = request.reference.contacts
        options["fps"] = float(request.reference.fps)
    if request.edit is not None:
        e = request.edit
        edit.update({k: v for k, v in (("keep_frames", [[int(a), int(b)] for a, b in e.keep_frames]),
                                       ("keep_joints", list(e.keep_joints)), ("keep_root", e.keep_root),
                                       ("transitions", [int(t) for t in e.transitions])) if v})
        if e.transition_frames != Edit().transition_frames:
            edit["transition_frames"] = int(e.transition_frames)
        if request.reference is not None:
            edit["ref_fps"] = float(request.reference.fps)
    if request.path_xz is not None:
        edit["path"] = True
        arrays["path_xz"] = np.asarray(request.path_xz)
    if edit:
        options["edit"] = edit
    if request.beat_map is not None:  # the animator's beats (s in the song)
        arrays["beat_map"] = np.asarray(request.beat_map, dtype=np.float64).reshape(-1)
    if request.keys is not None:
        k = request.keys
        options["keys"] = {"snap_to_beats": True} if k.snap_to_beats else {}
        for name, value in zip(KEY_ARRAYS, (k.frames, k.rotations, k.joints, k.root)):
            if value is not None:
                arrays[name] = np.asarray(value)
    return options, arrays


def _reference(opts: dict, arrays: dict[str, np.ndarray]):
    if "ref_rotations" not in arrays and "ref_root_translation" not in arrays:
        return None
    if "ref_rotations" not in arrays or "ref_root_translation" not in arrays:
        raise RequestError("edit", "the dance to edit needs both arrays 'ref_rotations' and 'ref_root_translation'")
    from rigs.motion import Motion

    fps = (opts.get("edit") or {}).get("ref_fps", opts.get("fps", 30.0))
    try:
        return Motion(arrays["ref_rotations"], arrays["ref_root_translation"], fps=float(fps),
                      contacts=arrays.get("ref_contacts"))
    except (TypeError, ValueError) as exc:
        raise RequestError("edit", f"the dance to edit is not a valid motion: {exc}") from None


def _keys(opts: dict, arrays: dict[str, np.ndarray]) -> KeyedPoses | None:
    if opts.get("keys") is None:
        return None
    missing = [n for n in KEY_ARRAYS[:2] if n not in arrays]
    if missing:
        raise RequestError("keys", f"keyed poses need the arrays key_frames and key_rotations (key_joints and "
                                   f"key_root optional); missing {', '.join(missing)}")
    return KeyedPoses(arrays["key_frames"], arrays["key_rotations"], arrays.get("key_joints"), arrays.get("key_root"),
                      snap_to_beats=bool(opts["keys"].get("snap_to_beats", False)))


def from_wire(options: dict[str, Any], arrays: dict[str, np.ndarray], cls: type = DanceRequest) -> DanceRequest:
    """The checked request a job's options and arrays ask for (RequestError with one sentence otherwise)."""
    try:
        opts = C.checked(options, wire_schema(cls))
    except C.OptionError as exc:
        raise RequestError("options", str(exc)) from None
    scalars = {f.name: opts[f.name] for f in option_fields(cls) if f.name in opts}
    edit_map = opts.get("edit") or {}
    edit = Edit(keep_frames=[(a, b) for a, b in edit_map.get("keep_frames", [])],
                keep_joints=list(edit_map.get("keep_joints", [])), keep_root=edit_map.get("keep_root", False),
                transitions=list(edit_map.get("transitions", [])),
                transition_frames=edit_map.get("transition_frames", Edit().transition_frames))
    path = None
    if edit_map.get("path"):
        path = arrays.get("path_xz")
        if path is None or path.ndim != 2 or path.shape[1] != 2:
            raise RequestError("path", "a root path needs an array 'path_xz' of (frames, 2) positions in metres")
    if opts.get("edit") is not None and edit.empty and path is None:
        raise RequestError("edit", "'edit' asks for nothing: give keep_frames, keep_joints, transitions or path")
    request = cls(**scalars, reference=_reference(opts, arrays), edit=None if edit.empty else edit,
                           path_xz=path, keys=_keys(opts, arrays), beat_map=arrays.get("beat_map"))
    return request.validate()
