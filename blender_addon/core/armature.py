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


def rig_from_rest(names: list[str], parents: list[int], matrices: np.ndarray, floor: float = 0.0) -> Rig:
    """A Rig (SMPL's y-up frame) from bones' rest `matrix_local` (armature space, (B, 4, 4), Blender z-up);
    `floor`: the world floor's height in armature space (z)."""
    m = np.asarray(matrices, dtype=np.float64)
    C = Y_UP_TO_Z_UP
    rot = C.T @ m[:, :3, :3]
    head = m[:, :3, 3] @ C  # row-wise C^T @ head
    return Rig(tuple(names), tuple(parents), rot, head, floor=float(floor))


def floor_in_armature(matrix_world: np.ndarray) -> float:
    """The height (armature-space z) of the world floor z = 0 below the armature object's origin."""
    mw = np.asarray(matrix_world, dtype=np.float64)
    below = np.array([mw[0, 3], mw[1, 3], 0.0, 1.0])
    return float((np.linalg.inv(mw) @ below)[2])
