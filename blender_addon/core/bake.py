"""Keyframe arrays for an armature from a Motion: per bone quaternion curves (and the root's location).

The arrays are shaped for `keyframe_points.foreach_set("co", ...)`: one flat (frame, value) sequence per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs import rotations as rot
from rigs.motion import Motion
from rigs.retarget import Rig, motion_to_rig, smpl_rig
from rigs.skeleton import smpl_skeleton


@dataclass
class BakeArrays:
    """Everything to key: frame numbers, per-bone quaternions (w, x, y, z) and the root bone's location."""

    frames: np.ndarray  # (T,) scene frame numbers
    bones: list[str]
    quaternions: np.ndarray  # (T, B, 4) pose-bone rotation_quaternion values
    root_bone: str
    root_location: np.ndarray  # (T, 3) pose-bone location of the root bone

    def co(self, values: np.ndarray) -> np.ndarray:
        """Interleave frame numbers with one channel's values: [f0, v0, f1, v1, ...] as float32."""
        return key_coordinates(self.frames, values)


def key_coordinates(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Frame numbers interleaved with one channel's values, [f0, v0, f1, v1, ...] as float32 (for foreach_set)."""
    out = np.empty((len(frames), 2), dtype=np.float32)
    out[:, 0] = frames
    out[:, 1] = values
    return out.reshape(-1)


def continuous(q: np.ndarray) -> np.ndarray:
    """Flip quaternion signs along time so neighbours agree (q and -q are the same rotation; curves must not jump)."""
    q = q.copy()
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.cumsum(dots < 0, axis=0) % 2  # parity of sign changes so far
    q[1:] *= np.where(flips[..., None] == 1, -1.0, 1.0)
    return q


def is_smpl_rig(rig: Rig, mapping: dict[str, int], tol: float = 1e-4) -> bool:
    """True when the rig is the SMPL skeleton itself (names and rest joint positions), whatever its bone axes."""
    sk = smpl_skeleton()
    if len(mapping) != sk.num_joints or any(mapping.get(n) is None for n in sk.joint_names):
        return False
    heads = rig.rest_positions[[mapping[n] for n in sk.joint_names]]
    rest = smpl_rig().rest_positions
    return bool(np.abs((heads - heads[0]) - (rest - rest[0])).max() < tol)


def _smpl_basis(motion: Motion, rig: Rig, mapping: dict[str, int]) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Fast path for the SMPL armature: basis = A^T L A per bone, done on quaternions (no FK, no matrices)."""
    sk = smpl_skeleton()
    bones = [mapping[n] for n in sk.joint_names]
    a = rot.matrix_to_quaternion(rig.rest_rotations[bones])  # (24, 4) rest frames
    q = motion.rotations.astype(np.float64)  # (T, 24, 4) local rotations
    basis = rot.quaternion_multiply(rot.quaternion_conjugate(a)[None], rot.quaternion_multiply(q, a[None]))
    root = mapping["pelvis"]
    root_loc = (motion.root_translation.astype(np.float64) - rig.rest_positions[root]) @ rig.rest_rotations[root]
    return basis, bones, root_loc


def bake_arrays(motion: Motion, rig: Rig, mapping: dict[str, int], frame_start: int = 1,
                scene_fps: float | None = None) -> BakeArrays:
    """Retarget `motion` onto `rig` (through the SMPL bone map) and lay it out on scene frames."""
    if scene_fps and abs(scene_fps - motion.fps) > 1e-6:
        motion = motion.resample(scene_fps, cover=True)  # keys reach the dance's end at any scene rate
    if is_smpl_rig(rig, mapping):
        quats, keyed, root_loc = _smpl_basis(motion, rig, mapping)
        order = np.argsort(keyed)
        keyed = [keyed[i] for i in order]
        quats = continuous(quats[:, order])
    else:
        basis, root_loc = motion_to_rig(motion, rig, mapping)
        keyed = sorted(set(mapping.values()))
        quats = continuous(rot.matrix_to_quaternion(basis[:, keyed]))
    frames = frame_start + np.arange(motion.num_frames, dtype=np.float64)
    return BakeArrays(frames, [rig.bone_names[b] for b in keyed], quats, rig.bone_names[mapping["pelvis"]],
                      root_loc / rig.unit)  # in the armature's own units


def motion_from_smpl_keys(quats: np.ndarray, root_location: np.ndarray, rig: Rig, mapping: dict[str, int],
                          fps: float) -> Motion:
    """Inverse of the SMPL fast path: pose-bone quaternions (T, 24, 4) in SMPL joint order and the root bone's
    location (T, 3) back to a Motion (L = A B A^T per bone; translation = rest head + A @ location)."""
    sk = smpl_skeleton()
    bones = [mapping[n] for n in sk.joint_names]
    a = rot.matrix_to_quaternion(rig.rest_rotations[bones])
    q = rot.quaternion_multiply(a[None], rot.quaternion_multiply(np.asarray(quats, dtype=np.float64),
                                                                  rot.quaternion_conjugate(a)[None]))
    root = mapping["pelvis"]
    trans = rig.rest_positions[root] + rig.unit * np.asarray(root_location, dtype=np.float64) @ rig.rest_rotations[root].T
    return Motion(q, trans, fps=fps)


def beat_grid(beat_frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Tracked beats extended over the whole dance: the tracker drops weak leading and trailing beats (a quiet intro,
    a held final chord), so the grid continues from the first and last tracked beat at the median beat period."""
    beats = np.sort(np.asarray(beat_frames, dtype=np.float64).reshape(-1))
    if len(beats) < 2 or num_frames <= 0:
        return beats
    period = float(np.median(np.diff(beats)))
    if period <= 0:
        return beats
    before = beats[0] - period * np.arange(int(np.floor(beats[0] / period)), 0, -1)
    after = beats[-1] + period * np.arange(1, int(np.floor((num_frames - 1 - beats[-1]) / period)) + 1)
    return np.concatenate([before, beats, after])


def beat_marker_frames(beat_frames: np.ndarray, motion_fps: float, scene_fps: float, frame_start: int,
                       num_frames: int = 0) -> list[int]:
    """Scene frames of music beats given at the motion frame rate, over the whole dance when its length is given."""
    beats = beat_grid(beat_frames, num_frames) if num_frames else np.asarray(beat_frames)
    return [int(round(frame_start + b * scene_fps / motion_fps)) for b in beats]
