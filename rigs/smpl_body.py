"""The user's own SMPL body model file (.npz) and linear blend skinning of it by a Motion, in numpy only.

SMPL's model files cannot ship with the product (licence), so a user points us at theirs: the .npz that the SMPL /
smplx distributions convert to (keys v_template, f, weights, J_regressor; optional shapedirs, posedirs). Used by the
Blender add-on (as a mesh its Armature modifier skins) and by the Appearance Expert (body renders and occlusion-aware
keypoints). Coordinates are the model's own: y up, metres, like Motion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rigs.motion import Motion

REQUIRED = ("v_template", "f", "weights", "J_regressor")


class SMPLModelError(ValueError):
    """The file is not a usable SMPL model; the message says why."""


@dataclass
class SMPLBody:
    """An SMPL mesh shaped by betas, at rest (y up): what skinning starts from."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    weights: np.ndarray  # (V, 24) skinning weights
    joints: np.ndarray  # (24, 3) rest joints of this body (J_regressor @ vertices)
    posedirs: np.ndarray | None = None  # (V, 3, 207) pose-corrective blend shapes, when the file has them

    def pose(self, motion: Motion) -> np.ndarray:
        """(T, V, 3) vertices posed by `motion` (linear blend skinning, pose correctives when present).

        Each joint's transform maps this body's rest joint onto where the motion's forward kinematics puts it, so
        the mesh lines up with the skeleton the keypoints come from.
        """
        if motion.num_joints != 24:
            raise ValueError(f"an SMPL body needs a 24-joint SMPL motion, got {motion.num_joints} joints")
        glob, pos = motion.forward()  # (T, 24, 3, 3), (T, 24, 3)
        rest = self.vertices[None]
        if self.posedirs is not None:
            local = motion.matrices().astype(np.float64)[:, 1:]  # (T, 23, 3, 3)
            feat = (local - np.eye(3)).reshape(motion.num_frames, -1)  # (T, 207), SMPL's pose feature
            rest = rest + np.einsum("vck,tk->tvc", self.posedirs, feat)
        offset = pos - np.einsum("tjab,jb->tja", glob, self.joints)  # translation part of each joint's transform
        rot = np.einsum("vj,tjab->tvab", self.weights, glob)
        return np.einsum("tvab,tvb->tva", rot, rest) + self.weights @ offset


def load_smpl_body(path: str | Path, betas: np.ndarray | None = None) -> SMPLBody:
    """Read an SMPL model .npz and shape it with `betas` (the model's first len(betas) shape components)."""
    path = Path(path)
    if not path.is_file():
        raise SMPLModelError(f"{path}: SMPL model file not found")
    if path.suffix.lower() == ".pkl":
        raise SMPLModelError(f"{path}: convert the SMPL .pkl to .npz first (its pickle needs chumpy, which Blender "
                             "cannot import)")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in REQUIRED if k not in data.files]
            if missing:
                raise SMPLModelError(f"{path}: not an SMPL model (missing {', '.join(missing)})")
            v = np.asarray(data["v_template"], dtype=np.float64)
            f = np.asarray(data["f"], dtype=np.int64)
            w = np.asarray(data["weights"], dtype=np.float64)
            jr = np.asarray(data["J_regressor"], dtype=np.float64)
            shapedirs = np.asarray(data["shapedirs"], dtype=np.float64) if "shapedirs" in data.files else None
            posedirs = np.asarray(data["posedirs"], dtype=np.float64) if "posedirs" in data.files else None
    except SMPLModelError:
        raise
    except (OSError, ValueError) as exc:
        raise SMPLModelError(f"{path}: unreadable model file ({exc})") from None
    if v.ndim != 2 or v.shape[1] != 3 or w.shape != (len(v), 24) or jr.shape != (24, len(v)):
        raise SMPLModelError(f"{path}: shapes do not fit 24 joints (v {v.shape}, weights {w.shape}, "
                             f"J_regressor {jr.shape})")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and (f.min() < 0 or f.max() >= len(v))):
        raise SMPLModelError(f"{path}: faces must be (F, 3) vertex indices below {len(v)}")
    if posedirs is not None and posedirs.shape != (len(v), 3, 207):
        posedirs = None  # an unexpected layout: skin without the correctives rather than fail
    if betas is not None and shapedirs is not None:
        b = np.asarray(betas, dtype=np.float64)[: shapedirs.shape[-1]]
        v = v + shapedirs[..., : len(b)] @ b
    return SMPLBody(v, f, w, jr @ v, posedirs)
