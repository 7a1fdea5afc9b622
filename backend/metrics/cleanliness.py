"""Motion faults an animator sees at once: snaps, fast hip turns, feet under the floor, sliding planted feet.

All on y-up joint positions in metres (floor at y = 0), scored at the motion's frame rate.
- max joint speed (m/s), over all joints and frames;
- hip-line turn rate: the yaw of the left-hip -> right-hip line, frames faster than 720 deg/s (spins excepted by
  nobody: real dancers have a few, inside spins);
- lowest foot point (m): the minimum height of ankles and toes;
- planted-foot slide (m/s): horizontal speed of ankles and toes on frames where the foot is planted by the contact
  rule of metrics.md section 6 (ankle <= 8 cm and toe <= 5 cm above the floor);
- median joint acceleration (m/s^2), over all joints and frames: frame-to-frame jitter shows here as a body that
  shakes while it moves slowly (real dances 1.5 for a waltz to 3.4 for a cha-cha).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs.motion import Motion

L_HIP, R_HIP, L_ANKLE, R_ANKLE, L_TOE, R_TOE = 1, 2, 7, 8, 10, 11
TURN_LIMIT = 720.0  # deg/s
ANKLE_CONTACT, TOE_CONTACT = 0.08, 0.05


@dataclass
class Cleanliness:
    """Per-dance fault figures (see the module docstring)."""

    max_joint_speed: float  # m/s
    p999_joint_speed: float  # m/s, 99.9th percentile over joints and frames (a lone fast hand flourish aside)
    fast_turn_frames: int  # frames with the hip line turning faster than TURN_LIMIT
    lowest_foot: float  # m (negative: under the floor)
    foot_slide: float  # m/s, mean over planted foot frames (nan when never planted)
    frames: int
    median_acceleration: float = float("nan")  # m/s^2, over joints and frames


def hip_turn_rate(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T-1,) absolute yaw rate (deg/s) of the horizontal left-hip -> right-hip line."""
    line = joints[:, R_HIP, :] - joints[:, L_HIP, :]
    yaw = np.arctan2(line[:, 0], line[:, 2])
    step = np.angle(np.exp(1j * np.diff(yaw)))  # wrapped to (-pi, pi]
    return np.degrees(np.abs(step)) * fps


def planted_slide(joints: np.ndarray, fps: float) -> float:
    """Mean horizontal speed (m/s) of ankle and toe over the frames each foot is planted."""
    speeds = []
    for ankle, toe in ((L_ANKLE, L_TOE), (R_ANKLE, R_TOE)):
        planted = (joints[:-1, ankle, 1] <= ANKLE_CONTACT) & (joints[:-1, toe, 1] <= TOE_CONTACT)
        for j in (ankle, toe):
            v = np.linalg.norm(joints[1:, j, [0, 2]] - joints[:-1, j, [0, 2]], axis=-1) * fps
            speeds.append(v[planted])
    allv = np.concatenate(speeds)
    return float(allv.mean()) if allv.size else float("nan")


def cleanliness(motion: Motion) -> Cleanliness:
    """The fault figures of one dance."""
    j = motion.joint_positions()
    fps = float(motion.fps)
    speed = np.linalg.norm(j[1:] - j[:-1], axis=-1) * fps
    feet = j[:, [L_ANKLE, R_ANKLE, L_TOE, R_TOE], 1]
    acceleration = np.linalg.norm(j[2:] - 2 * j[1:-1] + j[:-2], axis=-1) * fps ** 2
    return Cleanliness(float(speed.max()), float(np.percentile(speed, 99.9)), int((hip_turn_rate(j, fps) > TURN_LIMIT).sum()), float(feet.min()),
                       planted_slide(j, fps), len(j), float(np.median(acceleration)) if len(acceleration) else float("nan"))


@dataclass
class CleanlinessRow:
    """Cleanliness over a set of dances."""

    name: str
    n: int
    max_joint_speed: float  # worst dance
    p999_joint_speed: float  # worst dance
    fast_turns_per_dance: float
    lowest_foot: float  # worst dance
    foot_slide: float  # mean over dances
    median_acceleration: float = float("nan")  # mean over dances


def summarise(name: str, motions) -> CleanlinessRow:
    """Worst-case speed and floor depth, mean fast-turn count, slide and median acceleration over `motions`."""
    c = [cleanliness(m) for m in motions]
    return CleanlinessRow(name, len(c), max(x.max_joint_speed for x in c), max(x.p999_joint_speed for x in c), float(np.mean([x.fast_turn_frames for x in c])),
                          min(x.lowest_foot for x in c), float(np.nanmean([x.foot_slide for x in c])),
                          float(np.nanmean([x.median_acceleration for x in c])))


def format_cleanliness(rows: list[CleanlinessRow]):
    """A rich table of the fault figures."""
    from rich.table import Table

    table = Table(title="motion faults (max over dances for speed and floor; mean for turns and slide)")
    for col in ("row", "N", "max joint speed m/s", "p99.9 m/s", f"hip turns > {TURN_LIMIT:g} deg/s per dance",
                "lowest foot cm", "planted slide cm/s", "median joint acceleration m/s^2"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r.name, str(r.n), f"{r.max_joint_speed:.2f}", f"{r.p999_joint_speed:.2f}", f"{r.fast_turns_per_dance:.1f}",
                      f"{100 * r.lowest_foot:.1f}", f"{100 * r.foot_slide:.1f}", f"{r.median_acceleration:.1f}")
    return table
