"""The SMPL armature in Blender's frame, and conversion of any Blender armature's rest pose to a retarget Rig.

Blender is z up with characters facing -y; SMPL is y up facing +z. C maps SMPL coordinates to Blender's:
(x, y, z) -> (x, -z, y). Rotations convert by conjugation (C R C^T); bone-local (pose) rotations need no conversion.
"""

from __future__ import annotations

import numpy as np

from rigs.retarget import Rig
from rigs.skeleton import smpl_skeleton

Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# The child each SMPL bone points at (its tail); leaves continue their own direction.
_TAIL_CHILD = {"pelvis": "spine1", "spine3": "neck", "left_hip": "left_knee", "right_hip": "right_knee"}


def smpl_bone_layout(scale: float = 1.0) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """(name, parent index, head, tail) of each SMPL bone in Blender coordinates, feet on the floor (z = 0)."""
    sk = smpl_skeleton()
    rest = sk.rest_positions() * scale
    rest = rest - np.array([0.0, rest[:, 1].min(), 0.0])
    heads = rest @ Y_UP_TO_Z_UP.T
    out = []
    for j, name in enumerate(sk.joint_names):
        kids = sk.children(j)
        if name in _TAIL_CHILD:
            tail = heads[sk.index(_TAIL_CHILD[name])]
        elif len(kids) == 1:
            tail = heads[kids[0]]
        else:  # a leaf: continue the parent-to-joint direction for a short bone
            d = heads[j] - heads[sk.parents[j]]
            tail = heads[j] + d / np.linalg.norm(d) * 0.08 * scale
        if np.linalg.norm(tail - heads[j]) < 1e-3:
            tail = heads[j] + np.array([0.0, 0.0, 0.05 * scale])
        out.append((name, sk.parents[j], heads[j], tail))
    return out


def rig_from_rest(names: list[str], parents: list[int], matrices: np.ndarray, floor: float = 0.0,
                  linear: np.ndarray | None = None) -> Rig:
    """A Rig (SMPL's y-up frame) from bones' rest `matrix_local` (armature space, (B, 4, 4)).

    `linear`: the armature object's rotation and scale (the 3x3 of its matrix_world): the rig is read in the world's
    axes and units, so a character whose armature space is y up in centimetres (Blender's FBX importer leaves Mixamo
    characters rotated 90 degrees about x and scaled 0.01) dances upright and to size; its bone locations are then
    in armature units (Rig.unit). The object's place stays its own: `floor` is the world floor's height (z) below
    the object's origin, in world units."""
    m = np.asarray(matrices, dtype=np.float64)
    rot, head, unit = m[:, :3, :3], m[:, :3, 3], 1.0
    if linear is not None:
        lin = np.asarray(linear, dtype=np.float64)[:3, :3]
        unit = float(abs(np.linalg.det(lin)) ** (1.0 / 3.0))
        if unit < 1e-12:
            raise ValueError("the armature object is scaled to nothing (a zero scale): give it a size first")
        rot, head = (lin / unit) @ rot, head @ lin.T
    C = Y_UP_TO_Z_UP
    return Rig(tuple(names), tuple(parents), C.T @ rot, head @ C, floor=float(floor), unit=unit)
