"""The Dance panel's operators. Each checks its inputs and answers in one sentence naming the user's file or setting
when it cannot run (reported as an error, returning CANCELLED); the work itself lives in jobs, results, scene and
stored_dance."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np

from rigs.motion import Motion, MotionFileError

from bridge.request import Edit

from . import jobs, results, stored_dance
from .launch import fail as _fail, game_options, panel_settings, section, song_problem, start, start_dance


class DANCE_OT_generate(bpy.types.Operator):
    """Send the song to the backend and dance to it"""

    bl_idname = "dance.generate"
    bl_label = "Generate Dance"

    def execute(self, context):
        s = context.scene.mace_dance
        path = bpy.path.abspath(s.audio_path) if s.audio_path else ""
        problem = song_problem(path)
        if problem:
            return _fail(self, problem)
        if jobs.busy():
            return _fail(self, "A dance is already being generated; cancel it first.")
        if not s.whole_song and s.time_end <= s.time_start:
            return _fail(self, "The time range is empty: 'To' must be after 'From'.")
        settings = panel_settings(context)
        started = start_dance(self, context, path, settings, beta=s.beta, seed=s.seed, steps=s.steps,
                              beat_sync=s.beat_sync, style=s.style, beat_guidance=s.beat_guidance,
                              novelty=s.novelty, **game_options(settings), **section(settings))
        if started == {"FINISHED"}:
            jobs.SESSION.pending_variants = [s.seed + k for k in range(1, s.variants)]
        return started


class DANCE_OT_edit(bpy.types.Operator):
    """Edit the selected SMPL dance: regenerate or keep a frame range, keep the selected bones, or follow a path"""

    bl_idname = "dance.edit"
    bl_label = "Edit Dance"

    def execute(self, context):
        from .scene import curve_path_xz, edit_reference, motion_range

        s = context.scene.mace_dance
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE" or obj.animation_data is None or obj.animation_data.action is None:
            return _fail(self, "Select the SMPL armature whose dance you want to edit.")
        stored = None
        if stored_dance.has_dance(obj):
            try:
                stored = stored_dance.load(obj)
            except ValueError as exc:
                return _fail(self, str(exc))
        settings = stored[1] if stored else stored_dance.DanceSettings(song=s.audio_path, start_frame=s.start_frame)
        path = bpy.path.abspath(settings.song) if settings.song else ""
        if song_problem(path) and s.audio_path:  # the dance's own song moved: the panel's Song stands in for it
            path, settings.song = bpy.path.abspath(s.audio_path), s.audio_path
        problem = song_problem(path)
        if problem:
            return _fail(self, problem)
        if jobs.busy():
            return _fail(self, "A dance is already being generated; cancel it first.")
        first = settings.start_frame
        last = int(np.ceil(obj.animation_data.action.frame_range[1] - 1e-6))
        try:
            ref = edit_reference(context, obj, stored[0] if stored else None, first, last)
        except (ValueError, KeyError) as exc:
            return _fail(self, f"The dance on {obj.name} cannot be edited: {exc}")
        # motion frames (30 fps) the dance spans; the stored dance knows exactly, keys give it to within a frame
        n = stored[0].num_frames if stored else int(np.floor((ref.num_frames - 1) * 30.0 / ref.fps + 1e-6)) + 1
        edit, parts = Edit(), {"reference": ref}
        if s.edit_mode in ("RANGE", "KEEP_RANGE"):
            if not first <= s.edit_start <= s.edit_end <= last:
                return _fail(self, f"The edit range {s.edit_start}-{s.edit_end} must lie inside the dance "
                                   f"(frames {first}-{last}).")
            a, b = motion_range(context.scene, first, s.edit_start, s.edit_end, n)
            edit.keep_frames = [(0, a), (b, n)] if s.edit_mode == "RANGE" else [(a, b)]
        elif s.edit_mode == "BONES":
            from . import compat

            bones = [pb.name for pb in obj.pose.bones if compat.bone_selected(pb)]
            if not bones:
                return _fail(self, "Select the bones to keep (in Pose Mode) first.")
            edit.keep_joints, edit.keep_root = bones, "pelvis" in bones
        else:
            if s.path_object is None:
                return _fail(self, "Choose a curve object as the path first.")
            try:
                parts = {"path_xz": curve_path_xz(s.path_object, n)}
            except ValueError as exc:
                return _fail(self, str(exc))
        if "reference" in parts:
            parts["edit"] = edit
        new_settings = replace(settings, seed=s.seed, beta=s.beta, steps=s.steps)
        # a dance made for a section of the song is edited on that section
        return start_dance(self, context, path, new_settings, obj.name, beta=s.beta, seed=s.seed, steps=s.steps,
                           lock_feet=False, style=settings.style, beat_sync=settings.beat_sync,
                           beat_guidance=settings.beat_guidance, novelty=settings.novelty, **section(settings),
                           **game_options(settings, editing=True), **parts)


class DANCE_OT_cancel(bpy.types.Operator):
    """Stop the dance being generated"""

    bl_idname = "dance.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if not jobs.busy():
            return {"CANCELLED"}
        jobs.cancel()
        context.scene.mace_dance.status = "cancelling" if jobs.busy() else "Cancelled; the scene is unchanged."
        return {"FINISHED"}


class DANCE_OT_apply_file(bpy.types.Operator):
    """Apply a dance saved by mace-dance (.npz) to the selected armature or a new SMPL armature"""

    bl_idname = "dance.apply_file"
    bl_label = "Apply Dance File"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")

    def execute(self, context):
        try:
            motion = Motion.load_npz(bpy.path.abspath(self.filepath))
            start = context.scene.mace_dance.start_frame
            results.apply_result(context, motion, settings=stored_dance.DanceSettings(start_frame=start))
        except (MotionFileError, ValueError, RuntimeError) as exc:
            return _fail(self, str(exc))
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


_RETARGET_ITEMS: list[tuple] = []  # Blender keeps only pointers to dynamic enum strings


def _preset_items(self, context) -> list[tuple]:
    """Guess, then every preset (identifier: the name upper-cased, as scripts pass it; number: stable by name)."""
    from rigs.presets import list_presets

    from .bone_map import stable_number

    _RETARGET_ITEMS[:] = [("AUTO", "Guess from bone names", "", 0)] + [
        (p.upper(), p, "", stable_number(p)) for p in list_presets() if p.upper() != "AUTO"]
    return _RETARGET_ITEMS


def _preset_named(identifier: str):
    """The preset an enum identifier (the name upper-cased) stands for, user presets keeping their own case."""
    from rigs.presets import RetargetPreset, list_presets

    names = {p.upper(): p for p in list_presets()}
    return RetargetPreset.load(names.get(identifier, identifier.lower()))


class DANCE_OT_retarget(bpy.types.Operator):
    """Bake the latest dance onto the selected character armatures, each through its bone map (or a preset)"""

    bl_idname = "dance.retarget"
    bl_label = "Retarget onto Selected"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_items,
                                   description="Used when the armature has no bone map of its own")

    def _plan(self, obj: bpy.types.Object) -> tuple[str, dict[str, int] | None, str]:
        """How `obj` receives the dance: (what maps it, its bone map or None for a Rigify rig's controls, the name
        of the action it gets)."""
        from rigs.presets import bone_map, guess_preset

        from .scene import rows_of
        from .core.control_rig import is_rigify
        from .scene import armature_rig

        rig = armature_rig(obj)
        rows = rows_of(obj)
        if self.preset in ("", "AUTO", "RIGIFY") and is_rigify(rig.bone_names):
            return "Rigify controls (FK)", None, ""
        if rows:  # the animator's own map wins over any guess
            return "bone map", bone_map(rows, rig.bone_names), "dance_map"
        if self.preset in ("", "AUTO"):
            preset, mapping = guess_preset(rig.bone_names)
        else:
            preset = _preset_named(self.preset)
            mapping = preset.resolve(rig.bone_names)
        return f"{preset.name} preset", mapping, f"dance_{preset.name}"

    def execute(self, context):
        from rigs.presets import RetargetError
        from rigs.skeleton import smpl_skeleton

        from .core.bake import bake_arrays
        from .scene import armature_rig, bake_to_action, scene_fps

        source = stored_dance.dance_source(context)
        smpl = set(smpl_skeleton().joint_names)

        def receives(o) -> bool:  # a character; not the dance itself, nor another SMPL armature (its dance is its own)
            return o is not None and o.type == "ARMATURE" and o != source and not smpl <= set(o.data.bones.keys())

        targets = [o for o in context.selected_objects if receives(o)]
        active = context.active_object
        if receives(active) and active not in targets:
            targets.insert(0, active)  # the active one even when unselected (scripts set only the active)
        if not targets:
            return _fail(self, "Select the character's armature first.")
        if source is None:
            return _fail(self, "Generate or apply a dance first; no armature in this scene carries one.")
        plans, obj = [], None
        try:
            motion, settings = stored_dance.load(source)
            fps = scene_fps(context.scene)
            for obj in targets:  # every map checked and every key worked out before any character is changed
                name, mapping, action = self._plan(obj)
                arrays = None if mapping is None else bake_arrays(motion, armature_rig(obj), mapping,
                                                                  settings.start_frame, fps)
                plans.append((obj, name, mapping, action, arrays))
            plans.sort(key=lambda plan: plan[4] is None)  # Rigify rigs (keyed as they are worked out) last
            for obj, name, mapping, action, arrays in plans:
                if arrays is None:
                    from .rigify import retarget_rigify

                    retarget_rigify(context, obj, motion, settings.start_frame, fps)
                else:
                    bake_to_action(obj, arrays, action)
                stored_dance.store(obj, motion, settings)  # takes, comps and edits work on the character too
        except (RetargetError, ValueError, RuntimeError) as exc:
            text = str(exc).rstrip(".") + "."
            text = text[:1].upper() + text[1:]
            return _fail(self, f"{obj.name}: {text}" if len(targets) > 1 and obj is not None else text)
        said = "; ".join(f"{obj.name} with the {name}" + (f" ({len(mapping)} bones)" if mapping else "")
                         for obj, name, mapping, _, _ in plans)
        self.report({"INFO"}, f"Retargeted {source.name}'s dance onto {said}.")
        return {"FINISHED"}


class DANCE_OT_export(bpy.types.Operator):
    """Export the active armature's dance as FBX or BVH (Y up, as other tools expect) with Blender's exporters"""

    bl_idname = "dance.export"
    bl_label = "Export Dance"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    format: bpy.props.EnumProperty(name="Format", items=[("FBX", "FBX", ""), ("BVH", "BVH", "")], default="FBX")
    simplify: bpy.props.FloatProperty(name="Simplify keys", default=0.0, min=0.0, max=100.0,
                                      description="FBX key reduction (0 keeps every key)")

    def execute(self, context):
        from .export import export_bvh_y_up, export_fbx, export_target

        obj, path, problem = export_target(context, self.filepath, self.format)
        if problem:
            return _fail(self, problem)
        try:
            if self.format == "FBX":
                export_fbx(context, obj, path, self.simplify)
            else:
                export_bvh_y_up(context, obj, path)
        except (OSError, RuntimeError, ValueError) as exc:
            return _fail(self, f"Could not export {path}: {exc}")
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


def camera_options(scene) -> dict:
    """The scene camera as the video job's camera (world matrix, lens, sensor, resolution)."""
    cam = scene.camera
    width = int(scene.render.resolution_x * scene.render.resolution_percentage / 100)
    height = int(scene.render.resolution_y * scene.render.resolution_percentage / 100)
    if cam is None:
        return {"width": width, "height": height}
    return {"width": width, "height": height, "camera_matrix": [list(r) for r in cam.matrix_world],
            "lens": cam.data.lens, "sensor_width": cam.data.sensor_width}


class DANCE_OT_video(bpy.types.Operator):
    """Render the latest dance as video of the person in the reference image (through the scene camera)"""

    bl_idname = "dance.video"
    bl_label = "Render Performer Video"

    def execute(self, context):
        s = context.scene.mace_dance
        image = bpy.path.abspath(s.reference_image) if s.reference_image else ""
        source = stored_dance.dance_source(context)
        if source is None:
            return _fail(self, "Generate or apply a dance first; no armature in this scene carries one.")
        if not image:
            return _fail(self, "Choose a reference image of the performer first (Performer image is empty).")
        if not os.path.isfile(image):
            return _fail(self, f"The performer image {image} does not exist; choose it again.")
        if jobs.busy():
            return _fail(self, "A job is already running; cancel it first.")
        try:
            motion, settings = stored_dance.load(source)
        except ValueError as exc:
            return _fail(self, str(exc))
        options = {"fps": motion.fps, "steps": s.video_steps, **camera_options(context.scene)}
        arrays = {"image": np.frombuffer(Path(image).read_bytes(), dtype=np.uint8),
                  "ref_rotations": motion.rotations, "ref_root_translation": motion.root_translation}
        base = bpy.path.abspath(s.video_folder) if s.video_folder else (bpy.path.abspath("//") or bpy.app.tempdir)
        jobs.SESSION.video_folder = os.path.join(base, "mace_dance_video", Path(image).stem)
        return start(self, context, None, options, arrays, kind="video", settings=settings)


CLASSES = (DANCE_OT_generate, DANCE_OT_video, DANCE_OT_edit, DANCE_OT_cancel, DANCE_OT_apply_file, DANCE_OT_retarget,
           DANCE_OT_export)


def register() -> None:
    import atexit

    from .choreography import CLASSES as CHOREOGRAPHY

    for cls in CLASSES + CHOREOGRAPHY:
        bpy.utils.register_class(cls)
    jobs.register()
    atexit.register(jobs.stop)  # Blender quitting must not leave a local backend behind


def unregister() -> None:
    import atexit

    from .choreography import CLASSES as CHOREOGRAPHY

    jobs.stop()
    atexit.unregister(jobs.stop)
    for cls in reversed(CLASSES + CHOREOGRAPHY):
        bpy.utils.unregister_class(cls)
