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
    if isinstance(local_rotations, np.ndarray):
        return _forward_kinematics_np(local_rotations, np.asarray(root_translation), offsets, parents)
    if isinstance(offsets, np.ndarray):
        import torch

        offsets = torch.tensor(np.array(offsets), dtype=local_rotations.dtype, device=local_rotations.device)
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


def _forward_kinematics_np(local_rotations: np.ndarray, root_translation: np.ndarray, offsets, parents: Sequence[int]
                           ) -> tuple[np.ndarray, np.ndarray]:
    """forward_kinematics for numpy arrays, joint-major: each joint's (..., 3, 3) rotations lie contiguous, so every
    product is one batched matmul over contiguous matrices (on the (..., J, 3, 3) layout each joint's stack is
    strided and numpy's matmul took twice as long: 100 against 45 ms for a 10-min dance). The same products in the
    same order: the same numbers to the bit. The rotations come back as a (..., J, 3, 3) view of the joint-major
    array; the positions contiguous."""
    if root_translation.shape != local_rotations.shape[:-3] + (3,):  # not broadcast: a wrong shape is an error
        raise ValueError(f"root_translation must have shape {local_rotations.shape[:-3] + (3,)}, "
                         f"got {root_translation.shape}")
    offsets = np.asarray(offsets, dtype=local_rotations.dtype)
    local = np.moveaxis(local_rotations, -3, 0).copy()  # (J, ..., 3, 3)
    rots = np.empty_like(local)
    pos = np.empty(local.shape[:-1], dtype=np.result_type(local_rotations, root_translation))
    for j, p in enumerate(parents):
        if p < 0:
            rots[j] = local[j]
            pos[j] = root_translation
        else:
            np.matmul(rots[p], local[j], out=rots[j])
            np.add(pos[p], rots[p] @ offsets[j], out=pos[j])
    return np.moveaxis(rots, 0, -3), np.ascontiguousarray(np.moveaxis(pos, 0, -2))
