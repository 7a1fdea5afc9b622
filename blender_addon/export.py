"""Exporting a dance for other tools: FBX that keeps every key (with game-engine presets, a chosen take, all takes
one file each, and the in-place dance's travel on a root bone), BVH in the Y-up convention other tools read."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import bpy
import numpy as np

from rigs.motion import Motion

from . import compat, stored_dance
from .core.export_presets import ROOT_BONE, EnginePreset, preset, split_travel, take_file_path, travel_keys

# Blender (x, y, z) with z up -> BVH's usual (x, z, -y) with y up; Blender's BVH importer undoes it by default.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def export_target(context, filepath: str, fmt: str) -> tuple[bpy.types.Object | None, str, str]:
    """(the armature, the file path with its extension, '' or the sentence saying why an export cannot start)."""
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE" or obj.animation_data is None or obj.animation_data.action is None:
        return None, "", "Select an armature that has a dance to export."
    if not filepath:
        return obj, "", "Choose a file to export to."
    path = bpy.path.ensure_ext(bpy.path.abspath(filepath), "." + fmt.lower())
    if not os.path.isdir(os.path.dirname(path) or "."):
        return obj, path, f"The folder of {path} does not exist."
    return obj, path, ""


def _only_selected(context, obj: bpy.types.Object) -> None:
    for o in context.selected_objects:
        o.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def _frame_range(obj: bpy.types.Object) -> tuple[int, int]:
    first, last = obj.animation_data.action.frame_range
    return int(np.floor(first)), int(np.ceil(last))


@contextlib.contextmanager
def _only_take(obj: bpy.types.Object, action: bpy.types.Action | None = None) -> Iterator[None]:
    """While exporting: `action` (the one the armature plays by default) is its one NLA strip, every other track
    muted.

    The FBX exporter's other ways both go wrong: 'all actions' also writes every other action that fits the armature
    (a retargeted character's original mocap, which importers then play), and the scene's take writes absolute
    times that Blender's importer reads one frame late. Unmuted NLA strips are written one take each, from zero."""
    ad = obj.animation_data
    playing = ad.action
    action = action or playing
    muted = [(track, track.mute) for track in ad.nla_tracks]
    for track, _ in muted:
        track.mute = True
    track = ad.nla_tracks.new()
    track.name = "MACE-Dance export"
    strip = track.strips.new(action.name, int(np.floor(action.frame_range[0])), action)
    compat.strip_slot(strip, action)
    try:
        with _at_rest(obj, strip):
            yield
    finally:
        ad.nla_tracks.remove(track)
        for t, mute in muted:
            t.mute = mute
        if ad.action != playing:
            ad.action = playing


@contextlib.contextmanager
def _at_rest(obj: bpy.types.Object, strip) -> Iterator[None]:
    """While exporting, the armature shows its rest pose at the scene's frame (the strip not extended before its
    start, no active action, the pose bones' own values cleared); what it played and showed is put back after.

    Without a skinned mesh the exporter writes the pose at the current frame as the file's skeleton: a re-import
    (or an engine building its skeleton from the file) got a frame of the dance as its rest pose, limbs 22 cm off."""
    scene = bpy.context.scene
    frame = scene.frame_current
    ad = obj.animation_data
    playing = compat.active_action(obj)
    pose = [(pb, pb.location.copy(), pb.rotation_quaternion.copy(), pb.rotation_euler.copy(),
             pb.rotation_axis_angle[:], pb.scale.copy()) for pb in obj.pose.bones]
    extrapolation = strip.extrapolation
    try:
        strip.extrapolation = "NOTHING"
        ad.action = None
        for pb, *_ in pose:
            pb.location = (0.0, 0.0, 0.0)
            pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
            pb.rotation_euler = (0.0, 0.0, 0.0)
            pb.rotation_axis_angle = (0.0, 0.0, 1.0, 0.0)
            pb.scale = (1.0, 1.0, 1.0)
        scene.frame_set(int(strip.frame_start) - 10)  # before the strip: nothing animates the bones there
        yield
    finally:
        strip.extrapolation = extrapolation
        compat.restore_action(obj, *playing)
        for pb, loc, quat, euler, axis_angle, scale in pose:
            pb.location, pb.rotation_quaternion, pb.rotation_euler = loc, quat, euler
            pb.rotation_axis_angle, pb.scale = axis_angle, scale
        scene.frame_set(frame)


def dance_of(obj: bpy.types.Object, action: bpy.types.Action) -> tuple[Motion, stored_dance.DanceSettings] | None:
    """(Motion, settings) stored for `action` (a take carries its own; the playing action's is on the armature), or
    None when the action has none (keys made by hand or by a retarget)."""
    for holder in (action, obj if obj.animation_data and obj.animation_data.action == action else None):
        if holder is not None and stored_dance.has_dance(holder):
            return stored_dance.load(holder)
    return None


def stored_travel(context, obj: bpy.types.Object,
                  action: bpy.types.Action) -> tuple[np.ndarray, np.ndarray] | None:
    """(scene frames, armature-space travel) of an in-place dance (its stored `root_motion`), or None when the
    action's dance was not made in place (its keys still travel)."""
    from .scene import scene_fps

    stored = dance_of(obj, action)
    if stored is None or stored[0].root_motion is None:
        return None
    motion, settings = stored
    first, last = action.frame_range
    frames = np.arange(int(np.floor(first)), int(np.ceil(last)) + 1, dtype=np.float64)
    return frames, travel_keys(motion.root_motion, motion.fps, settings.start_frame, scene_fps(context.scene), frames)


def _travel_from_keys(copy: bpy.types.Object, fcurves, action: bpy.types.Action,
                      name: str) -> tuple[np.ndarray, np.ndarray]:
    """Take the travel out of a travelling dance's keys: its one top bone's location keys dance on the spot and the
    travel over the floor is returned as (scene frames, armature-space travel) for the root bone."""
    curves = {(fc.data_path, fc.array_index): fc for fc in fcurves}
    path = 'pose.bones["{}"].location'
    tops = [b for b in copy.data.bones
            if b.parent is None and any((path.format(b.name), k) in curves for k in range(3))]
    if len(tops) != 1:
        raise ValueError(f"Root motion needs one top bone whose keys carry the travel; {name} has {len(tops)}")
    bone = tops[0]
    first, last = action.frame_range
    frames = np.arange(int(np.floor(first)), int(np.ceil(last)) + 1, dtype=np.float64)
    old = [curves.get((path.format(bone.name), k)) for k in range(3)]
    loc = np.array([[fc.evaluate(f) if fc is not None else 0.0 for fc in old] for f in frames])
    up = np.linalg.solve(np.array(copy.matrix_world)[:3, :3], [0.0, 0.0, 1.0])  # world up in armature space
    travel, on_spot = split_travel(loc, np.array(bone.matrix_local)[:3, :3], up)
    for k, fc in enumerate(old):
        if fc is not None:
            fcurves.remove(fc)
        _key_curve(fcurves, path.format(bone.name), k, frames, on_spot[:, k])
    return frames, travel


def _scale_locations(fcurves, scale: float) -> None:
    """Location keys (bone-local, in armature units) grown with the rig; rotations and scales are unit-free."""
    for fc in fcurves:
        if not fc.data_path.endswith("location"):
            continue
        n = len(fc.keyframe_points)
        for prop in ("co", "handle_left", "handle_right"):
            co = np.empty(2 * n)
            fc.keyframe_points.foreach_get(prop, co)
            co[1::2] *= scale
            fc.keyframe_points.foreach_set(prop, co)
        fc.update()


def _key_curve(fcurves, data_path: str, index: int, frames: np.ndarray, values: np.ndarray) -> None:
    fc = fcurves.new(data_path, index=index)
    fc.keyframe_points.add(len(frames))
    fc.keyframe_points.foreach_set("co", np.stack([frames, values], axis=1).reshape(-1))
    for kp in fc.keyframe_points:  # a key every frame: straight lines, no Bezier overshoot between them
        kp.interpolation = "LINEAR"
    fc.update()


def _add_root_bone(context, copy: bpy.types.Object) -> np.ndarray:
    """A root bone at the armature's origin, lying on the floor, parent of every bone that had none; returns its
    rest rotation (armature space), which its location keys are in."""
    data = copy.data
    heads = np.array([b.head_local for b in data.bones]) if len(data.bones) else np.zeros((1, 3))
    length = max(0.1 * float(np.ptp(heads, axis=0).max()), 1e-3)  # a tenth of the rig, whatever its units
    up = np.linalg.solve(np.array(copy.matrix_world)[:3, :3], [0.0, 0.0, 1.0])  # world up in armature space
    # along the armature axis that lies flattest (+y for a z-up armature): an importer connects a child whose head
    # lies on its parent's line (Blender's does), and a connected pelvis ignores its location keys
    axes = np.eye(3)[[1, 2, 0]]
    tail = axes[int(np.argmin(np.abs(axes @ up) - 1e-6 * np.arange(3)[::-1]))] * length
    _only_selected(context, copy)  # edit mode takes every selected armature along: only the copy
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        tops = [eb for eb in data.edit_bones if eb.parent is None]
        root = data.edit_bones.new(ROOT_BONE)
        root.head, root.tail = (0.0, 0.0, 0.0), tuple(tail)
        for eb in tops:
            eb.parent = root
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    return np.array(data.bones[ROOT_BONE].matrix_local)[:3, :3]


@contextlib.contextmanager
def _renamed(obj: bpy.types.Object, name: str) -> Iterator[None]:
    """`obj` called `name` while exporting (the file's node names come from object names); whoever had the name
    gets it back after."""
    old, holder = obj.name, bpy.data.objects.get(name)
    if holder is not None and holder != obj:
        holder.name = name + ".mace-export"
    obj.name = name
    try:
        yield
    finally:
        obj.name = old
        if holder is not None and holder != obj:
            holder.name = name


@contextlib.contextmanager
def _export_copy(context, obj: bpy.types.Object, action: bpy.types.Action, p: EnginePreset, root_motion: bool,
                 travel: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> Iterator[tuple[bpy.types.Object, bpy.types.Action]]:
    """A temporary copy of the armature for the exporter: its bones and location keys grown by the preset's rig
    scale (with the scene's unit scale shrunk to match), and with `root_motion` a root bone keyed with the travel
    (`travel`, an in-place dance's, or taken out of the keys); the user's armature and action are not touched."""
    scene = context.scene
    scale = p.rig_scale
    made = []
    unit = scene.unit_settings.scale_length
    try:
        data = obj.data.copy()
        made.append(data)
        copy = obj.copy()
        made.append(copy)
        copy.data = data
        scene.collection.objects.link(copy)
        for pb in copy.pose.bones:  # a rig's constraints aim at its own bones: the copy's, not the original's
            for c in pb.constraints:
                if getattr(c, "target", None) == obj:
                    c.target = copy
        act = action.copy()
        made.append(act)
        ad = copy.animation_data or copy.animation_data_create()
        for track in list(ad.nla_tracks):
            ad.nla_tracks.remove(track)
        ad.action = None
        compat.restore_action(copy, act, act.slots[0] if compat.layered_actions() and len(act.slots) else None)
        if root_motion:
            if ROOT_BONE in data.bones:
                raise ValueError(f"{obj.name} already has a bone called '{ROOT_BONE}'; export it without Root motion")
            fcurves = compat.action_fcurves(copy)
            frames, moves = travel or _travel_from_keys(copy, fcurves, act, obj.name)
            rest = _add_root_bone(context, copy)
            for k, values in enumerate((moves @ rest).T):  # armature-space travel in the root's rest frame
                _key_curve(compat.action_fcurves(copy), f'pose.bones["{ROOT_BONE}"].location', k, frames, values)
        if scale != 1.0:
            from mathutils import Matrix

            data.transform(Matrix.Scale(scale, 4))
            _scale_locations(compat.action_fcurves(copy), scale)
            world = obj.matrix_world.copy()
            copy.parent = None
            world.translation *= scale  # the same place, in the grown units
            copy.matrix_world = world
            scene.unit_settings.scale_length = unit / scale
        name = p.root_node_name if root_motion and p.root_node_name else obj.name
        with _renamed(obj, obj.name + ".mace-export-source"), _renamed(copy, name):
            yield copy, act
    finally:
        scene.unit_settings.scale_length = unit
        for block in reversed(made):
            if isinstance(block, bpy.types.Object):
                bpy.data.objects.remove(block)
            elif isinstance(block, bpy.types.Armature):
                bpy.data.armatures.remove(block)
            else:
                bpy.data.actions.remove(block)
        _only_selected(context, obj)


def export_fbx(context, obj: bpy.types.Object, path: str, simplify: float = 0.0, engine: str = "BLENDER",
               action: bpy.types.Action | None = None, root_motion: bool = False) -> None:
    """The armature and exactly one action (`action`, by default the one it plays) as FBX: one take from time zero,
    with the engine preset's axes, scale and bone options; `simplify` 0 keeps every key (Blender's exporter thins
    keys by default); `root_motion` keys the dance's travel on a root bone at the floor (an in-place dance's stored
    travel, else the travel taken out of its top bone's keys), the body dancing on the spot above it."""
    p = preset(engine)
    ad = obj.animation_data
    action = action or (ad.action if ad is not None else None)
    if action is None:
        raise ValueError(f"{obj.name} has no dance (no action) to export")
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    options = dict(filepath=path, use_selection=True, object_types={"ARMATURE"}, bake_anim=True,
                   bake_anim_simplify_factor=float(simplify), bake_anim_use_all_actions=False,
                   bake_anim_use_nla_strips=True, bake_anim_force_startend_keying=True, **p.fbx_options())
    if p.rig_scale == 1.0 and not root_motion:  # nothing to change on the rig: export it as it is
        _only_selected(context, obj)
        with _only_take(obj, action):
            bpy.ops.export_scene.fbx(**options)
        return
    travel = stored_travel(context, obj, action) if root_motion else None
    with _export_copy(context, obj, action, p, root_motion, travel) as (copy, act):
        _only_selected(context, copy)
        with _only_take(copy, act):
            bpy.ops.export_scene.fbx(**options)


def export_takes(context, obj: bpy.types.Object, path: str, fmt: str = "FBX", **options) -> list[str]:
    """Every take of the armature as its own file (FBX with `options`, or BVH) beside `path`, named after the take;
    returns the files written (ValueError when the armature has no takes)."""
    from .takes import take_actions

    takes = take_actions(obj)
    if not takes:
        raise ValueError(f"{obj.name} has no takes; make some with Generate Takes, or export the playing dance")
    written = []
    for _number, action, _track in takes:
        out = take_file_path(path, action.name, "." + fmt.lower())
        if fmt == "BVH":
            export_bvh_y_up(context, obj, out, action=action)
        else:
            export_fbx(context, obj, out, action=action, **options)
        written.append(out)
    return written


@contextlib.contextmanager
def _playing(obj: bpy.types.Object, action: bpy.types.Action | None) -> Iterator[None]:
    """`action` as the armature's active action while exporting (Blender's BVH exporter writes the one playing),
    what played before put back after."""
    before = compat.active_action(obj)
    if action is None or action == before[0]:
        yield
        return
    obj.animation_data.action = action
    if compat.layered_actions() and len(action.slots):
        obj.animation_data.action_slot = action.slots[0]
    try:
        yield
    finally:
        compat.restore_action(obj, *before)


def export_bvh_y_up(context, obj: bpy.types.Object, path: str, action: bpy.types.Action | None = None) -> None:
    """The armature's dance (`action`, by default the one it plays) as BVH with y up (Blender's exporter writes its
    own z up, which other tools and Blender's own importer read as a character lying on its back), where the object
    stands in the world (the exporter writes armature space: an object moved 1.5 m came out 1.5 m off)."""
    from rigs.bvh import read_bvh, transform_clip, write_clip

    _only_selected(context, obj)
    with _playing(obj, action), tempfile.TemporaryDirectory() as tmp:
        first, last = _frame_range(obj)
        raw = os.path.join(tmp, "z_up.bvh")
        bpy.ops.export_anim.bvh(filepath=raw, frame_start=first, frame_end=last, rotate_mode="NATIVE",
                                root_transform_only=False)
        clip = read_bvh(raw)
    world = np.eye(4)
    world[:3, :3] = Z_UP_TO_Y_UP
    write_clip(path, transform_clip(clip, world @ np.array(obj.matrix_world)))
