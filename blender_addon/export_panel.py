"""The Dance tab's Export box: engine preset, which take (or all takes), root motion, the FBX/BVH buttons, and the
game-ready options Generate sends (in place, loop)."""

from __future__ import annotations

import os

import bpy

from .export_props import ALL, PLAYING
from .launch import fail
from .panel import DanceTab


def chosen_action(obj: bpy.types.Object, take: str) -> bpy.types.Action | None:
    """The action the Take setting names on `obj` (None: the playing one; ValueError when that take is gone)."""
    from .takes import take_actions

    if take in ("", PLAYING, ALL):
        return None
    for number, action, _track in take_actions(obj):
        if str(number) == take:
            return action
    raise ValueError(f"{obj.name} has no take {take}; choose the take again in Export")


class DANCE_OT_export_game(bpy.types.Operator):
    """Export the chosen take (or all takes) of the active armature: FBX with the Export box's engine preset and root
    motion, or BVH (y up)"""

    bl_idname = "dance.export_game"
    bl_label = "Export Dance"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    format: bpy.props.EnumProperty(name="Format", items=[("FBX", "FBX", ""), ("BVH", "BVH", "")], default="FBX")

    def execute(self, context):
        from .export import export_bvh_y_up, export_fbx, export_takes, export_target

        e = context.scene.mace_dance_export
        obj, path, problem = export_target(context, self.filepath, self.format)
        if problem:
            return fail(self, problem)
        options = {"simplify": e.simplify, "engine": e.engine, "root_motion": e.root_motion}
        try:
            if e.take == ALL:
                written = export_takes(context, obj, path, self.format, **options)
            elif self.format == "BVH":  # the engine presets and root motion are FBX's
                export_bvh_y_up(context, obj, path, action=chosen_action(obj, e.take))
                written = [path]
            else:
                export_fbx(context, obj, path, action=chosen_action(obj, e.take), **options)
                written = [path]
        except ValueError as exc:  # already a sentence naming the armature, take or setting
            return fail(self, str(exc).rstrip(".") + ".")
        except (OSError, RuntimeError) as exc:
            return fail(self, f"Could not export {path}: {exc}")
        self.report({"INFO"}, f"Exported {', '.join(os.path.basename(w) for w in written)}")
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class DANCE_PT_export(DanceTab, bpy.types.Panel):
    bl_label = "Export"
    bl_idname = "DANCE_PT_export"
    bl_parent_id = "DANCE_PT_main"

    def draw(self, context):
        e = context.scene.mace_dance_export
        layout = self.layout
        col = layout.column(align=True)
        col.label(text="Generate (game-ready)")
        row = col.row(align=True)
        row.prop(e, "in_place")
        row.prop(e, "loop")
        col = layout.column(align=True)
        col.prop(e, "engine")
        col.prop(e, "take")
        col.prop(e, "root_motion")
        col.prop(e, "simplify")
        row = layout.row(align=True)
        row.operator("dance.export_game", text="Export FBX", icon="EXPORT").format = "FBX"
        row.operator("dance.export_game", text="Export BVH").format = "BVH"


CLASSES = (DANCE_OT_export_game, DANCE_PT_export)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
