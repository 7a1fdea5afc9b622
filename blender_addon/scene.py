"""The bpy side of applying a dance: build the SMPL armature, read a rig's rest pose, bake keyframes in bulk.

Keys are written with `keyframe_points.add` + `foreach_set("co", ...)` per channel: one call per curve instead of
one `keyframe_insert` per key. Actions are built completely before they are assigned, and everything created is
removed again if anything fails, so a failed apply leaves the scene as it was.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import compat
from .core.armature import rig_from_rest, smpl_bone_layout
from .core.bake import bake_arrays, beat_marker_frames
from .core.beats import MARKER_PREFIX
from .keying import bake_to_action
from rigs.motion import Motion
from rigs.retarget import Rig, guess_preset


def scene_fps(scene: bpy.types.Scene) -> float:
    """The scene's frame rate in frames per second (fps / fps_base: 23.976 for NTSC film)."""
    return scene.render.fps / scene.render.fps_base


def motion_range(scene: bpy.types.Scene, start_frame: int, first: int, last: int, frames: int) -> tuple[int, int]:
    """Scene frames first..last (inclusive) of a dance starting at `start_frame`, as its [a, b) 30-fps frames within
    0..frames (the last scene frame may lie just past the dance's last 30-fps frame: it ends the dance)."""
    rate = scene_fps(scene)
    to_motion = lambda f: int(round((f - start_frame) * 30.0 / rate))  # noqa: E731
    return min(max(0, to_motion(first)), frames - 1), min(to_motion(last) + 1, frames)


def add_simple_body(context, armature: bpy.types.Object) -> bpy.types.Object:
    """A tube body skinned to the SMPL bones (rigid weights), parented to the armature."""
    from .core.body import body_mesh

    verts, faces, groups = body_mesh(smpl_bone_layout())
    mesh = bpy.data.meshes.new(f"{armature.name}_body")
    mesh.from_pydata(verts.tolist(), [], faces)
    mesh.update()
    body = bpy.data.objects.new(f"{armature.name}_body", mesh)
    context.scene.collection.objects.link(body)
    for bone, indices in groups.items():
        body.vertex_groups.new(name=bone).add(indices, 1.0, "REPLACE")
    mod = body.modifiers.new("Armature", "ARMATURE")
    mod.object = armature
    body.parent = armature
    return body


def add_smpl_model_body(context, armature: bpy.types.Object, model_path: str, betas=None) -> bpy.types.Object:
    """The user's SMPL mesh, moved so its pelvis sits on the armature's, skinned with the model's own weights."""
    from .core.smpl_mesh import load_smpl_body

    body = load_smpl_body(model_path, betas)
    pelvis_head = np.array(armature.data.bones["pelvis"].head_local)
    verts = body.vertices - body.joints[0] + pelvis_head
    mesh = bpy.data.meshes.new(f"{armature.name}_smpl")
    mesh.from_pydata(verts.tolist(), [], body.faces.tolist())
    mesh.update()
    obj = bpy.data.objects.new(f"{armature.name}_smpl", mesh)
    context.scene.collection.objects.link(obj)
    from rigs.skeleton import smpl_skeleton

    for j, name in enumerate(smpl_skeleton().joint_names):
        group = obj.vertex_groups.new(name=name)
        for weight in np.unique(np.round(body.weights[:, j], 4)):
            if weight <= 1e-4:
                continue
            idx = np.flatnonzero(np.round(body.weights[:, j], 4) == weight)
            group.add(idx.tolist(), float(weight), "REPLACE")
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = armature
    obj.parent = armature
    return obj


def create_smpl_armature(context, name: str = "SMPL", body: bool = True) -> bpy.types.Object:
    """A new armature object with the 24 SMPL bones standing on the floor at the origin (quaternion rotation mode),
    with a simple skinned tube body unless `body` is False."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    context.scene.collection.objects.link(obj)
    previous = context.view_layer.objects.active
    context.view_layer.objects.active = obj
    try:
        bpy.ops.object.mode_set(mode="EDIT")
        bones = []
        for bname, parent, head, tail in smpl_bone_layout():
            eb = data.edit_bones.new(bname)
            eb.head, eb.tail = head.tolist(), tail.tolist()
            eb.roll = 0.0
            if parent >= 0:
                eb.parent = bones[parent]
                eb.use_connect = False
            bones.append(eb)
        bpy.ops.object.mode_set(mode="OBJECT")
    except Exception:
        bpy.data.objects.remove(obj)
        bpy.data.armatures.remove(data)
        raise
    finally:
        context.view_layer.objects.active = previous if previous is not None else obj
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    if body:
        model_file = _smpl_model_file(context)
        if model_file:
            add_smpl_model_body(context, obj, model_file)
        else:
            add_simple_body(context, obj)
    return obj


def _smpl_model_file(context) -> str:
    """The SMPL model file set in the add-on preferences, if any."""
    for name, addon in context.preferences.addons.items():
        prefs = getattr(addon, "preferences", None)
        path = getattr(prefs, "smpl_model_file", "") if prefs is not None else ""
        if path and name.endswith(("blender_addon", "mace_dance")):
            return bpy.path.abspath(path)
    return ""


def armature_rig(obj: bpy.types.Object) -> Rig:
    """The armature's rest pose as a retarget Rig (bones in hierarchy order)."""
    bones = list(obj.data.bones)
    index = {b.name: i for i, b in enumerate(bones)}
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    mats = np.array([np.array(b.matrix_local) for b in bones])
    mw = np.array(obj.matrix_world)
    return rig_from_rest([b.name for b in bones], parents, mats, floor=-mw[2, 3], linear=mw[:3, :3])


def smpl_mapping(rig: Rig) -> dict[str, int]:
    """The bone map for an armature whose bones carry SMPL joint names, else the best preset's map."""
    from rigs.skeleton import smpl_skeleton

    names = smpl_skeleton().joint_names
    if all(n in rig.bone_names for n in names):
        return {n: rig.bone_names.index(n) for n in names}
    return guess_preset(rig.bone_names)[1]


def rows_of(obj: bpy.types.Object) -> dict[str, str]:
    """The armature's edited bone map (SMPL joint -> bone name; the Character box's rows), {} when it has none."""
    rows = getattr(obj, "mace_dance_bone_map", None)
    return {r.joint: r.bone for r in rows} if rows is not None and any(r.bone for r in rows) else {}


def character_mapping(obj: bpy.types.Object, rig: Rig) -> dict[str, int]:
    """The armature's own bone map (the Character box) when it has one, else SMPL names or the best preset's."""
    from rigs.presets import bone_map

    rows = rows_of(obj)
    return bone_map(rows, rig.bone_names) if rows else smpl_mapping(rig)


def apply_motion(context, obj: bpy.types.Object, motion: Motion, frame_start: int = 1, name: str = "dance",
                 resample_to_scene: bool = True) -> bpy.types.Action:
    """Bake `motion` onto `obj` (SMPL-named or a preset rig), at the scene frame rate from `frame_start`."""
    from .core.control_rig import is_rigify

    scene = context.scene
    rate = scene_fps(scene) if resample_to_scene else motion.fps
    rig = armature_rig(obj)
    if is_rigify(rig.bone_names):  # a control rig: key the controls an animator uses
        from .rigify import retarget_rigify

        action = retarget_rigify(context, obj, motion, frame_start, rate, name)
    else:
        action = bake_to_action(obj, bake_arrays(motion, rig, character_mapping(obj, rig), frame_start, rate), name)
    scene.frame_start = min(scene.frame_start, frame_start)
    scene.frame_end = max(scene.frame_end, int(np.ceil(action.frame_range[1])))
    return action


def read_smpl_motion(context, obj: bpy.types.Object, frame_start: int, frame_end: int) -> Motion:
    """The SMPL armature's dance between two scene frames, as a Motion at the scene frame rate."""
    from .core.bake import motion_from_smpl_keys

    rig = armature_rig(obj)
    mapping = smpl_mapping(rig)
    from rigs.skeleton import smpl_skeleton

    names = smpl_skeleton().joint_names
    frames = np.arange(frame_start, frame_end + 1, dtype=np.float64)
    curves = {(fc.data_path, fc.array_index): fc for fc in compat.action_fcurves(obj)}
    quats = np.zeros((len(frames), 24, 4))
    quats[..., 0] = 1.0
    loc = np.zeros((len(frames), 3))
    for j, name in enumerate(names):
        bone = rig.bone_names[mapping[name]]
        for k in range(4):
            fc = curves.get((f'pose.bones["{bone}"].rotation_quaternion', k))
            if fc is not None:
                quats[:, j, k] = [fc.evaluate(f) for f in frames]
    root = rig.bone_names[mapping["pelvis"]]
    for k in range(3):
        fc = curves.get((f'pose.bones["{root}"].location', k))
        if fc is not None:
            loc[:, k] = [fc.evaluate(f) for f in frames]
    scene = context.scene
    return motion_from_smpl_keys(quats, loc, rig, mapping, scene_fps(scene))


def edit_reference(context, obj: bpy.types.Object, stored: Motion | None, frame_start: int, frame_end: int) -> Motion:
    """The dance an edit keeps parts of: the stored 30-fps dance while the keys are still the ones it made (exact at
    any scene rate), else the keys as the animator changed them (sampled at the scene rate)."""
    rig = armature_rig(obj)
    from .core.bake import is_smpl_rig

    if not is_smpl_rig(rig, smpl_mapping(rig)):  # a character's keys are not SMPL's: its stored dance is the reference
        if stored is None:
            raise ValueError(f"{obj.name} is not an SMPL armature and carries no stored dance; edit the SMPL dance "
                             "and retarget it again")
        return stored
    keys = read_smpl_motion(context, obj, frame_start, frame_end)
    if stored is not None:
        baked = stored.resample(keys.fps, cover=True)
        if baked.num_frames == keys.num_frames and \
                np.abs(baked.joint_positions() - keys.joint_positions()).max() < 1e-4:
            return stored
    return keys


def curve_path_xz(obj: bpy.types.Object, frames: int) -> np.ndarray:
    """(frames, 2) SMPL x/z positions evenly spaced along a curve object (its evaluated world-space polyline)."""
    from .core.armature import Y_UP_TO_Z_UP

    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).to_mesh()
    try:
        pts = np.array([obj.matrix_world @ v.co for v in mesh.vertices])
    finally:
        obj.evaluated_get(depsgraph).to_mesh_clear()
    if len(pts) < 2:
        raise ValueError(f"{obj.name} is not a usable path (it needs at least two points)")
    yup = pts @ Y_UP_TO_Z_UP  # row-wise C^T: Blender (x, y, z) -> SMPL (x, z, -y)
    seg = np.linalg.norm(np.diff(yup[:, [0, 2]], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    u = np.linspace(0.0, s[-1], frames)
    return np.stack([np.interp(u, s, yup[:, 0]), np.interp(u, s, yup[:, 2])], axis=1)


def add_beat_markers(scene, beat_frames, motion_fps: float, frame_start: int, num_frames: int = 0,
                     prefix: str = MARKER_PREFIX) -> int:
    """Timeline markers on the music beats (over the whole dance of `num_frames`); returns how many were added."""
    frames = beat_marker_frames(beat_frames, motion_fps, scene_fps(scene), frame_start, num_frames)
    for i, f in enumerate(frames):
        scene.timeline_markers.new(f"{prefix}{i + 1}", frame=f)
    return len(frames)


def add_section_markers(scene, sections, motion_fps: float, frame_start: int) -> int:
    """Timeline markers named by the song's sections (A, B, A', ...) at their first frames; returns how many."""
    rate = scene_fps(scene) / motion_fps
    for start, _end, label in sections:
        scene.timeline_markers.new(str(label), frame=int(round(frame_start + float(start) * rate)))
    return len(sections)


def add_sound_strip(scene, path: str, frame_start: int, name: str = "song", time_start: float = 0.0,
                    time_end: float = 0.0):
    """The song as a sound strip whose stretch [time_start, time_end) s (the whole song by default) plays from scene
    frame `frame_start`, where the dance made for that stretch starts (Blender 4.x and 5.x sequencer APIs)."""
    offset = int(round(time_start * scene_fps(scene)))
    strip = compat.sequencer_strips(scene).new_sound(name, path, channel=1, frame_start=frame_start - offset)
    if offset:  # the strip's content starts earlier; its first `offset` frames are trimmed off
        strip.frame_offset_start = offset
    if time_end > time_start:
        length = int(round((time_end - time_start) * scene_fps(scene)))
        strip.frame_offset_end = max(0, strip.frame_duration - offset - length)
    return strip
