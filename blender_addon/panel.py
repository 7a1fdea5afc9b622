"""The Dance tab in the 3D Viewport sidebar."""

from __future__ import annotations

import bpy


class DANCE_PT_main(bpy.types.Panel):
    bl_label = "MACE-Dance"
    bl_idname = "DANCE_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"

    def draw(self, context):
        s = context.scene.mace_dance
        layout = self.layout
        layout.prop(s, "audio_path")
        layout.prop(s, "start_frame")
        layout.prop(s, "whole_song")
        if not s.whole_song:
            row = layout.row(align=True)
            row.prop(s, "time_start")
            row.prop(s, "time_end")
        col = layout.column(align=True)
        col.prop(s, "style")
        col.prop(s, "beta")
        col.prop(s, "seed")
        col.prop(s, "steps")
        col.prop(s, "beat_sync")
        col.prop(s, "variants")
        layout.prop(s, "beat_markers")
        layout.prop(s, "add_sound")
        row = layout.row(align=True)
        row.operator("dance.generate", icon="PLAY")
        row.operator("dance.cancel", icon="CANCEL")
        if s.status and s.failed:
            box = layout.box()
            box.alert = True
            box.label(text=s.status, icon="ERROR")
        elif s.status:
            layout.progress(factor=s.progress, text=s.status)
        box = layout.box()
        box.prop(s, "edit_mode")
        if s.edit_mode in ("RANGE", "KEEP_RANGE"):
            row = box.row(align=True)
            row.prop(s, "edit_start")
            row.prop(s, "edit_end")
        elif s.edit_mode == "PATH":
            box.prop(s, "path_object")
        box.operator("dance.edit", icon="MOD_TIME")
        layout.operator("dance.apply_file", icon="FILE")
        vbox = layout.box()
        vbox.prop(s, "reference_image")
        vbox.prop(s, "video_steps")
        vbox.operator("dance.video", icon="RENDER_ANIMATION")
        layout.operator("dance.retarget", icon="ARMATURE_DATA")
        row = layout.row(align=True)
        row.operator("dance.export", text="Export FBX").format = "FBX"
        row.operator("dance.export", text="Export BVH").format = "BVH"


CLASSES = (DANCE_PT_main,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
