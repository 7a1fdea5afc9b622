"""The paired ballroom set (Tang et al. 2018): 23 joint positions (cm, y up, 25 fps) -> SMPL Motion.

Fitting is analytic: each SMPL bone's world rotation is the rotation that carries an orthonormal frame built from two
directions in the SMPL T-pose (the bone's aim and a second, twist-fixing direction) onto the frame built from the
same two directions measured on the markers. Knee and elbow twist come from the limb's bending plane, with the foot's
heel-to-toe line (legs) and the chest's forward direction (arms) as a weak prior that takes over when the limb is
straight; the chest and pelvis turn with the shoulder and hip lines; the spine shares the pelvis-to-chest rotation
in thirds; collars, wrists, hands and the head keep their rest pose relative to their parent (no markers).

Marker meanings (../shared/data/README.md plus measured segment lengths): 0/1 the two sides of the head; 2 pelvis;
chain A 3 shoulder, 4 elbow, 6 wrist (4->6 is 24 cm like 13->15; 5 is mid-forearm), 7 hip, 8 knee, 9 ankle,
10 heel, 11 toe; chain B 12 shoulder, 13 elbow, 15 wrist (14 is mid-forearm), 16 hip, 17 knee, 18 ankle, 19 heel,
20 toe; 21/22 hand-orientation markers.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d

from rigs import rotations as rot
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton

SOURCE_FPS = 25.0
TARGET_FPS = 30.0
FIT_VERSION = 1  # bump when the fit changes: it keys the cache

CHAIN_A = {"shoulder": 3, "elbow": 4, "wrist": 6, "hip": 7, "knee": 8, "ankle": 9, "heel": 10, "toe": 11}
CHAIN_B = {"shoulder": 12, "elbow": 13, "wrist": 15, "hip": 16, "knee": 17, "ankle": 18, "heel": 19, "toe": 20}
HEAD_POINTS = (0, 1)
PELVIS_POINT = 2

SK = smpl_skeleton()
J = {name: i for i, name in enumerate(SK.joint_names)}


@dataclass
class TangSequence:
    """One dance of the set, as recorded."""

    name: str  # e.g. DANCE_W_1
    style: str  # waltz, rumba, cha-cha, tango
    positions: np.ndarray  # (T, 23, 3) world positions in metres, y up
    audio_path: Path
    audio_start: float  # seconds into the song at motion frame 0


@dataclass
class SideReport:
    """How left and right were settled for one sequence."""

    chain_a_is_left: bool
    side_agreement: float  # fraction of frames on which chain A's hip lies on the side chosen
    heel_toe_agreement: float  # fraction of bent-knee frames whose knee points where the toes point
    head_0_is_left: bool


@dataclass
class FitReport:
    """Mean per-joint position error of the fitted SMPL skeleton against the markers, in millimetres."""

    scale: float  # dancer leg length / SMPL leg length
    mpjpe_mm: float
    per_joint_mm: dict[str, float]


STYLES = {"C": "cha-cha", "R": "rumba", "T": "tango", "W": "waltz"}


def audio_span(folder: str | Path) -> tuple[Path, float]:
    """The song of a sequence folder and the time (s) in it of motion frame 0, without reading the motion."""
    folder = Path(folder)
    with open(folder / "config.json") as fh:
        cfg = json.load(fh)
    return folder / "audio.mp3", cfg["start_position"] / SOURCE_FPS


def load_sequence(folder: str | Path) -> TangSequence:
    """Read one DANCE_* folder (positions in metres; audio offset from config.json)."""
    folder = Path(folder)
    with gzip.open(folder / "skeletons.json.gz", "rt") as fh:
        sk = json.load(fh)
    with open(folder / "config.json") as fh:
        cfg = json.load(fh)
    skeletons = np.asarray(sk["skeletons"], dtype=np.float64)
    center = np.asarray(sk["center"], dtype=np.float64)
    if skeletons.ndim != 3 or skeletons.shape[1:] != (23, 3) or center.shape != (skeletons.shape[0], 3):
        raise ValueError(f"{folder}: skeletons must be (T, 23, 3) with center (T, 3), got {skeletons.shape}")
    positions = (skeletons + center[:, None, :]) / 100.0  # cm -> m
    if not np.isfinite(positions).all():
        raise ValueError(f"{folder}: positions contain NaN")
    style = STYLES.get(folder.name.split("_")[1], "unknown")
    return TangSequence(folder.name, style, positions, folder / "audio.mp3", cfg["start_position"] / SOURCE_FPS)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _horizontal(v: np.ndarray) -> np.ndarray:
    v = v.copy()
    v[..., 1] = 0.0
    return v


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Component of v perpendicular to the unit vector `axis`."""
    return v - axis * np.sum(v * axis, axis=-1, keepdims=True)


def settle_sides(P: np.ndarray) -> SideReport:
    """Decide which marker chain is the dancer's left, from the data alone.

    Forward is where the toes point (toe minus heel; the toe is the foot point farther from the ankle). Assuming
    right-handed coordinates (as optical mocap systems use), left = up x forward. Knees bend forward, so on bent-knee
    frames the knee should stick out where the toes point: that checks the heel/toe reading independently.
    """
    up = np.array([0.0, 1.0, 0.0])
    fwd = _unit(_horizontal(P[:, CHAIN_A["toe"]] - P[:, CHAIN_A["heel"]] + P[:, CHAIN_B["toe"]] - P[:, CHAIN_B["heel"]]))
    left = np.cross(up, fwd)
    side = np.sum((P[:, CHAIN_A["hip"]] - P[:, CHAIN_B["hip"]]) * left, axis=-1)
    a_left = bool(np.mean(side > 0) > 0.5)
    agreements = []
    for chain in (CHAIN_A, CHAIN_B):
        knee_out = P[:, chain["knee"]] - (P[:, chain["hip"]] + P[:, chain["ankle"]]) / 2
        foot_fwd = _horizontal(P[:, chain["toe"]] - P[:, chain["heel"]])
        bent = np.linalg.norm(_horizontal(knee_out), axis=-1) > 0.03
        agreements.append(np.sum(_horizontal(knee_out) * foot_fwd, axis=-1)[bent] > 0)
    heel_toe = float(np.mean(np.concatenate(agreements))) if sum(len(a) for a in agreements) else float("nan")
    shoulders = P[:, CHAIN_A["shoulder"]] - P[:, CHAIN_B["shoulder"]]
    head0 = np.sum((P[:, HEAD_POINTS[0]] - P[:, HEAD_POINTS[1]]) * shoulders, axis=-1) > 0  # 0 on chain A's side?
    head_0_is_left = bool(np.mean(head0) > 0.5) == a_left
    return SideReport(a_left, float(np.mean(side > 0) if a_left else np.mean(side <= 0)), heel_toe, head_0_is_left)


def _frames(aim: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frames (columns): aim, second made perpendicular, and their cross product."""
    a = _unit(aim)
    b = _unit(_perp(second, a))
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def _align(obs_aim, obs_second, ref_aim, ref_second) -> np.ndarray:
    """World rotation carrying the reference frame onto the observed one."""
    return _frames(obs_aim, obs_second) @ np.swapaxes(_frames(ref_aim, ref_second), -1, -2)


def fit_smpl(seq: TangSequence, sides: SideReport | None = None, smooth_sigma: float = 1.0) -> tuple[Motion, FitReport]:
    """Fit SMPL rotations and root translation to the markers; returns the Motion at 25 fps (floor at y = 0)."""
    sides = sides or settle_sides(seq.positions)
    raw = seq.positions
    P = gaussian_filter1d(raw, smooth_sigma, axis=0, mode="nearest") if smooth_sigma > 0 else raw
    L, R = (CHAIN_A, CHAIN_B) if sides.chain_a_is_left else (CHAIN_B, CHAIN_A)
    head_l, head_r = HEAD_POINTS if sides.head_0_is_left else HEAD_POINTS[::-1]
    rest = SK.rest_positions()
    T = P.shape[0]
    pt = lambda chain, key: P[:, chain[key]]  # noqa: E731

    mid_sh = (pt(L, "shoulder") + pt(R, "shoulder")) / 2
    mid_hip = (pt(L, "hip") + pt(R, "hip")) / 2
    ref_mid_sh = (rest[J["left_shoulder"]] + rest[J["right_shoulder"]]) / 2
    ref_mid_hip = (rest[J["left_hip"]] + rest[J["right_hip"]]) / 2
    up_obs = mid_sh - mid_hip
    up_ref = ref_mid_sh - ref_mid_hip

    G = np.broadcast_to(np.eye(3), (T, 24, 3, 3)).copy()
    G[:, J["pelvis"]] = _align(up_obs, pt(L, "hip") - pt(R, "hip"), up_ref, rest[J["left_hip"]] - rest[J["right_hip"]])
    chest = _align(up_obs, pt(L, "shoulder") - pt(R, "shoulder"), up_ref,
                   rest[J["left_shoulder"]] - rest[J["right_shoulder"]])
    # Spine: the pelvis-to-chest rotation shared in thirds (no spine markers).
    twist = rot.matrix_to_axis_angle(np.swapaxes(G[:, J["pelvis"]], -1, -2) @ chest)
    for k, name in enumerate(("spine1", "spine2", "spine3"), start=1):
        G[:, J[name]] = G[:, J["pelvis"]] @ rot.axis_angle_to_matrix(twist * k / 3)
    for name in ("neck", "left_collar", "right_collar"):
        G[:, J[name]] = G[:, J["spine3"]]
    head_c = (P[:, head_l] + P[:, head_r]) / 2
    G[:, J["neck"]] = _align(head_c - mid_sh, P[:, head_l] - P[:, head_r], rest[J["head"]] - ref_mid_sh,
                             np.array([1.0, 0.0, 0.0]))
    G[:, J["head"]] = G[:, J["neck"]]

    chest_fwd = G[:, J["spine3"]] @ np.array([0.0, 0.0, 1.0])
    forward_ref = np.array([0.0, 0.0, 1.0])
    prior = 0.05  # weight of the straight-limb prior (the bending plane dominates once a limb bends ~3 degrees)
    for side, chain in (("left", L), ("right", R)):
        hip, knee, ankle, toe = (pt(chain, k) for k in ("hip", "knee", "ankle", "toe"))
        foot_fwd = _horizontal(toe - pt(chain, "heel"))
        thigh, shin = _unit(knee - hip), _unit(ankle - knee)
        G[:, J[f"{side}_hip"]] = _align(thigh, -_perp(shin, thigh) + prior * _perp(_unit(foot_fwd), thigh),
                                        rest[J[f"{side}_knee"]] - rest[J[f"{side}_hip"]], forward_ref)
        G[:, J[f"{side}_knee"]] = _align(shin, _perp(thigh, shin) + prior * _perp(_unit(foot_fwd), shin),
                                         rest[J[f"{side}_ankle"]] - rest[J[f"{side}_knee"]], forward_ref)
        G[:, J[f"{side}_ankle"]] = _align(toe - ankle, knee - ankle, rest[J[f"{side}_foot"]] - rest[J[f"{side}_ankle"]],
                                          rest[J[f"{side}_knee"]] - rest[J[f"{side}_ankle"]])
        G[:, J[f"{side}_foot"]] = G[:, J[f"{side}_ankle"]]

        shoulder, elbow, wrist = (pt(chain, k) for k in ("shoulder", "elbow", "wrist"))
        upper, fore = _unit(elbow - shoulder), _unit(wrist - elbow)
        G[:, J[f"{side}_shoulder"]] = _align(upper, _perp(fore, upper) + prior * _perp(chest_fwd, upper),
                                             rest[J[f"{side}_elbow"]] - rest[J[f"{side}_shoulder"]], forward_ref)
        G[:, J[f"{side}_elbow"]] = _align(fore, _perp(-upper, fore) + prior * _perp(chest_fwd, fore),
                                          rest[J[f"{side}_wrist"]] - rest[J[f"{side}_elbow"]], forward_ref)
        G[:, J[f"{side}_wrist"]] = G[:, J[f"{side}_elbow"]]
        G[:, J[f"{side}_hand"]] = G[:, J[f"{side}_elbow"]]

    local = G.copy()
    for j, p in enumerate(SK.parents):
        if p >= 0:
            local[:, j] = np.swapaxes(G[:, p], -1, -2) @ G[:, j]

    leg_obs = np.mean([np.linalg.norm(pt(c, "knee") - pt(c, "hip"), axis=-1) +
                       np.linalg.norm(pt(c, "ankle") - pt(c, "knee"), axis=-1) for c in (L, R)])
    scale = float(leg_obs / SK.leg_length())
    # Root: the fitted hip midpoint sits on the markers' hip midpoint; translation is expressed on the SMPL body.
    trans = mid_hip / scale - (G[:, J["pelvis"]] @ ref_mid_hip[:, None])[..., 0]
    motion = Motion.from_matrices(local, trans, fps=SOURCE_FPS)

    report = _fit_error(motion, raw, scale, L, R, head_l, head_r)
    return _on_floor(motion), report


def _fit_error(motion: Motion, raw: np.ndarray, scale: float, L: dict, R: dict, head_l: int, head_r: int) -> FitReport:
    fitted = motion.joint_positions() * scale
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for side, chain in (("left", L), ("right", R)):
        for smpl_name, key in (("hip", "hip"), ("knee", "knee"), ("ankle", "ankle"), ("foot", "toe"),
                               ("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist")):
            pairs[f"{side}_{smpl_name}"] = (fitted[:, J[f"{side}_{smpl_name}"]], raw[:, chain[key]])
    pairs["head"] = (fitted[:, J["head"]], (raw[:, head_l] + raw[:, head_r]) / 2)
    per_joint = {k: float(np.linalg.norm(a - b, axis=-1).mean() * 1000) for k, (a, b) in pairs.items()}
    return FitReport(scale, float(np.mean(list(per_joint.values()))), per_joint)


def _on_floor(motion: Motion, window_s: float = 2.0) -> Motion:
    """Remove the recording's floor drift: subtract a slowly varying floor under the lowest foot joint."""
    pos = motion.joint_positions()
    feet = [J[n] for n in SK.foot_joints]
    lowest = pos[:, feet, 1].min(axis=1)
    size = max(1, int(window_s * motion.fps))
    floor = gaussian_filter1d(minimum_filter1d(lowest, size, mode="nearest"), size / 4, mode="nearest")
    trans = motion.root_translation.astype(np.float64)
    trans[:, 1] -= floor
    return Motion(motion.rotations, trans, fps=motion.fps)


def foot_contacts(motion: Motion, speed_threshold: float = 0.01, height_threshold: float = 0.1) -> np.ndarray:
    """(T, 4) 0/1 contact labels for left ankle, right ankle, left toe, right toe (EDGE's speed rule + a height cap).

    Speeds are in metres per frame at the motion's frame rate rescaled to 30 fps, so labels do not depend on fps.
    """
    pos = motion.joint_positions()[:, [J[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]]
    speed = np.zeros(pos.shape[:2])
    speed[1:] = np.linalg.norm(pos[1:] - pos[:-1], axis=-1) * motion.fps / 30.0
    speed[0] = speed[1] if len(speed) > 1 else 0.0
    return ((speed < speed_threshold) & (pos[..., 1] < height_threshold)).astype(np.float32)
