"""The user's own SMPL body model (.npz, as the SMPL/smplx model files are distributed after conversion) as a mesh
skinned to the add-on's SMPL armature. Read with numpy only: Blender's Python has no torch (smplx needs it), and the
skinning is plain linear blend skinning that Blender's Armature modifier does itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .armature import Y_UP_TO_Z_UP

REQUIRED = ("v_template", "f", "weights", "J_regressor")


class SMPLModelError(ValueError):
    """The file is not a usable SMPL model; the message says why."""


@dataclass
class SMPLBody:
    """A posed-at-rest SMPL mesh in Blender coordinates (z up), ready to skin."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    weights: np.ndarray  # (V, 24) skinning weights
    joints: np.ndarray  # (24, 3) rest joints of this body (Blender coordinates)


def load_smpl_body(path: str | Path, betas: np.ndarray | None = None) -> SMPLBody:
    """Read an SMPL model .npz (v_template, f, weights, J_regressor, optional shapedirs) and shape it with `betas`."""
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
    except SMPLModelError:
        raise
    except (OSError, ValueError) as exc:
        raise SMPLModelError(f"{path}: unreadable model file ({exc})") from None
    if v.ndim != 2 or v.shape[1] != 3 or w.shape != (len(v), 24) or jr.shape != (24, len(v)):
        raise SMPLModelError(f"{path}: shapes do not fit 24 joints (v {v.shape}, weights {w.shape}, "
                             f"J_regressor {jr.shape})")
    if betas is not None and shapedirs is not None:
        b = np.asarray(betas, dtype=np.float64)[: shapedirs.shape[-1]]
        v = v + shapedirs[..., : len(b)] @ b
    joints = jr @ v
    return SMPLBody(v @ Y_UP_TO_Z_UP.T, f, w, joints @ Y_UP_TO_Z_UP.T)
