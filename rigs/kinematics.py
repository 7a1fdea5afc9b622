"""Forward kinematics, batched, for numpy arrays and torch tensors."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rigs.rotations import Array, xp


def forward_kinematics(
    local_rotations: Array, root_translation: Array, offsets: Array, parents: Sequence[int]
) -> tuple[Array, Array]:
    """Joint world rotations and positions.

    local_rotations: (..., J, 3, 3) rotation of each joint relative to its parent (the root's is global).
    root_translation: (..., 3) world position of the root joint.
    offsets: (J, 3) rest offsets from parent to joint; parents: J indices, -1 for the root, parents first.
    Returns (global_rotations (..., J, 3, 3), positions (..., J, 3)).
    """
    ops = xp(local_rotations)
    if not isinstance(local_rotations, np.ndarray) and isinstance(offsets, np.ndarray):
        import torch

        offsets = torch.tensor(np.array(offsets), dtype=local_rotations.dtype, device=local_rotations.device)
    elif isinstance(local_rotations, np.ndarray):
        offsets = np.asarray(offsets, dtype=local_rotations.dtype)
    rots: list[Array] = []
    pos: list[Array] = []
    for j, p in enumerate(parents):
        if p < 0:
            rots.append(local_rotations[..., j, :, :])
            pos.append(root_translation)
        else:
            rots.append(rots[p] @ local_rotations[..., j, :, :])
            pos.append(pos[p] + (rots[p] @ offsets[j][:, None])[..., 0])
    return ops.stack(rots, -3), ops.stack(pos, -2)
