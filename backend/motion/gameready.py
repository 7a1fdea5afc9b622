"""Game-ready variants of a dance: in place (root travel in its own channel)."""

from __future__ import annotations

import numpy as np

from rigs.motion import Motion


def in_place(motion: Motion) -> Motion:
    """The same dance on the spot: the root's horizontal travel moves into `root_motion` (x, 0, z)."""
    trans = motion.root_translation.astype(np.float64)
    travel = np.zeros_like(trans)
    travel[:, [0, 2]] = trans[:, [0, 2]] - trans[:1, [0, 2]]
    return Motion(motion.rotations, trans - travel, fps=motion.fps, joint_names=motion.joint_names,
                  betas=motion.betas, contacts=motion.contacts, root_motion=travel)
