"""Retargeting onto a generated Rigify rig: keys on the control bones an animator uses (FK limbs, torso, hips,
chest, spine, neck, head), never on DEF-/ORG-/MCH- bones.

The controls' targets come from blender_addon.core.control_rig. To turn them into the controls' own channels
through Rigify's helper bones and constraints, a temporary armature carries the targets, each control copies its
target's transform, and Blender's visual-keying bake records the result, one scene evaluation per frame; then the
temporary armature and constraints are removed.
"""

from __future__ import annotations

import bpy
import numpy as np

from rigs import rotations as rot
from rigs.motion import Motion

from . import compat
from .core.control_rig import RIGIFY_CONTROLS, RIGIFY_FK_SWITCHES, control_targets, org_parents, org_targets

CONSTRAINT = "MACE-Dance target"


def _org_hierarchy(obj: bpy.types.Object) -> tuple[list[str], list[int], np.ndarray]:
    """The ORG- bones in their logical hierarchy (core.control_rig.org_parents), parents first, with their rest."""
    bones = [b for b in obj.data.bones if b.name.startswith("ORG-")]
    ancestors = []
    for b in bones:
        p = b.parent
        while p is not None and not p.name.startswith("ORG-"):
            p = p.parent
        ancestors.append(p.name if p is not None else None)
    names, parents = org_parents([b.name for b in bones], ancestors, [tuple(b.head_local) for b in bones],
                                 [tuple(b.tail_local) for b in bones])
    data = obj.data.bones
    return names, parents, np.array([np.array(data[n].matrix_local) for n in names])


def _proxy(context, rig: bpy.types.Object, targets: dict[str, np.ndarray], frames: np.ndarray) -> bpy.types.Object:
    """A temporary armature of parentless bones at the controls' rest, keyed to the controls' targets."""
    from .keying import key_pose

    data = bpy.data.armatures.new("MACE-Dance targets")
    proxy = bpy.data.objects.new("MACE-Dance targets", data)
    context.scene.collection.objects.link(proxy)
    proxy.matrix_world = rig.matrix_world
    previous = context.view_layer.objects.active
    context.view_layer.objects.active = proxy
    try:
        bpy.ops.object.mode_set(mode="EDIT")
        for name in targets:
            src = rig.data.bones[name]
            eb = data.edit_bones.new(name)
            eb.head, eb.tail = src.head_local, src.tail_local
            eb.matrix = src.matrix_local
        bpy.ops.object.mode_set(mode="OBJECT")
        rest = {n: np.array(data.bones[n].matrix_local) for n in targets}
        rotations, locations = {}, {}
        for name, m in targets.items():
            basis = np.linalg.inv(rest[name]) @ m  # parentless: pose = rest @ basis
            rotations[name] = _continuous(rot.matrix_to_quaternion(basis[:, :3, :3]))
            locations[name] = basis[:, :3, 3]
        key_pose(proxy, frames, rotations, locations, "MACE-Dance targets")
    except Exception:
        _remove(proxy)
        raise
    finally:
        context.view_layer.objects.active = previous
    return proxy


def _continuous(q: np.ndarray) -> np.ndarray:
    from .core.bake import continuous

    return continuous(q[:, None])[:, 0]


def _remove(obj: bpy.types.Object) -> None:
    action = obj.animation_data.action if obj.animation_data else None
    data = obj.data
    bpy.data.objects.remove(obj)
    bpy.data.armatures.remove(data)
    if action is not None and action.users == 0:
        bpy.data.actions.remove(action)


def retarget_rigify(context, rig: bpy.types.Object, motion: Motion, frame_start: int, scene_fps: float,
                    name: str = "dance_rigify") -> bpy.types.Action:
    """Bake `motion` onto a generated Rigify rig's controls (limbs switched to FK); returns the new action."""
    if abs(scene_fps - motion.fps) > 1e-6:
        motion = motion.resample(scene_fps, cover=True)
    names, parents, rest = _org_hierarchy(rig)
    org = org_targets(names, parents, rest, motion)
    org_rest = dict(zip(names, rest))
    controls = {c: np.array(rig.data.bones[c].matrix_local) for c in RIGIFY_CONTROLS}
    targets = control_targets(org, org_rest, controls)
    frames = frame_start + np.arange(motion.num_frames)
    first, last = int(frames[0]), int(frames[-1])
    proxy = _proxy(context, rig, targets, frames)
    previous_active = context.view_layer.objects.active
    previous_mode = rig.mode  # 'OBJECT' or 'POSE' (or 'EDIT'): the user gets it back
    selected = list(context.selected_objects)
    old = compat.active_action(rig)
    switches = {b: rig.pose.bones[b]["IK_FK"] for b in RIGIFY_FK_SWITCHES
                if b in rig.pose.bones and "IK_FK" in rig.pose.bones[b].keys()}
    modes = {c: rig.pose.bones[c].rotation_mode for c in targets}
    bone_selection = {pb.name: compat.bone_selected(pb) for pb in rig.pose.bones}
    added, action = [], None
    try:
        for switch in switches:
            rig.pose.bones[switch]["IK_FK"] = 1.0
        for control in targets:
            pb = rig.pose.bones[control]
            pb.rotation_mode = "QUATERNION"
            con = pb.constraints.new("COPY_TRANSFORMS")
            con.name, con.target, con.subtarget = CONSTRAINT, proxy, control
            added.append((pb, con))
        if rig.animation_data is not None:
            rig.animation_data.action = None  # bake from the targets alone, into a fresh action
        context.view_layer.objects.active = rig
        for o in selected:
            o.select_set(False)
        rig.select_set(True)
        if rig.mode != "POSE":
            bpy.ops.object.mode_set(mode="POSE")
        for pb in rig.pose.bones:
            compat.select_bone(pb, pb.name in targets)
        bpy.ops.nla.bake(frame_start=first, frame_end=last, only_selected=True, visual_keying=True,
                         clear_constraints=False, use_current_action=False, bake_types={"POSE"})
        action = rig.animation_data.action
        action.name = name
        if old[0] is not None:
            old[0].use_fake_user = True  # the user's previous animation stays in the file
    except Exception:
        if action is not None:
            bpy.data.actions.remove(action)
        compat.restore_action(rig, *old)
        for switch, value in switches.items():
            rig.pose.bones[switch]["IK_FK"] = value
        for control, mode in modes.items():
            rig.pose.bones[control].rotation_mode = mode
        raise
    finally:
        for pb, con in added:
            pb.constraints.remove(con)
        _remove(proxy)
        for pb in rig.pose.bones:
            compat.select_bone(pb, bone_selection.get(pb.name, False))
        if rig.mode != previous_mode and context.view_layer.objects.active == rig:
            bpy.ops.object.mode_set(mode=previous_mode if previous_mode in ("OBJECT", "POSE") else "OBJECT")
        for o in selected:
            if o.name in context.view_layer.objects:
                o.select_set(True)
        context.view_layer.objects.active = previous_active
    return action
