"""Every difference between the Blender versions the add-on supports (4.2 LTS to 5.x), in one place.

- Actions: 4.4 made them layered (slots, layers, channelbags); before, an action holds its F-curves directly.
  `ActionFCurves.new` names the group `action_group`; the channelbag's `new` takes no group in 4.4/4.5 and
  `group_name` since 5.0, whose anim_utils also gained the channelbag helpers.
- Sequencer: `SequenceEditor.sequences` became `strips` in 4.4 (the old name is gone in 5.0).
- Selection: bones are selected on the PoseBone since 5.0 (on the Bone before).
"""

from __future__ import annotations

import bpy

def layered_actions() -> bool:
    """Whether this Blender's actions have slots and layers (4.4+)."""
    return hasattr(bpy.types.Action, "bl_rna") and "slots" in bpy.types.Action.bl_rna.properties


def strip_slot(strip, action) -> None:
    """Layered actions (4.4+) play in an NLA strip through one of their slots: the one made for this armature."""
    if layered_actions() and hasattr(strip, "action_slot") and len(action.slots) and strip.action_slot is None:
        strip.action_slot = action.slots[0]


class Channels:
    """Where a new action's F-curves go: the action itself (before 4.4) or its slot's channelbag (4.4+)."""

    def __init__(self, owner):
        self.owner = owner  # Action or ActionChannelbag: both have .fcurves and .groups

    def new(self, data_path: str, index: int, group: str = ""):
        """A new F-curve, in the named group (created once) when `group` is given."""
        fcurves = self.owner.fcurves
        params = fcurves.bl_rna.functions["new"].parameters
        if group and "group_name" in params:  # 5.0+
            return fcurves.new(data_path, index=index, group_name=group)
        if group and "action_group" in params:  # before 4.4
            return fcurves.new(data_path, index=index, action_group=group)
        fc = fcurves.new(data_path, index=index)
        if group:  # 4.4 and 4.5: the channelbag's new() takes no group
            fc.group = self.owner.groups.get(group) or self.owner.groups.new(group)
        return fc


def new_action_channels(action: bpy.types.Action, obj: bpy.types.Object) -> tuple[Channels, object]:
    """(where to create F-curves, slot or None) for a new action that will animate `obj`."""
    if layered_actions():
        slot = action.slots.new(id_type="OBJECT", name=obj.name)
        return Channels(_channelbag(action, slot, ensure=True)), slot
    return Channels(action), None


def _channelbag(action: bpy.types.Action, slot, ensure: bool = False):
    """The slot's channelbag in the action's first keyframe strip (4.4 and 4.5 lack anim_utils' helpers)."""
    from bpy_extras import anim_utils

    helper = "action_ensure_channelbag_for_slot" if ensure else "action_get_channelbag_for_slot"
    if hasattr(anim_utils, helper):  # 5.0+
        return getattr(anim_utils, helper)(action, slot)
    if not action.layers:
        if not ensure:
            return None
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        if not ensure:
            return None
        layer.strips.new(type="KEYFRAME")
    return layer.strips[0].channelbag(slot, ensure=ensure)


def assign_action(obj: bpy.types.Object, action: bpy.types.Action, slot=None) -> None:
    """Make `action` (and its slot, on layered actions) the object's active animation. The action it replaces keeps
    a fake user, so it is still in the file after saving (Blender drops data nothing uses)."""
    ad = obj.animation_data or obj.animation_data_create()
    if ad.action is not None and ad.action != action:
        ad.action.use_fake_user = True
    ad.action = action
    if slot is not None:
        ad.action_slot = slot


def active_action(obj: bpy.types.Object) -> tuple[bpy.types.Action | None, object]:
    """(action, slot or None) the object plays now, for putting back with `restore_action`."""
    ad = obj.animation_data
    if ad is None:
        return None, None
    return ad.action, getattr(ad, "action_slot", None) if layered_actions() else None


def restore_action(obj: bpy.types.Object, action: bpy.types.Action | None, slot=None) -> None:
    """Put back what `active_action` returned (after a failed bake)."""
    ad = obj.animation_data
    if ad is None:
        if action is None:
            return
        ad = obj.animation_data_create()
    ad.action = action
    if action is not None and slot is not None:
        try:
            ad.action_slot = slot
        except (TypeError, RuntimeError, ReferenceError):
            pass  # the slot went with a removed action


def action_fcurves(obj: bpy.types.Object):
    """The F-curves that animate `obj` in its active action (its slot's channelbag on layered actions)."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        raise ValueError(f"{obj.name} has no dance (no action)")
    action = ad.action
    if layered_actions() and getattr(ad, "action_slot", None) is not None:
        bag = _channelbag(action, ad.action_slot)
        if bag is not None:
            return bag.fcurves
        return []
    if layered_actions():
        return []  # a layered action with no slot for this object animates nothing on it
    return action.fcurves


def sequencer_strips(scene: bpy.types.Scene):
    """The scene's sequencer strip collection (created if needed), under either name."""
    if not scene.sequence_editor:
        scene.sequence_editor_create()
    ed = scene.sequence_editor
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def bone_selected(pose_bone: bpy.types.PoseBone) -> bool:
    """Whether the pose bone is selected (PoseBone.select since 5.0, Bone.select before)."""
    if "select" in pose_bone.bl_rna.properties:
        return bool(pose_bone.select)
    return bool(pose_bone.bone.select)


def select_bone(pose_bone: bpy.types.PoseBone, state: bool = True) -> None:
    """Select or deselect a pose bone on either API."""
    if "select" in pose_bone.bl_rna.properties:
        pose_bone.select = state
    else:
        pose_bone.bone.select = state


def has_audio() -> bool:
    """Whether this Blender can make sound strips (the bpy 4.2 wheel is built without Audaspace)."""
    return bool(getattr(bpy.app.build_options, "audaspace", True))
