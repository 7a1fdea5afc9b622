"""Motion <-> model features (EDGE's 151-dim layout) and the normalisation statistics that travel with a model.

Per frame: 4 foot contacts (left ankle, right ankle, left toe, right toe), root translation (3, metres, y up),
24 local rotations as continuous 6D (144). Clips are canonicalised before training and generation: the first frame's
root sits at x = z = 0 and faces +z, so a dance is learned relative to where it starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs import rotations as rot
from rigs.motion import Motion
from rigs.splice import heading  # noqa: F401 - the canonical heading, re-exported for the backend

CONTACTS = slice(0, 4)
ROOT = slice(4, 7)
ROT6D = slice(7, 151)
FEATURE_DIM = 151
SWAP_LR = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22])


def motion_to_features(motion: Motion) -> np.ndarray:
    """(T, 151) float32 features of an SMPL motion (contacts are zeros when the motion has none)."""
    T = motion.num_frames
    x = np.zeros((T, FEATURE_DIM), dtype=np.float32)
    if motion.contacts is not None:
        x[:, CONTACTS] = motion.contacts
    x[:, ROOT] = motion.root_translation
    x[:, ROT6D] = motion.rotation_6d().reshape(T, -1)
    return x


def features_to_motion(x: np.ndarray, fps: float = 30.0) -> Motion:
    """An SMPL Motion from (T, 151) features (6D orthonormalised, contacts clipped to [0, 1])."""
    x = np.asarray(x, dtype=np.float64)
    T = x.shape[0]
    return Motion.from_rotation_6d(x[:, ROT6D].reshape(T, 24, 6), x[:, ROOT], fps=fps,
                                   contacts=np.clip(x[:, CONTACTS], 0, 1))


def canonicalize(motion: Motion) -> Motion:
    """Turn and move the motion so frame 0's root is at x = z = 0 facing +z (height unchanged)."""
    R = motion.matrices()
    yaw = heading(R[0, 0])
    turn = rot.axis_angle_to_matrix(np.array([0.0, -yaw, 0.0]))
    R[:, 0] = turn @ R[:, 0]
    trans = motion.root_translation.astype(np.float64)
    trans = trans - np.array([trans[0, 0], 0.0, trans[0, 2]])
    trans = trans @ turn.T
    return Motion.from_matrices(R, trans, fps=motion.fps, contacts=motion.contacts, betas=motion.betas)


def mirror(motion: Motion) -> Motion:
    """The left-right mirror image (x -> -x, left and right joints swapped): a valid dance to the same music."""
    aa = motion.axis_angle()[:, SWAP_LR] * np.array([1.0, -1.0, -1.0])
    trans = motion.root_translation.astype(np.float64) * np.array([-1.0, 1.0, 1.0])
    contacts = None if motion.contacts is None else motion.contacts[:, [1, 0, 3, 2]]
    return Motion.from_axis_angle(aa, trans, fps=motion.fps, contacts=contacts, betas=motion.betas)


@dataclass
class Normalizer:
    """Per-channel mean and std for motion features and music features."""

    motion_mean: np.ndarray
    motion_std: np.ndarray
    music_mean: np.ndarray
    music_std: np.ndarray

    @classmethod
    def fit(cls, motions: list[np.ndarray], musics: list[np.ndarray]) -> "Normalizer":
        """Statistics of concatenated (T, C) arrays; tiny stds are floored so constant channels stay finite."""
        m = np.concatenate(motions).astype(np.float64)
        a = np.concatenate(musics).astype(np.float64)
        return cls(m.mean(0).astype(np.float32), np.maximum(m.std(0), 1e-2).astype(np.float32),
                   a.mean(0).astype(np.float32), np.maximum(a.std(0), 1e-2).astype(np.float32))

    def norm_motion(self, x):
        return (x - self.motion_mean) / self.motion_std

    def denorm_motion(self, x):
        return x * self.motion_std + self.motion_mean

    def norm_music(self, a):
        return (a - self.music_mean) / self.music_std

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("motion_mean", "motion_std", "music_mean", "music_std")}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        return cls(**{k: np.asarray(d[k], dtype=np.float32) for k in ("motion_mean", "motion_std", "music_mean",
                                                                       "music_std")})
