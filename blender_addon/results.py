"""Applying what the backend returns: a dance onto an armature (one undo step, all or nothing) and video frames as
an image sequence."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np

from rigs.motion import Motion

from . import compat, stored_dance


def _target_armature(context) -> bpy.types.Object:
    from .scene import create_smpl_armature

    obj = context.active_object
    if obj is not None and obj.type == "ARMATURE":
        return obj
    return create_smpl_armature(context)


def place_song(context, audio_path: str, frame_start: int, time_start: float = 0.0, time_end: float = 0.0) -> str:
    """Put the song's stretch the dance was made for (the whole song by default) in the timeline from
    `frame_start`; returns '' or why it could not be (a dance already applied is kept)."""
    from .scene import add_sound_strip

    if not compat.has_audio():
        return "this Blender build has no audio support, so the song was not added to the timeline"
    try:
        add_sound_strip(context.scene, audio_path, frame_start, time_start=time_start, time_end=time_end)
    except RuntimeError as exc:
        return f"Blender could not add {os.path.basename(audio_path)} to the timeline ({str(exc).strip()})"
    return ""


def apply_result(context, motion: Motion, beat_frames=None,
                 settings: stored_dance.DanceSettings | None = None, sections=None) -> bpy.types.Object:
    """Apply a generated Motion: armature (selected or new SMPL), keys, beat and section markers and the stored
    dance, all or nothing (a failure leaves the scene as it was)."""
    from .beat_overrides import beat_markers, remember_anchor
    from .scene import add_beat_markers, add_section_markers, apply_motion

    s = context.scene.mace_dance
    scene = context.scene
    settings = settings or stored_dance.DanceSettings(start_frame=s.start_frame)
    before, actions_before = set(bpy.data.objects), set(bpy.data.actions)
    markers_before = len(scene.timeline_markers)
    placing_beats = s.beat_markers and beat_frames is not None
    old_beats = beat_markers(scene) if placing_beats else []  # replaced once the new dance has landed
    frame_range = (scene.frame_start, scene.frame_end)
    active = context.view_layer.objects.active
    obj, previous, previous_raw = None, None, None
    if active is not None and active.type == "ARMATURE":
        previous = compat.active_action(active)
        # the raw stored data, copied as it is: restored exactly even if it could not be read back
        previous_raw = active[stored_dance.KEY].to_dict() if stored_dance.KEY in active.keys() else None
    try:
        obj = _target_armature(context)
        apply_motion(context, obj, motion, frame_start=settings.start_frame)
        if placing_beats:
            add_beat_markers(scene, beat_frames, motion.fps, settings.start_frame, motion.num_frames)
        if s.beat_markers and sections:
            try:
                add_section_markers(scene, sections, motion.fps, settings.start_frame)
            except (TypeError, ValueError):
                pass  # malformed section labels from a server: the dance matters, the labels do not
        stored_dance.store(obj, motion, settings)
    except Exception:
        # leave the scene as it was: the armature's old action and dance, no new objects, actions or markers
        created = set(bpy.data.objects) - before  # also what a half-built new armature left behind
        if active is not None and active not in created and active.type == "ARMATURE":
            compat.restore_action(active, *previous)
            if previous_raw is not None:
                active[stored_dance.KEY] = previous_raw
            elif stored_dance.KEY in active.keys():
                del active[stored_dance.KEY]
        for o in created:
            data = o.data
            bpy.data.objects.remove(o)
            if data is not None and data.users == 0:
                (bpy.data.armatures if isinstance(data, bpy.types.Armature) else bpy.data.meshes).remove(data)
        for a in set(bpy.data.actions) - actions_before:
            bpy.data.actions.remove(a)
        markers = scene.timeline_markers
        while len(markers) > markers_before:
            markers.remove(markers[-1])
        scene.frame_start, scene.frame_end = frame_range
        context.view_layer.objects.active = active
        raise
    if placing_beats:  # one set of beat markers, the latest dance's (Use my beat markers reads them)
        for marker in old_beats:
            scene.timeline_markers.remove(marker)
        remember_anchor(scene, settings.start_frame, settings.time_start)
    s.dance_armature = obj
    return obj


def push_undo(message: str) -> None:
    """Close an undo step for work done outside an operator (the job timer)."""
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError:
        pass  # no undo stack without a window (background mode)


def apply_video(context, frames: np.ndarray, folder: str, fps: float = 30.0, start_frame: int = 1) -> None:
    """Write the frames as a PNG sequence at the scene's frame rate (frames made at `fps` are repeated or skipped
    so the video stays in step with the dance) and show it: a sequencer strip and the camera's background image."""
    from PIL import Image

    from .scene import scene_fps

    scene = context.scene
    rate = scene_fps(scene)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    count = int(np.floor((len(frames) - 1) * rate / fps + 1e-6)) + 1
    source = np.minimum(np.round(np.arange(count) * fps / rate).astype(int), len(frames) - 1)
    names = []
    for i, k in enumerate(source, start=1):
        name = f"frame_{i:05d}.png"
        Image.fromarray(frames[k]).save(out / name)
        names.append(name)
    strip = compat.sequencer_strips(scene).new_image("dance video", str(out / names[0]), channel=2,
                                                     frame_start=start_frame)
    for name in names[1:]:
        strip.elements.append(name)
    cam = scene.camera
    if cam is not None:
        image = bpy.data.images.load(str(out / names[0]), check_existing=True)
        image.source = "SEQUENCE"
        cam.data.show_background_images = True
        bg = cam.data.background_images.new()
        bg.image = image
        bg.image_user.frame_start = start_frame
        bg.image_user.frame_duration = len(names)
