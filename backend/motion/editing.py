"""Edit constraints for masked denoising: keep frames, keep joints, follow a root path (all in feature space)."""

from __future__ import annotations

import numpy as np

from backend.motion.representation import FEATURE_DIM, ROOT, ROT6D, Normalizer, motion_to_features
from backend.motion.sampling import Constraint
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton


def _empty(length: int) -> Constraint:
    return Constraint(np.zeros((length, FEATURE_DIM), np.float32), np.zeros((length, FEATURE_DIM), bool))


def combine(*constraints: Constraint) -> Constraint:
    """Union of constraints (later ones win where they overlap)."""
    out = _empty(constraints[0].values.shape[0])
    for c in constraints:
        out.values = np.where(c.mask, c.values, out.values)
        out.mask = out.mask | c.mask
        out.seam_window = max(out.seam_window, c.seam_window)
    return out


def keep_frames(reference: Motion, frames: np.ndarray, normalizer: Normalizer, length: int | None = None) -> Constraint:
    """Temporal inpainting: the given frames of `reference` are kept (pose, root and contacts)."""
    length = length or reference.num_frames
    frames = np.asarray(frames, dtype=int)
    if frames.size and (frames.min() < 0 or frames.max() >= min(length, reference.num_frames)):
        raise ValueError(f"kept frames must lie in 0..{min(length, reference.num_frames) - 1}")
    c = _empty(length)
    feats = normalizer.norm_motion(motion_to_features(reference))
    c.values[frames] = feats[frames]
    c.mask[frames] = True
    return c


def keep_joints(reference: Motion, joints: list[str], normalizer: Normalizer, with_root: bool = False) -> Constraint:
    """Joint-wise inpainting: the rotations of the named joints (and optionally the root path) are kept."""
    sk = smpl_skeleton()
    unknown = [j for j in joints if j not in sk.joint_names]
    if unknown:
        raise ValueError(f"unknown joints {unknown}; SMPL joints are {', '.join(sk.joint_names)}")
    c = _empty(reference.num_frames)
    feats = normalizer.norm_motion(motion_to_features(reference))
    for j in joints:
        k = sk.index(j)
        cols = slice(ROT6D.start + 6 * k, ROT6D.start + 6 * k + 6)
        c.values[:, cols] = feats[:, cols]
        c.mask[:, cols] = True
    if with_root:
        c.values[:, ROOT] = feats[:, ROOT]
        c.mask[:, ROOT] = True
    return c


def follow_path(path_xz: np.ndarray, normalizer: Normalizer, frames: np.ndarray | None = None) -> Constraint:
    """Trajectory guidance: the root follows (x, z) positions in metres (height and pose stay free)."""
    path_xz = np.asarray(path_xz, dtype=np.float32)
    if path_xz.ndim != 2 or path_xz.shape[1] != 2 or not np.isfinite(path_xz).all():
        raise ValueError(f"a root path must be finite (frames, 2) x/z positions, got shape {path_xz.shape}")
    length = path_xz.shape[0]
    c = _empty(length)
    raw = np.zeros((length, FEATURE_DIM), np.float32)
    raw[:, ROOT.start] = path_xz[:, 0]
    raw[:, ROOT.start + 2] = path_xz[:, 1]
    norm = normalizer.norm_motion(raw)
    rows = np.arange(length) if frames is None else np.asarray(frames, dtype=int)
    for col in (ROOT.start, ROOT.start + 2):
        c.values[rows, col] = norm[rows, col]
        c.mask[rows, col] = True
    return c
