"""How faithfully a character follows the SMPL dance it was retargeted from: the character matrix's measures.

Every measure compares world joint positions (y up, metres) of the character with the SMPL dance's, scaled by the
retarget's leg-length ratio, so the same numbers judge a pure-numpy retarget and a character posed by Blender's
depsgraph (object transform, units and constraints included):

- **foot height**: on frames where an SMPL foot is planted, how far the character's lowest foot joint is from where
  it stands (its standing height plus the source's own lift, scaled); a character lying on its side or floating
  fails here;
- **limb direction**: the angle between each limb (thigh, shin, upper arm, forearm, torso, neck) of the character
  and of the source, every frame (the torso by its chest: spines of other segment counts and lengths bend differently along
  the way, rightly);
- **pelvis path**: the pelvis's travel over the floor from the first frame against the source's, scaled;
- **planted slide**: how fast a character's ankle moves over the floor while the source's ankle is planted (feet
  that skate although the dancer's stand);
- **below floor**: how far the lowest foot joint ever sinks under where it stands, in any frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rigs.skeleton import smpl_skeleton

LIMBS: tuple[tuple[str, str], ...] = (
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("spine3", "neck"), ("neck", "head"),
)
FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")
ANKLES = ("left_ankle", "right_ankle")
PLANT_HEIGHT = 0.03  # m above the joint's standing height: closer counts as on the floor
PLANT_SPEED = 0.25  # m/s over the floor: slower counts as planted


@dataclass(frozen=True)
class RetargetFit:
    """The worst case over every frame of each measure (metres, degrees, metres per second)."""

    foot_height_m: float
    limb_deg: float
    pelvis_path_m: float
    planted_slide_m_s: float
    source_slide_m_s: float  # the source ankle's own fastest planted step, scaled: what the character may match
    planted_frames: int
    below_floor_m: float = 0.0  # how far the lowest foot joint ever sinks under where it stands, any frame

    def as_dict(self) -> dict[str, float]:
        """The measures by name (for tables)."""
        return asdict(self)


def planted(positions: np.ndarray, joint: int, fps: float, stand: float) -> np.ndarray:
    """(T,) True where joint `joint` of (T, J, 3) positions rests within PLANT_HEIGHT of `stand` and moves slower
    than PLANT_SPEED over the floor."""
    p = positions[:, joint]
    speed = np.zeros(len(p))
    if len(p) > 1:
        step = np.linalg.norm(np.diff(p[:, [0, 2]], axis=0), axis=-1) * fps
        speed[1:] = step
        speed[0] = step[0]
    return (p[:, 1] - stand < PLANT_HEIGHT) & (speed < PLANT_SPEED)


def smpl_rest_heights() -> np.ndarray:
    """(24,) each SMPL joint's height above the floor in the rest pose (the lowest joint on the floor)."""
    y = smpl_skeleton().rest_positions()[:, 1]
    return y - y.min()


def _directions(positions: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    d = np.stack([positions[:, b] - positions[:, a] for a, b in pairs], axis=1)
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)


def retarget_fit(source: np.ndarray, target: np.ndarray, mapping: dict[str, int], scale: float, fps: float,
                 target_stand: float) -> RetargetFit:
    """Measure a character's joints (T, B, 3) against the SMPL dance's (T, 24, 3), both y up in metres.

    `mapping`: SMPL joint -> the character's bone; `scale`: character size over SMPL's (leg-length ratio);
    `target_stand`: the height of the character's lowest foot joint when it stands on the floor, the source's rest
    pose standing alike (a toe-less character's ankles stand as high as SMPL's, scaled)."""
    sk = smpl_skeleton()
    if source.shape[0] != target.shape[0]:
        raise ValueError(f"the dance has {source.shape[0]} frames but the character {target.shape[0]}")
    feet = [j for j in FEET if j in mapping]
    src_feet = [sk.index(j) for j in feet]
    src_stand = float(smpl_rest_heights()[src_feet].min())
    src_low = source[:, src_feet, 1].min(axis=1)
    dst_low = target[:, [mapping[j] for j in feet], 1].min(axis=1)
    on_floor = np.zeros(len(source), dtype=bool)
    for j in feet:
        on_floor |= planted(source, sk.index(j), fps, float(source[:, sk.index(j), 1].min()))
    expected = target_stand + (src_low - src_stand) * scale
    foot = float(np.abs(dst_low - expected)[on_floor].max()) if on_floor.any() else 0.0
    below = float(max(0.0, (target_stand - dst_low).max()))

    limbs = [(a, b) for a, b in LIMBS if a in mapping and b in mapping]
    d_src = _directions(source, [(sk.index(a), sk.index(b)) for a, b in limbs])
    d_dst = _directions(target, [(mapping[a], mapping[b]) for a, b in limbs])
    cos = np.clip(np.sum(d_src * d_dst, axis=-1), -1.0, 1.0)
    limb = float(np.degrees(np.arccos(cos)).max())

    pelvis_src = source[:, sk.index("pelvis"), :][:, [0, 2]]
    pelvis_dst = target[:, mapping["pelvis"], :][:, [0, 2]]
    drift = (pelvis_dst - pelvis_dst[0]) - (pelvis_src - pelvis_src[0]) * scale
    path = float(np.linalg.norm(drift, axis=-1).max())

    slide, own, frames = 0.0, 0.0, 0
    for ankle in (a for a in ANKLES if a in mapping):
        j = sk.index(ankle)
        stand = float(source[:, j, 1].min())
        both = planted(source, j, fps, stand)
        both = both[1:] & both[:-1]  # steps between two planted frames
        frames += int(both.sum())
        if both.any():
            step = np.linalg.norm(np.diff(target[:, mapping[ankle]][:, [0, 2]], axis=0), axis=-1) * fps
            slide = max(slide, float(step[both].max()))
            step = np.linalg.norm(np.diff(source[:, j][:, [0, 2]], axis=0), axis=-1) * fps * scale
            own = max(own, float(step[both].max()))
    return RetargetFit(foot, limb, path, slide, own, frames, below)
