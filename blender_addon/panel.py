"""The Dance tab in the 3D Viewport sidebar."""

from __future__ import annotations

import bpy


class DanceTab:
    """Where the add-on's panels live: the 3D Viewport's sidebar, in the Dance tab (a mixin for each panel)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Dance"


class DANCE_PT_main(DanceTab, bpy.types.Panel):
    bl_label = "MACE-Dance"
    bl_idname = "DANCE_PT_main"

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
        col.prop(s, "novelty")
        col.prop(s, "seed")
        col.prop(s, "steps")
        col.prop(s, "beat_sync")
        col.prop(s, "beat_guidance")
        col.prop(s, "variants")
        self.draw_beat(s, layout.box())
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
        self.draw_choreography(context, layout.box())
        layout.operator("dance.apply_file", icon="FILE")
        vbox = layout.box()
        vbox.prop(s, "reference_image")
        vbox.prop(s, "video_steps")
        vbox.operator("dance.video", icon="RENDER_ANIMATION")

    @staticmethod
    def draw_beat(s, box) -> None:
        """The beat: markers on the timeline and the animator's overrides (tempo, meter, downbeat, own markers)."""
        row = box.row(align=True)
        row.prop(s, "bpm")
        row.prop(s, "meter", text="")
        row = box.row(align=True)
        row.prop(s, "use_downbeat", text="")
        sub = row.row(align=True)
        sub.active = s.use_downbeat
        sub.prop(s, "downbeat")
        row = box.row(align=True)
        row.prop(s, "beat_markers")
        row.prop(s, "use_beat_markers")

    @staticmethod
    def draw_choreography(context, box) -> None:
        """Takes, comp marks, keyed poses and repeats (choreography.py)."""
        from .takes import playing_take, take_actions

        s = context.scene.mace_dance
        box.label(text="Choreography", icon="NLA")
        row = box.row(align=True)
        row.prop(s, "takes")
        row.prop(s, "takes_range")
        box.operator("dance.takes", icon="NLA_PUSHDOWN")
        obj = context.active_object
        takes = take_actions(obj) if obj is not None and obj.type == "ARMATURE" else []
        if takes:
            playing = playing_take(obj)
            col = box.column(align=True)
            for number, action, track in takes:
                row = col.row(align=True)
                row.label(text=track.name, icon="PLAY" if number == playing else "BLANK1")
                row.operator("dance.audition_take", text="Audition").number = number
            row = box.row(align=True)
            row.prop(s, "comp_take")
            row.prop(s, "edit_start")
            row.prop(s, "edit_end")
            box.operator("dance.mark_take", icon="MARKER_HLT")
            for mark in s.comp_marks:
                box.label(text=f"frames {mark.frame_start}-{mark.frame_end}: take {mark.take}")
            row = box.row(align=True)
            row.prop(s, "comp_base")
            row.operator("dance.clear_marks", text="", icon="X")
            box.operator("dance.comp", icon="SEQ_STRIP_DUPLICATE")
        row = box.row(align=True)
        row.prop(s, "keys_whole_body")
        row.prop(s, "keys_on_beats")
        box.operator("dance.through_keys", icon="KEYFRAME_HLT")
        row = box.row(align=True)
        row.prop(s, "repeat_mode", text="")
        row.operator("dance.repeat", icon="FILE_REFRESH")


CLASSES = (DANCE_PT_main,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
