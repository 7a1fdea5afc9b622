"""Keying pose bones: a new action of dense LINEAR keys written with foreach_set (one module below scene and rigify,
which both key through it)."""

from __future__ import annotations

import bpy
import numpy as np

from . import compat
from .core.bake import BakeArrays


def _key_curve(channels: compat.Channels, path: str, index: int, group: str, co: np.ndarray) -> None:
    fc = channels.new(path, index, group)
    n = len(co) // 2
    fc.keyframe_points.add(n)
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", np.full(n, 2, dtype=np.int32))  # LINEAR: dense keys, no overshoot
    fc.update()


def key_pose(obj: bpy.types.Object, frames: np.ndarray, rotations: dict[str, np.ndarray],
             locations: dict[str, np.ndarray], name: str) -> bpy.types.Action:
    """A new action keying pose bones on `frames`: quaternions (T, 4) and locations (T, 3) per bone name, assigned
    to the armature (the old action is kept, unassigned)."""
    from .core.bake import key_coordinates

    action = bpy.data.actions.new(name)
    try:
        channels, slot = compat.new_action_channels(action, obj)
        for bone, q in rotations.items():
            for k in range(4):
                _key_curve(channels, f'pose.bones["{bone}"].rotation_quaternion', k, bone, key_coordinates(frames, q[:, k]))
        for bone, loc in locations.items():
            for k in range(3):
                _key_curve(channels, f'pose.bones["{bone}"].location', k, bone, key_coordinates(frames, loc[:, k]))
    except Exception:
        bpy.data.actions.remove(action)
        raise
    for bone in rotations:
        obj.pose.bones[bone].rotation_mode = "QUATERNION"
    compat.assign_action(obj, action, slot)
    return action


def bake_to_action(obj: bpy.types.Object, arrays: BakeArrays, name: str) -> bpy.types.Action:
    """Write the arrays into a new action and assign it to the armature (the old action is kept, unassigned)."""
    rotations = {bone: arrays.quaternions[:, b] for b, bone in enumerate(arrays.bones)}
    return key_pose(obj, arrays.frames, rotations, {arrays.root_bone: arrays.root_location}, name)
