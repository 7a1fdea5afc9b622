"""Operators of the Dance panel and the one timer that drives a running job.

Generate returns at once: it sends the song to the backend and registers `tick`, which does a bounded amount of work
(at most a few dozen messages) every 0.1 s and updates the panel. The result is applied in one undoable step; a
failure leaves the scene untouched and says what went wrong in one sentence.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from bridge import protocol as P
from bridge.client import BridgeClient
from rigs.motion import Motion, MotionFileError

TICK_SECONDS = 0.1


@dataclass
class _Session:
    """The job in flight (one at a time) and the local backend process, if the add-on started one."""

    client: BridgeClient | None = None
    job: str = ""
    scene: str = ""
    backend: subprocess.Popen | None = None
    endpoint: str = ""
    pending_variants: list[int] = field(default_factory=list)
    last_motion: Motion | None = None  # the latest applied dance, for retargeting onto characters
    editing: bool = False  # the job edits a dance already in the scene: no second song strip or markers
    video_parts: dict = field(default_factory=dict)  # part index -> frames, while a video streams in
    song: str = ""
    options: dict = field(default_factory=dict)
    variant: int = 0  # index of the variant being generated (0: the first, applied to the selected armature)
    video_folder: str = ""
    backend_started: float = 0.0


SESSION = _Session()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_python() -> str:
    """The Python that runs the local backend: the preference, $MACE_DANCE_PYTHON, or this interpreter."""
    try:
        pref = bpy.context.preferences.addons[__package__].preferences.python
    except (KeyError, AttributeError):
        pref = ""
    return pref or os.environ.get("MACE_DANCE_PYTHON") or sys.executable


def ensure_backend() -> str:
    """The endpoint to talk to: a remote address, or a local backend started on loopback (not waited for)."""
    try:
        prefs = bpy.context.preferences.addons[__package__].preferences
        if prefs.mode == "REMOTE":
            return prefs.endpoint
    except (KeyError, AttributeError):
        pass
    if SESSION.backend is not None and SESSION.backend.poll() is None:
        return SESSION.endpoint
    SESSION.endpoint = os.environ.get("MACE_DANCE_ENDPOINT") or f"tcp://127.0.0.1:{_free_port()}"
    if not os.environ.get("MACE_DANCE_ENDPOINT"):
        cmd = [backend_python(), "-m", "backend.cli", "serve", "--bind", SESSION.endpoint]
        if os.environ.get("MACE_DANCE_MODEL_DIR"):
            cmd += ["--model-dir", os.environ["MACE_DANCE_MODEL_DIR"]]
        if os.environ.get("MACE_DANCE_VIDEO_MODEL_DIR"):
            cmd += ["--video-model-dir", os.environ["MACE_DANCE_VIDEO_MODEL_DIR"]]
        elif os.environ.get("MACE_DANCE_VIDEO_TINY"):
            cmd += ["--video-tiny"]
        SESSION.backend = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        SESSION.backend_started = time.monotonic()
    return SESSION.endpoint


def make_client() -> BridgeClient:
    """A client for the configured backend; remote servers with a public key get CURVE (and the user's key pair)."""
    endpoint = ensure_backend()
    try:
        prefs = bpy.context.preferences.addons[__package__].preferences
    except (KeyError, AttributeError):
        prefs = None
    if prefs is not None and prefs.mode == "REMOTE" and prefs.server_key:
        import zmq.auth

        keys = None
        if prefs.client_key_file:
            public, secret = zmq.auth.load_certificate(bpy.path.abspath(prefs.client_key_file))
            keys = (public, secret)
        return BridgeClient(endpoint, timeout=5.0, server_public_key=prefs.server_key.strip().encode(),
                            client_keys=keys)
    return BridgeClient(endpoint, timeout=5.0)


def stop_backend() -> None:
    if SESSION.client is not None:
        SESSION.client.close()
        SESSION.client = None
    if SESSION.backend is not None and SESSION.backend.poll() is None:
        SESSION.backend.terminate()
        try:
            SESSION.backend.wait(5)
        except subprocess.TimeoutExpired:
            SESSION.backend.kill()
    SESSION.backend = None


def _settings(scene=None):
    return (scene or bpy.context.scene).mace_dance


def _target_armature(context) -> bpy.types.Object:
    from .scene import create_smpl_armature

    obj = context.active_object
    if obj is not None and obj.type == "ARMATURE":
        return obj
    return create_smpl_armature(context)


def apply_result(context, motion: Motion, beat_frames=None, audio_path: str = "") -> bpy.types.Object:
    """Apply a generated Motion: armature (selected or new SMPL), keys, song strip, beat markers; one undo step."""
    from .scene import add_beat_markers, add_sound_strip, apply_motion

    s = _settings(context.scene)
    created = []
    before, actions_before = set(bpy.data.objects), set(bpy.data.actions)
    markers_before = len(context.scene.timeline_markers)
    previous_action = None
    try:
        obj = _target_armature(context)
        created = [o for o in bpy.data.objects if o not in before]
        if obj.animation_data is not None:
            previous_action = obj.animation_data.action
        apply_motion(context, obj, motion, frame_start=s.start_frame)
        if s.add_sound and audio_path and os.path.isfile(audio_path):
            add_sound_strip(context.scene, audio_path, s.start_frame)
        if s.beat_markers and beat_frames is not None:
            add_beat_markers(context.scene, beat_frames, motion.fps, s.start_frame)
    except Exception:
        # leave the scene as it was: the armature's old action, no new objects, actions or markers
        if not created and obj.animation_data is not None:
            obj.animation_data.action = previous_action
        for o in created:
            data = o.data
            bpy.data.objects.remove(o)
            if data is not None and data.users == 0:
                (bpy.data.armatures if isinstance(data, bpy.types.Armature) else bpy.data.meshes).remove(data)
        for a in set(bpy.data.actions) - actions_before:
            bpy.data.actions.remove(a)
        markers = context.scene.timeline_markers
        while len(markers) > markers_before:
            markers.remove(markers[-1])
        raise
    try:
        bpy.ops.ed.undo_push(message="Apply dance")
    except RuntimeError:
        pass  # no undo stack without a window (background mode)
    SESSION.last_motion = motion
    return obj


def tick() -> float | None:
    """Timer callback: move messages, update the panel, apply the result; returns the next interval or None."""
    client = SESSION.client
    scene = bpy.data.scenes.get(SESSION.scene) if SESSION.scene else None
    if client is None or scene is None:
        return None
    s = scene.mace_dance
    for msg in client.tick(max_messages=32):
        if msg.get("job") not in (None, SESSION.job) and msg.type != "accepted":
            continue
        if msg.type == "accepted" and not SESSION.job:
            SESSION.job = msg.get("job")
            s.job, s.status = SESSION.job, "queued"
        elif msg.type == "status" and msg.get("state") == "queued":
            s.status = f"queued: {msg.get('position')} in line"
        elif msg.type == "progress":
            total = max(1, int(msg.get("total") or 1))
            s.progress = float(msg.get("step")) / total
            s.status = f"{msg.get('stage')}: {msg.get('step')}/{total}"
        elif msg.type == "result" and "frames" in msg.arrays:
            SESSION.video_parts[int(msg.get("part", 0))] = np.array(msg.arrays["frames"])
            parts = int(msg.get("parts", 1))
            s.status = f"receiving video: part {len(SESSION.video_parts)}/{parts}"
            if len(SESSION.video_parts) == parts:
                try:
                    frames = np.concatenate([SESSION.video_parts[i] for i in range(parts)])
                    apply_video(bpy.context, frames, SESSION.video_folder)
                    s.status, s.progress = f"loaded {len(frames)} video frames", 1.0
                except Exception as exc:  # noqa: BLE001 - show it, keep Blender running
                    s.status = f"Could not load the video: {exc}"
                SESSION.video_parts = {}
                return _done()
        elif msg.type == "result":
            try:
                motion = P.motion_from_message(msg)
                if SESSION.editing:
                    apply_result(bpy.context, motion)
                elif SESSION.variant == 0:
                    apply_result(bpy.context, motion, msg.get("beat_frames"), bpy.path.abspath(s.audio_path))
                else:  # further variants: each on its own SMPL armature, side by side
                    bpy.context.view_layer.objects.active = None
                    obj = apply_result(bpy.context, motion)
                    obj.location.x = 1.2 * SESSION.variant
                s.status, s.progress = f"applied {motion.duration:.1f} s of dance", 1.0
            except Exception as exc:  # noqa: BLE001 - show it, keep Blender running
                s.status = f"Could not apply the dance: {exc}"
                SESSION.pending_variants = []
            if SESSION.pending_variants:
                SESSION.variant += 1
                seed = SESSION.pending_variants.pop(0)
                SESSION.job = ""
                s.status = f"variant {SESSION.variant + 1}: sending the song"
                SESSION.client.submit_motion(Path(SESSION.song).read_bytes(), Path(SESSION.song).name,
                                             **{**SESSION.options, "seed": seed})
                return TICK_SECONDS
            return _done()
        elif msg.type == "cancelled":
            s.status = "Cancelled; the scene is unchanged." if SESSION.variant == 0 else \
                f"Cancelled; {SESSION.variant} variant(s) were applied before."
            SESSION.pending_variants = []
            return _done()
        elif msg.type == "error":
            s.status = f"The backend reported: {msg.get('message')}"
            if msg.get("job") or msg.get("code") in ("busy", "bad_request", "bad_version"):
                return _done()
    if SESSION.backend is not None and SESSION.backend.poll() is not None:
        if time.monotonic() - SESSION.backend_started < 15 and not SESSION.job:
            s.status = ("The local backend did not start: set 'Backend Python' in the add-on preferences to the "
                        "Python where mace-dance is installed.")
        else:
            s.status = "The local backend stopped unexpectedly; the scene is unchanged."
        SESSION.backend = None
        return _done()
    _status_bar(f"MACE-Dance: {s.status}" if s.status else None)
    return TICK_SECONDS


def apply_video(context, frames: np.ndarray, folder: str) -> None:
    """Write the frames as a PNG sequence and show it: a sequencer strip and the camera's background image."""
    from PIL import Image

    s = context.scene.mace_dance
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, f in enumerate(frames, start=1):
        name = f"frame_{i:05d}.png"
        Image.fromarray(f).save(out / name)
        names.append(name)
    scene = context.scene
    if not scene.sequence_editor:
        scene.sequence_editor_create()
    ed = scene.sequence_editor
    strips = ed.strips if hasattr(ed, "strips") else ed.sequences
    strip = strips.new_image("dance video", str(out / names[0]), channel=2, frame_start=s.start_frame)
    for name in names[1:]:
        strip.elements.append(name)
    cam = scene.camera
    if cam is not None:
        image = bpy.data.images.load(str(out / names[0]), check_existing=True)
        image.source = "SEQUENCE"
        cam.data.show_background_images = True
        bg = cam.data.background_images.new()
        bg.image = image
        bg.image_user.frame_start = s.start_frame
        bg.image_user.frame_duration = len(names)


def camera_options(scene) -> dict:
    """The scene camera as the video job's camera (world matrix, lens, sensor, resolution)."""
    cam = scene.camera
    width = int(scene.render.resolution_x * scene.render.resolution_percentage / 100)
    height = int(scene.render.resolution_y * scene.render.resolution_percentage / 100)
    if cam is None:
        return {"width": width, "height": height}
    return {"width": width, "height": height, "camera_matrix": [list(r) for r in cam.matrix_world],
            "lens": cam.data.lens, "sensor_width": cam.data.sensor_width}


def _status_bar(text: str | None) -> None:
    """Mirror the panel's status in Blender's status bar (needs a window; background mode has none)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", []):
        try:
            window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError):
            pass


def _done() -> None:
    _status_bar(None)
    SESSION.job = ""
    if SESSION.client is not None:
        SESSION.client.close()
        SESSION.client = None
    return None


def start_job(context, path: str | None, options: dict, arrays: dict | None = None, kind: str = "motion") -> None:
    """Send a job (the song for motion jobs; the dance and image arrays for video) and start the timer that
    follows it."""
    s = context.scene.mace_dance
    SESSION.client = make_client()
    SESSION.scene = context.scene.name
    SESSION.job = ""
    SESSION.editing = "edit" in options
    SESSION.video_parts = {}
    if kind == "motion":
        SESSION.song, SESSION.options = path, dict(options)
        SESSION.client.submit_motion(Path(path).read_bytes(), Path(path).name, arrays=arrays, **options)
        s.status = "sending the song"
    else:
        SESSION.client._request(P.Message("submit", {"kind": kind, "options": options}, arrays or {}))
        s.status = "sending the dance and the image"
    s.progress, s.job = 0.0, ""
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_SECONDS)


class DANCE_OT_edit(bpy.types.Operator):
    """Edit the selected SMPL dance: regenerate or keep a frame range, keep the selected bones, or follow a path"""

    bl_idname = "dance.edit"
    bl_label = "Edit Dance"

    def execute(self, context):
        from bridge.client import edit_arrays

        from .scene import curve_path_xz, read_smpl_motion

        s = context.scene.mace_dance
        obj = context.active_object
        path = bpy.path.abspath(s.audio_path)
        if obj is None or obj.type != "ARMATURE" or obj.animation_data is None or obj.animation_data.action is None:
            self.report({"ERROR"}, "Select the SMPL armature whose dance you want to edit.")
            return {"CANCELLED"}
        if not os.path.isfile(path):
            self.report({"ERROR"}, "The dance's song file is needed to edit it; set it in the panel.")
            return {"CANCELLED"}
        if SESSION.client is not None:
            self.report({"ERROR"}, "A dance is already being generated; cancel it first.")
            return {"CANCELLED"}
        scene = context.scene
        scene_fps = scene.render.fps / scene.render.fps_base
        first, last = (int(v) for v in obj.animation_data.action.frame_range)
        try:
            ref = read_smpl_motion(context, obj, s.start_frame, last)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        to_motion = lambda f: int(round((f - s.start_frame) * 30.0 / scene_fps))  # noqa: E731
        n = int(round((ref.num_frames - 1) * 30.0 / scene_fps)) + 1
        edit: dict = {"ref_fps": ref.fps}
        path_xz = None
        if s.edit_mode in ("RANGE", "KEEP_RANGE"):
            a, b = to_motion(s.edit_start), to_motion(s.edit_end) + 1
            if not 0 <= a < b <= n:
                self.report({"ERROR"}, f"The edit range must lie inside the dance (frames {s.start_frame}-{last}).")
                return {"CANCELLED"}
            edit["keep_frames"] = [[0, a], [b, n]] if s.edit_mode == "RANGE" else [[a, b]]
        elif s.edit_mode == "BONES":
            # PoseBone.select since Blender 5.0, Bone.select before
            bones = [pb.name for pb in obj.pose.bones
                     if getattr(pb, "select", False) or getattr(pb.bone, "select", False)]
            if not bones:
                self.report({"ERROR"}, "Select the bones to keep (in Pose Mode) first.")
                return {"CANCELLED"}
            edit["keep_joints"] = bones
            edit["keep_root"] = "pelvis" in bones
        else:
            if s.path_object is None:
                self.report({"ERROR"}, "Choose a curve object as the path first.")
                return {"CANCELLED"}
            try:
                path_xz = curve_path_xz(s.path_object, n)
            except ValueError as exc:
                self.report({"ERROR"}, str(exc))
                return {"CANCELLED"}
            edit["path"] = True
        options = {"beta": s.beta, "seed": s.seed, "steps": s.steps, "edit": edit, "lock_feet": False}
        start_job(context, path, options, edit_arrays(ref if s.edit_mode != "PATH" else None, path_xz))
        return {"FINISHED"}


class DANCE_OT_generate(bpy.types.Operator):
    """Send the song to the backend and dance to it"""

    bl_idname = "dance.generate"
    bl_label = "Generate Dance"

    def execute(self, context):
        s = context.scene.mace_dance
        path = bpy.path.abspath(s.audio_path)
        if not path or not os.path.isfile(path):
            self.report({"ERROR"}, f"Choose a song file first ({path or 'none set'} was not found).")
            return {"CANCELLED"}
        if SESSION.client is not None:
            self.report({"ERROR"}, "A dance is already being generated; cancel it first.")
            return {"CANCELLED"}
        options = {"beta": s.beta, "seed": s.seed, "steps": s.steps, "beat_sync": s.beat_sync, "style": s.style}
        if not s.whole_song:
            if s.time_end <= s.time_start:
                self.report({"ERROR"}, "The time range is empty: 'To' must be after 'From'.")
                return {"CANCELLED"}
            options.update(start=s.time_start, end=s.time_end)
        start_job(context, path, options)
        SESSION.variant = 0
        SESSION.pending_variants = [s.seed + k for k in range(1, s.variants)]
        return {"FINISHED"}


class DANCE_OT_cancel(bpy.types.Operator):
    """Stop the dance being generated"""

    bl_idname = "dance.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if SESSION.client is None:
            return {"CANCELLED"}
        if SESSION.job:
            SESSION.client.cancel(SESSION.job)
        context.scene.mace_dance.status = "cancelling"
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
            apply_result(context, motion)
        except (MotionFileError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


def _preset_items(self, context):
    from rigs.retarget import list_presets

    return [("AUTO", "Guess from bone names", "")] + [(p.upper(), p, "") for p in list_presets()]


class DANCE_OT_retarget(bpy.types.Operator):
    """Bake the latest dance onto the selected character armature through a bone-name preset"""

    bl_idname = "dance.retarget"
    bl_label = "Retarget onto Selected"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_items)

    def execute(self, context):
        from rigs.retarget import RetargetError, RetargetPreset, guess_preset

        from .core.bake import bake_arrays
        from .scene import armature_rig, bake_to_action

        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            self.report({"ERROR"}, "Select the character's armature first.")
            return {"CANCELLED"}
        if SESSION.last_motion is None:
            self.report({"ERROR"}, "Generate or apply a dance first; there is nothing to retarget yet.")
            return {"CANCELLED"}
        rig = armature_rig(obj)
        try:
            if self.preset in ("", "AUTO"):
                preset, mapping = guess_preset(rig.bone_names)
            else:
                preset = RetargetPreset.load(self.preset.lower())
                mapping = preset.resolve(rig.bone_names)
            scene = context.scene
            fps = scene.render.fps / scene.render.fps_base
            arrays = bake_arrays(SESSION.last_motion, rig, mapping, scene.mace_dance.start_frame, fps)
            bake_to_action(obj, arrays, f"dance_{preset.name}")
        except (RetargetError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Retargeted with the {preset.name} preset ({len(mapping)} bones).")
        return {"FINISHED"}


class DANCE_OT_export(bpy.types.Operator):
    """Export the active armature's dance as FBX or BVH with Blender's exporters"""

    bl_idname = "dance.export"
    bl_label = "Export Dance"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH")
    format: bpy.props.EnumProperty(name="Format", items=[("FBX", "FBX", ""), ("BVH", "BVH", "")], default="FBX")

    def execute(self, context):
        obj = context.active_object
        if obj is None or obj.type != "ARMATURE" or obj.animation_data is None or obj.animation_data.action is None:
            self.report({"ERROR"}, "Select an armature that has a dance to export.")
            return {"CANCELLED"}
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), "." + self.format.lower())
        frame_range = obj.animation_data.action.frame_range
        for o in context.selected_objects:
            o.select_set(False)
        obj.select_set(True)
        if self.format == "FBX":
            bpy.ops.export_scene.fbx(filepath=path, use_selection=True, object_types={"ARMATURE"}, bake_anim=True,
                                     add_leaf_bones=False)
        else:
            bpy.ops.export_anim.bvh(filepath=path, frame_start=int(frame_range[0]), frame_end=int(frame_range[1]),
                                    rotate_mode="NATIVE", root_transform_only=False)
        self.report({"INFO"}, f"Exported {path}")
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class DANCE_OT_video(bpy.types.Operator):
    """Render the latest dance as video of the person in the reference image (through the scene camera)"""

    bl_idname = "dance.video"
    bl_label = "Render Performer Video"

    def execute(self, context):
        s = context.scene.mace_dance
        image = bpy.path.abspath(s.reference_image)
        if SESSION.last_motion is None:
            self.report({"ERROR"}, "Generate or apply a dance first; there is nothing to render yet.")
            return {"CANCELLED"}
        if not image or not os.path.isfile(image):
            self.report({"ERROR"}, f"Choose a reference image of the performer ({image or 'none set'} not found).")
            return {"CANCELLED"}
        if SESSION.client is not None:
            self.report({"ERROR"}, "A job is already running; cancel it first.")
            return {"CANCELLED"}
        motion = SESSION.last_motion
        options = {"fps": motion.fps, "steps": s.video_steps, **camera_options(context.scene)}
        arrays = {"image": np.frombuffer(Path(image).read_bytes(), dtype=np.uint8),
                  "ref_rotations": motion.rotations, "ref_root_translation": motion.root_translation}
        base = bpy.path.abspath(s.video_folder) if s.video_folder else (bpy.path.abspath("//") or bpy.app.tempdir)
        SESSION.video_folder = os.path.join(base, "mace_dance_video", Path(image).stem)
        start_job(context, None, options, arrays, kind="video")
        return {"FINISHED"}


CLASSES = (DANCE_OT_generate, DANCE_OT_video, DANCE_OT_edit, DANCE_OT_cancel, DANCE_OT_apply_file, DANCE_OT_retarget,
           DANCE_OT_export)


def register() -> None:
    import atexit

    for cls in CLASSES:
        bpy.utils.register_class(cls)
    atexit.register(stop_backend)  # Blender quitting must not leave a local backend behind


def unregister() -> None:
    import atexit

    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    stop_backend()
    atexit.unregister(stop_backend)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
