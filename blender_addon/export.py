"""Exporting a dance for other tools: FBX that keeps every key, BVH in the Y-up convention other tools read."""

from __future__ import annotations

import contextlib
import os
import tempfile

import bpy
import numpy as np

from . import compat

# Blender (x, y, z) with z up -> BVH's usual (x, z, -y) with y up; Blender's BVH importer undoes it by default.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _only_selected(context, obj: bpy.types.Object) -> None:
    for o in context.selected_objects:
        o.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def _frame_range(obj: bpy.types.Object) -> tuple[int, int]:
    first, last = obj.animation_data.action.frame_range
    return int(np.floor(first)), int(np.ceil(last))


@contextlib.contextmanager
def _only_take(obj: bpy.types.Object):
    """While exporting: the action the armature plays is its one NLA strip, every other track muted.

    The FBX exporter's other ways both go wrong: 'all actions' also writes every other action that fits the armature
    (a retargeted character's original mocap, which importers then play), and the scene's take writes absolute
    times that Blender's importer reads one frame late. Unmuted NLA strips are written one take each, from zero."""
    ad = obj.animation_data
    action = ad.action
    muted = [(track, track.mute) for track in ad.nla_tracks]
    for track, _ in muted:
        track.mute = True
    track = ad.nla_tracks.new()
    track.name = "MACE-Dance export"
    strip = track.strips.new(action.name, int(np.floor(action.frame_range[0])), action)
    compat.strip_slot(strip, action)
    try:
        yield
    finally:
        ad.nla_tracks.remove(track)
        for t, mute in muted:
            t.mute = mute
        if ad.action != action:
            ad.action = action


def export_fbx(context, obj: bpy.types.Object, path: str, simplify: float = 0.0) -> None:
    """The armature and exactly the action it plays now, as FBX (one take, from time zero); `simplify` 0 keeps every
    key (Blender's exporter thins keys by default)."""
    _only_selected(context, obj)
    with _only_take(obj):
        bpy.ops.export_scene.fbx(filepath=path, use_selection=True, object_types={"ARMATURE"}, bake_anim=True,
                                 add_leaf_bones=False, bake_anim_simplify_factor=float(simplify),
                                 bake_anim_use_all_actions=False, bake_anim_use_nla_strips=True)


def export_bvh_y_up(context, obj: bpy.types.Object, path: str) -> None:
    """The armature's dance as BVH with y up (Blender's exporter writes its own z up, which other tools and
    Blender's own importer read as a character lying on its back), where the object stands in the world (the
    exporter writes armature space: an object moved 1.5 m came out 1.5 m off)."""
    from rigs.bvh import read_bvh, transform_clip, write_clip

    _only_selected(context, obj)
    first, last = _frame_range(obj)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "z_up.bvh")
        bpy.ops.export_anim.bvh(filepath=raw, frame_start=first, frame_end=last, rotate_mode="NATIVE",
                                root_transform_only=False)
        clip = read_bvh(raw)
    world = np.eye(4)
    world[:3, :3] = Z_UP_TO_Y_UP
    write_clip(path, transform_clip(clip, world @ np.array(obj.matrix_world)))
