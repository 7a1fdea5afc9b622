"""Cutting and joining dances: re-placing a piece where another dance stands, assembling takes, transition windows.

Pure numpy, shared by the backend (repeated sections) and the Blender add-on (comping takes). A piece taken from one
dance and put into another keeps its own pose and path relative to its first frame; where it starts on the floor and
which way it faces are taken from the dance it joins ("root offset free"), so a switch never teleports the dancer.
The frames around each switch are then left for the model to regenerate (see `transition_keep`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rigs import rotations as rot
from rigs.motion import Motion


def heading(rotation: np.ndarray) -> float:
    """Yaw (radians about +y) of the direction a root rotation matrix faces (its +z axis)."""
    fwd = rotation @ np.array([0.0, 0.0, 1.0])
    return float(np.arctan2(fwd[0], fwd[2]))


def facing(motion: Motion, frame: int) -> float:
    """Yaw (radians about +y) the root faces at `frame` (that frame's root rotation only)."""
    return heading(rot.quaternion_to_matrix(motion.rotations[frame, 0].astype(np.float64)))


def place(piece: Motion, at: int, root_xz: np.ndarray, yaw: float) -> Motion:
    """`piece` turned about +y and moved so that its frame `at` stands at `root_xz` facing `yaw` (height kept)."""
    # only the root turns: its quaternion is multiplied, the other joints' stay as they are (no matrix round trip)
    aa = np.array([0.0, yaw - facing(piece, at), 0.0])
    turn = rot.axis_angle_to_matrix(aa)
    rotations = piece.rotations.copy()
    rotations[:, 0] = rot.quaternion_multiply(rot.axis_angle_to_quaternion(aa), rotations[:, 0].astype(np.float64))
    trans = piece.root_translation.astype(np.float64)
    pivot = np.array([trans[at, 0], 0.0, trans[at, 2]])
    trans = (trans - pivot) @ turn.T + np.array([root_xz[0], 0.0, root_xz[1]])
    root_motion = None if piece.root_motion is None else piece.root_motion.astype(np.float64) @ turn.T
    return replace(piece, rotations=rotations, root_translation=trans, root_motion=root_motion)


def stand_of(motion: Motion, frame: int) -> tuple[np.ndarray, float]:
    """Where the dancer stands (root x, z) and faces (yaw) at `frame`."""
    return motion.root_translation[frame, [0, 2]].astype(np.float64), facing(motion, frame)


def paste(base: Motion, piece: Motion, start: int) -> Motion:
    """`base` with frames [start, start + len(piece)) replaced by `piece` (as given: place it first)."""
    stop = start + piece.num_frames
    if not 0 <= start < stop <= base.num_frames:
        raise ValueError(f"a {piece.num_frames}-frame piece does not fit at frame {start} of {base.num_frames}")
    rot_q = base.rotations.copy()
    trans = base.root_translation.copy()
    rot_q[start:stop] = piece.rotations
    trans[start:stop] = piece.root_translation
    contacts = base.contacts
    if contacts is not None:
        contacts = contacts.copy()
        contacts[start:stop] = piece.contacts if piece.contacts is not None else 0.0
    return replace(base, rotations=rot_q, root_translation=trans, contacts=contacts, root_motion=None)


def validate_cuts(cuts: list[tuple[int, int, int]], frames: int, takes: int) -> list[tuple[int, int, int]]:
    """Cuts (start, stop, take) sorted, checked to cover 0..frames exactly once with existing takes."""
    cuts = sorted((int(a), int(b), int(k)) for a, b, k in cuts)
    if not cuts:
        raise ValueError("a comp needs at least one range")
    edge = 0
    for a, b, k in cuts:
        if not 0 <= k < takes:
            raise ValueError(f"range {a}-{b} uses take {k + 1}, but there are {takes} takes")
        if b <= a:
            raise ValueError(f"range {a}-{b} is empty")
        if a != edge:
            raise ValueError(f"the ranges leave a {'gap' if a > edge else 'overlap'} at frame {min(a, edge)}: "
                             "each frame must come from exactly one take")
        edge = b
    if edge != frames:
        raise ValueError(f"the ranges end at frame {edge}, the dance has {frames}")
    return cuts


def assemble(takes: list[Motion], cuts: list[tuple[int, int, int]]) -> tuple[Motion, list[int]]:
    """One dance from ranges of several takes (cuts: (start, stop, take index)); returns it and the switch frames.

    Each range continues where the one before it stands and faces at its first frame, so only the pose changes at a
    switch; the switch frames are where the model should make a transition.
    """
    frames = min(t.num_frames for t in takes)
    cuts = validate_cuts(cuts, frames, len(takes))
    fps = {round(t.fps, 6) for t in takes}
    if len(fps) > 1:
        raise ValueError(f"takes at different frame rates ({sorted(fps)}) cannot be comped")
    merged: list[tuple[int, int, int]] = []
    for a, b, k in cuts:  # neighbouring ranges of one take are one range: nothing to join there
        if merged and merged[-1][2] == k:
            merged[-1] = (merged[-1][0], b, k)
        else:
            merged.append((a, b, k))
    out = takes[merged[0][2]].slice(0, frames)
    switches = []
    for a, b, k in merged[1:]:
        root_xz, yaw = continuing_stand(out, a)
        out = paste(out, place(takes[k].slice(a, b), 0, root_xz, yaw), a)
        switches.append(a)
    return out, switches


def continuing_stand(dance: Motion, frame: int) -> tuple[np.ndarray, float]:
    """Where `dance` would stand at `frame` if it went on as it moved into it (one frame's step extrapolated)."""
    xz, yaw = stand_of(dance, frame - 1)
    prev_xz, prev_yaw = stand_of(dance, max(0, frame - 2))
    return xz + (xz - prev_xz), yaw + np.angle(np.exp(1j * (yaw - prev_yaw)))


def transition_keep(frames: int, switches: list[int], half: int) -> np.ndarray:
    """(frames,) bool: True where a frame is kept, False in the `half`-frame windows on both sides of each switch."""
    keep = np.ones(frames, dtype=bool)
    for s in switches:
        keep[max(0, s - half):min(frames, s + half)] = False
    return keep
