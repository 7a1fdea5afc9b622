"""How a choreography's joins move (issue 33, item 4): a comp's switches, a repeat's ins and outs, keyed poses.

A join must not lunge: its pelvis travels no faster than the dances it joins do anywhere (their fastest stretch), and
its feet do not skate: a foot on the floor slides no faster than the dance's own 99th percentile of such slides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.metrics.cleanliness import ANKLE_CONTACT as ANKLE_LOW, TOE_CONTACT as TOE_LOW
from rigs.motion import Motion
from rigs.skeleton import SMPL_JOINT_NAMES

ANKLES = (SMPL_JOINT_NAMES.index("left_ankle"), SMPL_JOINT_NAMES.index("right_ankle"))
TOES = (SMPL_JOINT_NAMES.index("left_foot"), SMPL_JOINT_NAMES.index("right_foot"))
ROUNDING = 1e-4  # m/s: a pinned foot's float32 forward kinematics wobble by up to ~2e-6 (a tenth of a micron a frame)


@dataclass(frozen=True)
class JoinSpeeds:
    """The fastest pelvis and sliding foot at the joins against their bounds (m/s), and the pelvis's fastest turn."""

    pelvis: float  # fastest pelvis (root x/z) speed within a join's window
    pelvis_bound: float  # the fastest the joined dances move their pelvis, anywhere
    slide: float  # fastest horizontal speed of a foot on the floor within a join's window
    slide_bound: float  # the dance's 99th percentile of that speed away from the joins
    turn_deg: float  # the pelvis's largest one-frame turn within a join's window (deg)

    @property
    def ok(self) -> bool:
        """Whether the joins keep within both bounds."""
        return self.pelvis <= self.pelvis_bound + ROUNDING and self.slide <= self.slide_bound + ROUNDING

    def line(self) -> str:
        """One line: each figure against its bound."""
        return (f"pelvis {self.pelvis:.2f} m/s (bound {self.pelvis_bound:.2f}), foot slide {self.slide:.2f} m/s "
                f"(bound {self.slide_bound:.2f}), pelvis turn {self.turn_deg:.1f} deg/frame")


def pelvis_speed(motion: Motion) -> np.ndarray:
    """(T-1,) the root's speed over the floor (m/s) from each frame to the next."""
    return np.linalg.norm(np.diff(motion.root_translation[:, [0, 2]], axis=0), axis=-1) * motion.fps


def foot_slide(motion: Motion) -> np.ndarray:
    """(T-1, 2) each ankle's speed over the floor (m/s) from each frame to the next where it is on the floor at both
    (ankle and toe at planted height, as cleanup.planted_feet counts it), else 0."""
    j = motion.joint_positions()
    out = np.zeros((motion.num_frames - 1, 2))
    for k, (ankle, toe) in enumerate(zip(ANKLES, TOES)):
        low = (j[:, ankle, 1] <= ANKLE_LOW) & (j[:, toe, 1] <= TOE_LOW)
        v = np.linalg.norm(np.diff(j[:, ankle][:, [0, 2]], axis=0), axis=-1) * motion.fps
        out[:, k] = np.where(low[1:] & low[:-1], v, 0.0)
    return out


def turn_deg(motion: Motion) -> np.ndarray:
    """(T-1,) the pelvis's turn (deg) from each frame to the next."""
    q = motion.rotations[:, 0]
    return np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], axis=-1)), 0.0, 1.0)))


def join_windows(frames: int, joins: list[int], half: int) -> np.ndarray:
    """(frames - 1,) bool: the frame-to-frame steps that touch a join's window (its frames j - half to j + half - 1,
    the ones danced anew), from the kept frame before it to the kept frame after it."""
    near = np.zeros(frames - 1, dtype=bool)
    for j in joins:
        near[max(0, j - half - 1):min(frames - 1, j + half)] = True
    return near


def join_speeds(motion: Motion, joins: list[int], half: int, sources: list[Motion],
                source_joins: list[int] | None = None) -> JoinSpeeds:
    """The joins of `motion` (frames; `half` frames either side were danced anew) against `sources`, the dances they
    join (a comp's takes, or the dance a repeat was pasted into; `source_joins`: steps of a source that are pasted
    seams of its own, left out of its fastest stretch)."""
    near = join_windows(motion.num_frames, joins, half)
    own = []
    for s in sources:
        v = pelvis_speed(s)
        if source_joins:
            v = v[~join_windows(s.num_frames, source_joins, 1)]
        own.append(v.max())
    slides = foot_slide(motion)
    away = slides[~near]
    away = away[away > 0]
    return JoinSpeeds(float(pelvis_speed(motion)[near].max(initial=0.0)), float(max(own)),
                      float(slides[near].max(initial=0.0)), float(np.percentile(away, 99)) if away.size else 0.0,
                      float(turn_deg(motion)[near].max(initial=0.0)))
