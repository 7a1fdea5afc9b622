"""Pure logic of the choreography tools (no bpy): comp ranges from the animator's marks, keyed poses from key edits."""

from __future__ import annotations

import numpy as np

from rigs.motion import Motion

ANGLE_TOL = 1e-3  # rad: a bone the animator turned by less than this was not posed (float keys round-trip to ~1e-6)
ROOT_TOL = 1e-4  # m


def comp_cuts(frames: int, base_take: int, marks: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(start, stop, take) ranges covering 0..frames: `base_take` everywhere, then each mark (take, start, stop) in
    order on top (a later mark wins where marks overlap). Takes are 0-based here."""
    owner = np.full(frames, base_take, dtype=np.int64)
    for take, start, stop in marks:
        a, b = max(0, int(start)), min(frames, int(stop))
        if b <= a:
            raise ValueError(f"the mark for take {take + 1} ({start}-{stop}) covers no frame of the dance")
        owner[a:b] = take
    edges = np.flatnonzero(np.diff(owner)) + 1
    bounds = np.r_[0, edges, frames]
    return [(int(a), int(b), int(owner[a])) for a, b in zip(bounds[:-1], bounds[1:])]


def _angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Rotation angle between quaternions (either sign), radians."""
    dot = np.abs(np.sum(q1 * q2, axis=-1)).clip(0.0, 1.0)
    return 2.0 * np.arccos(dot)


def posed_frames(keys: Motion, dance: Motion) -> tuple[np.ndarray, np.ndarray]:
    """Where the animator changed the dance: (frames, (K, 24) bool joints) of `keys` (the armature's keys) against
    `dance` (the stored dance at the same frames and rate). The pelvis counts as posed when it was turned or moved."""
    n = min(keys.num_frames, dance.num_frames)
    turned = _angle(keys.rotations[:n].astype(np.float64), dance.rotations[:n].astype(np.float64)) > ANGLE_TOL
    moved = np.abs(keys.root_translation[:n] - dance.root_translation[:n]).max(axis=1) > ROOT_TOL
    turned[:, 0] |= moved
    frames = np.flatnonzero(turned.any(axis=1))
    return frames, turned[frames]
