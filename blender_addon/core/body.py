"""A simple skinned body for the SMPL armature: one tapered tube per bone, each rigidly bound to its bone.

Good enough to see and render a dance (a real SMPL mesh comes from the user's own SMPL model file, read by rigs.smpl_body).
"""

from __future__ import annotations

import numpy as np

# tube radius (m) at the head and tail of each bone
RADII = {
    "pelvis": (0.11, 0.10), "spine1": (0.10, 0.10), "spine2": (0.11, 0.12), "spine3": (0.12, 0.11),
    "neck": (0.05, 0.05), "head": (0.09, 0.08), "left_collar": (0.05, 0.05), "right_collar": (0.05, 0.05),
    "left_hip": (0.08, 0.06), "right_hip": (0.08, 0.06), "left_knee": (0.055, 0.04), "right_knee": (0.055, 0.04),
    "left_ankle": (0.04, 0.035), "right_ankle": (0.04, 0.035), "left_foot": (0.03, 0.02), "right_foot": (0.03, 0.02),
    "left_shoulder": (0.05, 0.04), "right_shoulder": (0.05, 0.04), "left_elbow": (0.04, 0.03),
    "right_elbow": (0.04, 0.03), "left_wrist": (0.035, 0.03), "right_wrist": (0.035, 0.03),
    "left_hand": (0.03, 0.02), "right_hand": (0.03, 0.02),
}
SIDES = 10


def body_mesh(layout: list[tuple[str, int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, list[tuple[int, ...]],
                                                                               dict[str, list[int]]]:
    """Vertices, quad/n-gon faces and per-bone vertex groups of a tube body for a bone layout (head -> tail)."""
    verts: list[np.ndarray] = []
    faces: list[tuple[int, ...]] = []
    groups: dict[str, list[int]] = {}
    ring = np.linspace(0, 2 * np.pi, SIDES, endpoint=False)
    for name, _, head, tail in layout:
        axis = tail - head
        length = np.linalg.norm(axis)
        if length < 1e-6:
            continue
        a = axis / length
        helper = np.array([0.0, 0.0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(a, helper)
        u /= np.linalg.norm(u)
        v = np.cross(a, u)
        r0, r1 = RADII.get(name, (0.04, 0.03))
        start = len(verts)
        for centre, r in ((head, r0), (tail, r1)):
            for t in ring:
                verts.append(centre + r * (np.cos(t) * u + np.sin(t) * v))
        for k in range(SIDES):
            k2 = (k + 1) % SIDES
            faces.append((start + k, start + k2, start + SIDES + k2, start + SIDES + k))
        faces.append(tuple(start + k for k in reversed(range(SIDES))))  # caps
        faces.append(tuple(start + SIDES + k for k in range(SIDES)))
        groups[name] = list(range(start, start + 2 * SIDES))
    return np.array(verts), faces, groups
