"""Exporting a dance for other tools: FBX that keeps every key, BVH in the Y-up convention other tools read."""

from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np

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


def export_fbx(context, obj: bpy.types.Object, path: str, simplify: float = 0.0) -> None:
    """The armature and its dance as FBX; `simplify` 0 keeps every key (Blender's exporter thins keys by default)."""
    _only_selected(context, obj)
    bpy.ops.export_scene.fbx(filepath=path, use_selection=True, object_types={"ARMATURE"}, bake_anim=True,
                             add_leaf_bones=False, bake_anim_simplify_factor=float(simplify))


def export_bvh_y_up(context, obj: bpy.types.Object, path: str) -> None:
    """The armature's dance as BVH with y up (Blender's exporter writes its own z up, which other tools and
    Blender's own importer read as a character lying on its back)."""
    from rigs.bvh import read_bvh, rotate_clip, write_clip

    _only_selected(context, obj)
    first, last = _frame_range(obj)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "z_up.bvh")
        bpy.ops.export_anim.bvh(filepath=raw, frame_start=first, frame_end=last, rotate_mode="NATIVE",
                                root_transform_only=False)
        clip = read_bvh(raw)
    write_clip(path, rotate_clip(clip, Z_UP_TO_Y_UP))
