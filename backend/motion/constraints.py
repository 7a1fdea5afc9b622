"""A request's kept values as one sampler Constraint: the dance to edit fitted to the music, kept frames and joints,
a comp's joins, a root path and keyed poses (in that order; later parts win where they overlap)."""

from __future__ import annotations

import numpy as np

from backend.motion.choreography import (PoseKeys, keys_constraint, root_bridge, snap_to_beats,
                                         transition_constraint)
from backend.motion.editing import combine, follow_path, keep_frames, keep_joints
from backend.motion.representation import Normalizer
from backend.motion.sampling import Constraint
from backend.music.features import FPS
from bridge.request import DanceRequest, KeyedPoses, RequestError
from rigs.motion import Motion
from rigs.splice import transition_keep


def fit_reference(reference: Motion, frames: int) -> Motion:
    """The dance to edit at 30 fps, exactly `frames` long (RequestError when it is shorter than the music)."""
    source_frames, source_fps = reference.num_frames, reference.fps
    ref = reference.resample(FPS, cover=True) if abs(reference.fps - FPS) > 1e-6 else reference
    # a dance sampled at another rate may stop up to one of its frames before the music ends: hold its last pose
    short = frames - ref.num_frames
    if short > 0 and short / FPS <= 1.0 / source_fps + 1e-6:
        ref = ref.at_times(np.minimum(np.arange(frames), ref.num_frames - 1))
    if ref.num_frames < frames:
        raise RequestError("reference", f"the dance to edit lasts {source_frames / source_fps:.2f} s ({source_frames} "
                                        f"frames at {source_fps:g} fps); the music needs {frames / FPS:.2f} s")
    return ref.slice(0, frames)


def resample_path(path_xz: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 2) root positions: the path stretched linearly over the music (unchanged when it fits already)."""
    pts = np.asarray(path_xz, dtype=np.float64)
    u = np.linspace(0, len(pts) - 1, frames)
    return np.stack([np.interp(u, np.arange(len(pts)), pts[:, k]) for k in (0, 1)], axis=1)


def edit_constraint(request: DanceRequest, reference: Motion | None, frames: int,
                    norm: Normalizer) -> Constraint | None:
    """The kept values of an edit, a comp and a root path (None when the request keeps nothing); first the options
    that depend on the music's length are checked against it (a loop's blend, an edit's ranges, keyed poses)."""
    request.check_length(frames / FPS)
    parts = []
    edit = request.edit
    if edit is not None and edit.transitions:  # a comp: everything kept but the frames around its joins
        joins = [int(f) for f in edit.transitions if 0 < int(f) < frames]
        parts.append(transition_constraint(reference, joins, norm, edit.transition_frames))
    if edit is not None and edit.keep_frames:
        keep = np.zeros(frames, dtype=bool)
        for a, b in edit.keep_frames:
            keep[max(0, a):min(frames, b)] = True
        parts.append(keep_frames(reference, np.flatnonzero(keep), norm))
    if edit is not None and edit.keep_joints:
        try:
            parts.append(keep_joints(reference, list(edit.keep_joints), norm, with_root=edit.keep_root))
        except ValueError as exc:
            raise RequestError("edit", str(exc)) from None
    if request.path_xz is not None:
        parts.append(follow_path(resample_path(request.path_xz, frames), norm))
    return combine(*parts) if parts else None


def pose_keys(keyed: KeyedPoses, base: Motion | None, beat_frames: np.ndarray, frames: int) -> PoseKeys:
    """The keyed poses checked against the music (roots where `base` stands when none were keyed), on beats when
    asked."""
    key_frames = np.asarray(keyed.frames)
    if key_frames.dtype.kind not in "iu" or key_frames.ndim != 1:
        raise RequestError("keys", f"'key_frames' must be whole frame numbers (K,), got {key_frames.dtype} "
                                   f"{key_frames.shape}")
    bad = key_frames[(key_frames < 0) | (key_frames >= frames)]
    if bad.size:
        raise RequestError("keys", f"keys at frames {bad.tolist()} lie outside the dance (frames 0..{frames - 1})")
    joints = np.ones((len(key_frames), 24), bool) if keyed.joints is None else keyed.joints
    root = base.root_translation[key_frames] if keyed.root is None else keyed.root
    try:
        keys = PoseKeys(key_frames, keyed.rotations, joints, root)
        if keyed.snap_to_beats:
            keys.frames = snap_to_beats(keys.frames, beat_frames, frames)
    except ValueError as exc:
        raise RequestError("keys", str(exc)) from None
    return keys


KEY_WINDOW = 24  # frames danced anew on each side of a key on a given dance (0.8 s at 30 fps: about two beats)


def around_keys(reference: Motion, keys: PoseKeys, norm: Normalizer, constraint: Constraint | None) -> Constraint:
    """Keys on a given dance: its frames kept but for KEY_WINDOW on each side of each key, so the dance goes through
    the poses and stays itself elsewhere (re-danced whole, the free dance wandered from the keys' stand and lunged
    back to it at each key, up to 5.1 m/s). The pelvis is led through each window (key_root_path)."""
    frames = sorted(int(f) for f in keys.frames)
    path = key_root_path(reference, keys, transition_keep(reference.num_frames, frames, KEY_WINDOW))
    kept = transition_constraint(reference, frames, norm, KEY_WINDOW, root_path=path)
    return kept if constraint is None else combine(constraint, kept)


def key_root_path(reference: Motion, keys: PoseKeys, keep: np.ndarray) -> np.ndarray:
    """(T, 2) pelvis x/z through the keys' windows: the dance's own path where a key leaves the pelvis where the
    dance has it, else a Hermite bridge from the window's edges through the keyed position. Led across the window's
    edges only (`root_bridge`, the comps' path), the pelvis was pulled to the key's stand in one frame: a lunge."""
    own = np.asarray(reference.root_translation[:, [0, 2]], dtype=np.float64)
    at_keys = np.asarray(keys.root, dtype=np.float64)[:, [0, 2]]
    moved = np.linalg.norm(at_keys - own[keys.frames], axis=-1) > 1e-4
    if not moved.any():
        return own.astype(np.float32)
    through = keep.copy()
    through[keys.frames] = True
    anchored = own.copy()
    anchored[keys.frames] = at_keys
    bridged = root_bridge(anchored, through).astype(np.float64)
    path = own.copy()
    for f in np.asarray(keys.frames)[moved]:  # the moved key's window (its free frames next to it) is bridged
        a, b = f, f
        while a > 0 and not keep[a - 1]:
            a -= 1
        while b + 1 < len(keep) and not keep[b + 1]:
            b += 1
        path[a:b + 1] = bridged[a:b + 1]
    return path.astype(np.float32)


def with_keys(constraint: Constraint | None, keys: PoseKeys, norm: Normalizer, frames: int) -> Constraint:
    """`constraint` with the keyed poses' values added."""
    keyed = keys_constraint(keys, norm, frames)
    return keyed if constraint is None else combine(constraint, keyed)
