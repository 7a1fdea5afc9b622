"""The bone-map editor: which bone of the character carries each SMPL joint, guessed from a preset, fixed row by row,
kept on the armature (saved with the .blend) and saved as a preset shared with every other tool (rigs.presets).

Retarget uses an armature's own map when it has one, else it guesses as before. Rigify rigs are retargeted onto
their controls (rigify.py) and do not use the map.
"""

from __future__ import annotations

import bpy
from bpy.props import CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from .launch import fail
from .panel import DanceTab
from .scene import rows_of

AUTO = "AUTO"
_ITEMS: list[tuple] = []  # Blender keeps only pointers to dynamic enum strings: hold them here


def stable_number(name: str) -> int:
    """An enum item's number from its name: Blender stores a dynamic enum's choice as this number, so a preset
    saved later (sorting before the chosen one) must not shift the choice onto its neighbour."""
    import zlib

    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def preset_items(self, context) -> list[tuple]:
    """Guess, then every shipped and user preset by its own name (user presets keep their case)."""
    from rigs.presets import list_presets

    _ITEMS[:] = [(AUTO, "Guess from bone names", "The preset matching the most bone names", 0)] + [
        (p, p, "", stable_number(p)) for p in list_presets() if p != AUTO]
    return _ITEMS


class BoneMapRow(bpy.types.PropertyGroup):
    """One SMPL joint and the character's bone that carries it ('' for none)."""

    joint: StringProperty(name="SMPL joint")
    bone: StringProperty(name="Bone", description="The character's bone that carries this SMPL joint (empty: none)")


class BoneMapSettings(bpy.types.PropertyGroup):
    """The editor's choices: the preset to start from and the name to save under."""

    preset: EnumProperty(name="Preset", items=preset_items, description="The bone map to start from")
    save_name: StringProperty(name="Save as", default="my_rig",
                              description="Preset name (letters, digits, _ - .); saved in the presets folder every "
                                          "MACE-Dance tool reads")


def fill(obj: bpy.types.Object, mapping: dict[str, int], bone_names: tuple[str, ...] | list[str]) -> None:
    """Set the armature's rows to `mapping` (SMPL joint -> bone index): one row per SMPL joint, unmapped ones empty."""
    from rigs.skeleton import smpl_skeleton

    rows = obj.mace_dance_bone_map
    rows.clear()
    for joint in smpl_skeleton().joint_names:
        row = rows.add()
        row.joint = joint
        row.bone = bone_names[mapping[joint]] if joint in mapping else ""


def _armature(context) -> bpy.types.Object | None:
    """The active object when it is an armature."""
    obj = context.active_object
    return obj if obj is not None and obj.type == "ARMATURE" else None


class DANCE_OT_bone_map_guess(bpy.types.Operator):
    """Fill the selected armature's bone map from the chosen preset (or the best-matching one)"""

    bl_idname = "dance.bone_map_guess"
    bl_label = "Fill Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from rigs.presets import RetargetError, RetargetPreset, guess_preset

        from .scene import armature_rig

        obj = _armature(context)
        if obj is None:
            return fail(self, "Select the character's armature first.")
        names = armature_rig(obj).bone_names
        choice = context.scene.mace_dance_bones.preset
        try:
            if choice == AUTO:
                preset, mapping = guess_preset(names)
            else:
                preset = RetargetPreset.load(choice)
                mapping = preset.resolve(names)
        except RetargetError:  # nothing to start from: empty rows to fill by hand
            fill(obj, {}, names)
            self.report({"WARNING"}, f"No preset matches {obj.name}'s bone names; pick each bone in the Character "
                                     "box's rows.")
            return {"FINISHED"}
        fill(obj, mapping, names)
        empty = 24 - len(mapping)
        self.report({"INFO"}, f"Bone map from the {preset.name} preset: {len(mapping)} joints mapped"
                              + (f", {empty} left empty" if empty else "") + ".")
        return {"FINISHED"}


class DANCE_OT_bone_map_save(bpy.types.Operator):
    """Save the selected armature's bone map as a preset (for other characters, the CLI and other machines)"""

    bl_idname = "dance.bone_map_save"
    bl_label = "Save as Preset"

    def invoke(self, context, event):
        from rigs.presets import list_presets

        name = context.scene.mace_dance_bones.save_name.strip()
        if name in list_presets():  # from the panel: ask before replacing a preset (scripts call execute)
            return context.window_manager.invoke_confirm(self, event)
        return self.execute(context)

    def execute(self, context):
        from rigs.presets import RetargetError, RetargetPreset

        obj = _armature(context)
        if obj is None:
            return fail(self, "Select the character's armature first.")
        rows = {j: b for j, b in rows_of(obj).items() if b}
        if not rows:
            return fail(self, f"{obj.name} has no bone map to save; fill it first.")
        name = context.scene.mace_dance_bones.save_name.strip()
        try:
            path = RetargetPreset(name, f"Saved from {obj.name} in Blender", rows).save()
        except RetargetError as exc:
            return fail(self, f"Cannot save the bone map: {exc}.")
        except OSError as exc:
            return fail(self, f"Cannot save the bone map to {exc.filename}: {exc.strerror}.")
        self.report({"INFO"}, f"Saved the bone map as preset {name!r} ({path}).")
        return {"FINISHED"}


class DANCE_OT_bone_map_clear(bpy.types.Operator):
    """Forget the selected armature's bone map (Retarget guesses from bone names again)"""

    bl_idname = "dance.bone_map_clear"
    bl_label = "Clear Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        if obj is None:
            return fail(self, "Select the character's armature first.")
        obj.mace_dance_bone_map.clear()
        return {"FINISHED"}


class DANCE_UL_bone_map(bpy.types.UIList):
    """A row per SMPL joint: its name and the character's bone, picked from the armature's bones."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        split = row.split(factor=0.4)
        split.label(text=item.joint)
        arm = data.data if isinstance(data, bpy.types.Object) else None
        cell = split.row(align=True)
        cell.alert = bool(item.bone) and arm is not None and item.bone not in arm.bones
        if arm is not None:
            cell.prop_search(item, "bone", arm, "bones", text="")
        else:
            cell.prop(item, "bone", text="")


class DANCE_PT_character(DanceTab, bpy.types.Panel):
    """Retarget onto a character: its bone map, editable row by row, and presets."""

    bl_label = "Character"
    bl_idname = "DANCE_PT_character"
    bl_parent_id = "DANCE_PT_main"

    def draw(self, context):
        from .core.control_rig import is_rigify

        layout = self.layout
        obj = _armature(context)
        b = context.scene.mace_dance_bones
        if obj is None:
            layout.label(text="Select the character's armature", icon="INFO")
            return
        if is_rigify([bone.name for bone in obj.data.bones]):
            layout.label(text="Rigify: the dance goes onto its controls", icon="INFO")
        else:
            row = layout.row(align=True)
            row.prop(b, "preset", text="")
            row.operator("dance.bone_map_guess", text="Fill", icon="BONE_DATA")
            if len(obj.mace_dance_bone_map):
                layout.template_list("DANCE_UL_bone_map", "", obj, "mace_dance_bone_map", obj,
                                     "mace_dance_bone_map_index", rows=8)
                row = layout.row(align=True)
                row.prop(b, "save_name", text="")
                row.operator("dance.bone_map_save", text="Save", icon="FILE_TICK")
                row.operator("dance.bone_map_clear", text="", icon="X")
        layout.operator("dance.retarget", icon="ARMATURE_DATA")


CLASSES = (BoneMapRow, BoneMapSettings, DANCE_OT_bone_map_guess, DANCE_OT_bone_map_save, DANCE_OT_bone_map_clear,
           DANCE_UL_bone_map)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.mace_dance_bone_map = CollectionProperty(type=BoneMapRow)
    bpy.types.Object.mace_dance_bone_map_index = IntProperty(default=0)
    bpy.types.Scene.mace_dance_bones = PointerProperty(type=BoneMapSettings)


def register_panel() -> None:
    """The Character sub-panel (after the main panel it hangs from)."""
    bpy.utils.register_class(DANCE_PT_character)


def unregister_panel() -> None:
    bpy.utils.unregister_class(DANCE_PT_character)


def unregister() -> None:
    del bpy.types.Scene.mace_dance_bones
    del bpy.types.Object.mace_dance_bone_map_index
    del bpy.types.Object.mace_dance_bone_map
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
