"""The head kept within a turn a dancer's neck can make from the chest.

Why: in the Tang waltz and tango recordings the two head markers swap sides in places, so the fitted neck turns up
to 180 deg from the chest in 20-48 % of their frames (`mace-dance prepare-data`'s dances; the cha-cha and rumba ones
stay under 84 deg). The model learnt those turns, and the figure library holds them, so dances came out with the head
on backwards in 3-15 % of waltz frames. The neck's turn (neck and head together, relative to the chest) is therefore
soft-limited: turns up to KNEE_DEG stay exactly as they are, larger ones are compressed smoothly towards LIMIT_DEG,
about the same axis. The angle is read from quaternions kept on one hemisphere from frame to frame, so a turn that
passes 180 deg keeps its direction instead of flipping to the other side (which would snap the head across).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rigs.motion import Motion
from rigs.rotations import quaternion_multiply

NECK, HEAD = 12, 15
KNEE_DEG = 60.0  # real necks: yaw up to ~80 deg, pitch ~60, roll ~45; turns up to here are kept exactly
LIMIT_DEG = 85.0  # no turn comes out larger than this


def soft_limit(angle: np.ndarray, knee: float = KNEE_DEG, limit: float = LIMIT_DEG) -> np.ndarray:
    """Angles (deg) unchanged up to `knee`, then compressed smoothly (tanh) so none passes `limit`; monotone."""
    span = limit - knee
    return np.where(angle <= knee, angle, knee + span * np.tanh((angle - knee) / span))


def _continuous(q: np.ndarray) -> np.ndarray:
    """Quaternions (T, 4) with signs chosen so each is on the previous one's hemisphere (the first with w >= 0)."""
    q = q.copy()
    if len(q) and q[0, 0] < 0:
        q[0] = -q[0]
    for t in range(1, len(q)):
        if np.dot(q[t], q[t - 1]) < 0:
            q[t] = -q[t]
    return q


def head_turn(motion: Motion) -> np.ndarray:
    """(T,) degrees the head is turned from the chest (neck and head together), 0-180."""
    q = quaternion_multiply(motion.rotations[:, NECK], motion.rotations[:, HEAD])
    return np.degrees(2 * np.arctan2(np.linalg.norm(q[:, 1:], axis=-1), np.abs(q[:, 0])))


def limit_head_turn(motion: Motion, frames: np.ndarray | None = None) -> tuple[Motion, int]:
    """The motion with every head turn soft-limited (see the module note), and how many frames changed; with `frames`
    (T,) bool, only those (an edit's danced-anew frames), the rest exactly as they were."""
    q = _continuous(quaternion_multiply(motion.rotations[:, NECK], motion.rotations[:, HEAD]).astype(np.float64))
    vec = np.linalg.norm(q[:, 1:], axis=-1)
    angle = np.degrees(2 * np.arctan2(vec, q[:, 0]))  # 0-360 along the continuous path: past 180 keeps its axis
    limited = soft_limit(angle)
    changed = limited < angle - 1e-6
    if frames is not None:
        changed &= np.asarray(frames, dtype=bool)
    if not changed.any():
        return motion, 0
    # the same fraction of the turn is kept for the neck and for the head, about each one's own axis; frames within
    # the knee keep their own values (rebuilt from an angle and an axis they would come back a rounding apart)
    keep = np.where(angle > 1e-9, limited / np.maximum(angle, 1e-9), 1.0)
    rotations = motion.rotations.copy()
    for joint in (NECK, HEAD):
        scaled = _scaled(_continuous(motion.rotations[:, joint].astype(np.float64)), keep)
        rotations[changed, joint] = scaled[changed]
    return replace(motion, rotations=rotations.astype(motion.rotations.dtype)), int(changed.sum())


def _scaled(q: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Each rotation's angle (0-360 along its continuous path) times `keep`, about the same axis."""
    vec = np.linalg.norm(q[:, 1:], axis=-1)
    half = np.arctan2(vec, q[:, 0]) * keep
    axis = np.where(vec[:, None] > 1e-12, q[:, 1:] / np.maximum(vec, 1e-12)[:, None], 0.0)
    return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis], axis=-1)
