"""The user's own SMPL body model as a mesh for the add-on's SMPL armature, in Blender's frame (z up).

Loading and shaping live in rigs.smpl_body (numpy only: Blender's Python has no torch, which smplx needs); Blender's
Armature modifier does the linear blend skinning itself, so only the rest mesh and weights are needed here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from rigs.smpl_body import SMPLBody, SMPLModelError, load_smpl_body as load_model_body

from .armature import Y_UP_TO_Z_UP

__all__ = ["SMPLBody", "SMPLModelError", "load_smpl_body"]


def load_smpl_body(path: str | Path, betas: np.ndarray | None = None) -> SMPLBody:
    """The model's rest mesh shaped by `betas`, in Blender coordinates (vertices and joints z up)."""
    body = load_model_body(path, betas)
    return replace(body, vertices=body.vertices @ Y_UP_TO_Z_UP.T, joints=body.joints @ Y_UP_TO_Z_UP.T, posedirs=None)
