"""The add-on as a studio uses it: save and reopen, any scene frame rate, BVH-imported characters, Y-up BVH, and
failures that name the user's own file or setting. Runs in every supported Blender (scripts/test)."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the bpy wheel is not installed (scripts/test installs the 'blender' extra)")

import blender_addon  # noqa: E402
from blender_addon import jobs, results, stored_dance  # noqa: E402
from blender_addon.core.armature import Y_UP_TO_Z_UP  # noqa: E402
from blender_fixtures import (addon, build_mixamo_character, drive, smooth_motion, song, tiny_model,  # noqa: E402,F401
                              world_heads)
from rigs.skeleton import smpl_skeleton  # noqa: E402

SK = smpl_skeleton()
FEET = [SK.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


def dance_heads(obj, scene_frames):
    return np.stack([np.stack([world_heads(obj, f)[n] for n in SK.joint_names]) for f in scene_frames])


def test_save_reopen_then_retarget_edit_and_export(addon, tiny_model, song, tmp_path, monkeypatch):
    """Nothing of the dance lives only in memory: after reopening the .blend, Retarget, Edit and Export work."""
    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    s = bpy.context.scene.mace_dance
    s.audio_path, s.steps, s.seed = str(song), 3, 4
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied"), s.status
    smpl = bpy.data.objects["SMPL"]
    frames = np.arange(1, 91, 7)
    before = dance_heads(smpl, frames)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    blender_addon.unregister()  # a fresh Blender session: nothing kept in the add-on's memory
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    s = bpy.context.scene.mace_dance
    smpl = bpy.data.objects["SMPL"]
    assert s.dance_armature == smpl
    motion, settings = stored_dance.load(smpl)
    assert motion.num_frames == 90 and settings.seed == 4 and settings.song == str(song)
    assert np.abs(dance_heads(smpl, frames) - before).max() < 1e-6
    # retarget onto a character made after reopening
    character, names = build_mixamo_character()
    assert bpy.ops.dance.retarget(preset="MIXAMO") == {"FINISHED"}
    src = motion.joint_positions()
    rest_pelvis = SK.rest_positions()[0] - [0, SK.rest_positions()[:, 1].min(), 0]
    got = world_heads(character, 1 + 45)["mixamorig:" + names["left_wrist"]]
    expected = ((src[45, SK.index("left_wrist")] - rest_pelvis) * 1.2 + rest_pelvis * 1.2) @ Y_UP_TO_Z_UP.T
    assert np.abs(got - expected).max() < 1e-3
    # edit: regenerate frames 31-60, keep the rest
    bpy.context.view_layer.objects.active = smpl
    s.edit_mode, s.edit_start, s.edit_end, s.audio_path = "RANGE", 31, 60, ""  # the stored song is used
    assert bpy.ops.dance.edit() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied the edited"), s.status
    after = dance_heads(smpl, frames)
    kept = (frames < 31) | (frames > 61)
    assert np.abs(after[kept] - before[kept]).max() < 1e-4
    assert np.abs(after[~kept] - before[~kept]).max() > 1e-3  # the range did change
    edited, _ = stored_dance.load(smpl)
    assert edited.num_frames == 90  # the stored dance follows the edit
    # export after reopening
    bpy.context.view_layer.objects.active = smpl
    assert bpy.ops.dance.export(filepath=str(tmp_path / "d.bvh"), format="BVH") == {"FINISHED"}


FPS_MATRIX = [(24, 1.001), (24, 1.0), (25, 1.0), (30, 1.0), (50, 1.0), (60, 1.0)]


@pytest.mark.parametrize("fps,base", FPS_MATRIX, ids=["23.976", "24", "25", "30", "50", "60"])
def test_dance_is_time_exact_at_any_scene_rate(addon, fps, base):
    """Keys sample the 30-fps dance at the scene's own times, reach its end, and read back to the same dance."""
    from blender_addon.scene import read_smpl_motion

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, base
    rate = fps / base
    m = smooth_motion(137, seed=1)  # 4.53 s: the end falls between scene frames at every rate but 30
    obj = results.apply_result(bpy.context, m)
    last = int(obj.animation_data.action.frame_range[1])
    end = (m.num_frames - 1) / 30.0  # time of the dance's last frame
    assert (last - 1) / rate >= end - 1e-6 > (last - 2) / rate  # the keys reach the end, not beyond
    fk = m.joint_positions() @ Y_UP_TO_Z_UP.T
    for f in (1, 40, last - 1):
        t = min((f - 1) * 30.0 / rate, m.num_frames - 1)
        expected = m.at_times(np.array([t])).joint_positions()[0] @ Y_UP_TO_Z_UP.T
        got = np.stack([world_heads(obj, f)[n] for n in SK.joint_names])
        assert np.abs(got - expected).max() < 1e-4, (f, np.abs(got - expected).max())
    keys = read_smpl_motion(bpy.context, obj, 1, last)
    sampled = m.resample(rate, cover=True)  # what the keys must hold: the dance at the scene's frame times
    assert keys.num_frames == sampled.num_frames
    assert np.abs(keys.joint_positions() - sampled.joint_positions()).max() < 1e-4
    back = keys.resample(30.0, cover=True)
    assert back.num_frames >= m.num_frames  # read back at 30 fps, the dance is never a frame short
    if abs(rate - 30.0) < 1e-6:
        assert np.abs(back.slice(0, m.num_frames).joint_positions() @ Y_UP_TO_Z_UP.T - fk).max() < 1e-5


@pytest.mark.parametrize("fps,base", [(24, 1.001), (24, 1.0), (25, 1.0), (50, 1.0), (60, 1.0)],
                         ids=["23.976", "24", "25", "50", "60"])
def test_edit_round_trips_at_any_scene_rate(addon, tiny_model, song, monkeypatch, fps, base):
    """Edit a generated dance in a scene at another rate: the job is accepted (no frame-count mismatch) and the kept
    frames stay where they were."""
    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, base
    s = scene.mace_dance
    s.audio_path, s.steps, s.seed = str(song), 2, 1
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied"), s.status
    obj = bpy.data.objects["SMPL"]
    last = int(obj.animation_data.action.frame_range[1])
    frames = np.arange(1, last + 1)
    before = dance_heads(obj, frames)
    a, b = last // 3, 2 * last // 3
    s.edit_mode, s.edit_start, s.edit_end = "RANGE", int(a), int(b)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.dance.edit() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied the edited"), s.status
    assert int(obj.animation_data.action.frame_range[1]) == last
    after = dance_heads(obj, frames)
    rate = fps / base
    margin = int(np.ceil(rate / 30.0)) + 1  # scene frames whose 30-fps neighbours touch the regenerated range
    kept = (frames < a - margin) | (frames > b + margin)
    err = np.abs(after[kept] - before[kept]).max()
    assert err < 1e-4, err  # untouched keys: the stored 30-fps dance is kept exactly, no shift in time
    # the range may end on the last scene frame, which lies just past the dance's last 30-fps frame at most rates
    s.edit_mode, s.edit_start, s.edit_end = "KEEP_RANGE", int(a), last
    assert bpy.ops.dance.edit() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied the edited"), s.status
    tail = frames >= a + margin
    assert np.abs(dance_heads(obj, frames)[tail] - after[tail]).max() < 1e-4


def test_an_edit_keeps_the_animators_own_key_changes(addon, song):
    """Keys changed by hand since the dance was made are what an edit keeps (not the stored original)."""
    from blender_addon import compat

    scene = bpy.context.scene
    scene.render.fps = 24
    m = smooth_motion(90, seed=2)
    obj = results.apply_result(bpy.context, m, settings=stored_dance.DanceSettings(song=str(song)))
    for fc in compat.action_fcurves(obj):  # the animator moves the whole dance 10 cm sideways
        if fc.data_path.endswith(".location") and fc.array_index == 0:
            for kp in fc.keyframe_points:
                kp.co[1] += 0.1
            fc.update()
    from blender_addon.scene import edit_reference

    last = int(obj.animation_data.action.frame_range[1])
    ref = edit_reference(bpy.context, obj, m, 1, last)
    assert ref.fps == 24  # the keys, not the stored dance
    shifted = ref.resample(30.0, cover=True).slice(0, m.num_frames).root_translation - m.root_translation
    # the same 10 cm everywhere (along the pelvis bone's own x axis, which leans slightly in the SMPL rest pose)
    assert np.abs(np.linalg.norm(shifted, axis=1) - 0.1).max() < 1e-3 and shifted.std(axis=0).max() < 1e-3
    scene.render.fps = 24
    untouched = results.apply_result(bpy.context, m, settings=stored_dance.DanceSettings(song=str(song)))
    assert edit_reference(bpy.context, untouched, m, 1, last) is m  # unchanged keys: the exact 30-fps dance


def test_bvh_imported_character_dances_on_the_floor(addon, shared_data):
    """CMU's BVH has its hips at the origin in the rest pose: the retargeted character must still stand on the
    floor (its feet as low as the SMPL dance's, scaled), not 0.6 m under it."""
    path = shared_data / "cmu_mocap_salsa_bvh" / "60_01_scaled.bvh"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from rigs.retarget import place_on_floor

    m = place_on_floor(smooth_motion(60, seed=3))  # its lowest foot joint touches the floor
    smpl = results.apply_result(bpy.context, m)
    bpy.context.view_layer.objects.active = None
    bpy.ops.import_anim.bvh(filepath=str(path))
    character = bpy.context.active_object
    assert character.type == "ARMATURE"
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    from blender_addon.scene import armature_rig
    from rigs.retarget import guess_preset

    _, mapping = guess_preset(armature_rig(character).bone_names)
    feet = ("left_ankle", "right_ankle", "left_foot", "right_foot")
    names = [armature_rig(character).bone_names[mapping[n]] for n in feet if n in mapping]
    low_char = min(min(world_heads(character, f)[n][2] for n in names) for f in range(1, 61))
    low_smpl = min(min(world_heads(smpl, f)[n][2] for n in feet) for f in range(1, 61))
    assert abs(low_smpl) < 1e-4
    # CMU's skeleton has no toes: its ankles stand as high above the floor as SMPL's, scaled (not 0.6 m under it,
    # nor on the floor with the feet sunk into it)
    from rigs.retarget import _leg_length

    smpl_rig_ = armature_rig(smpl)
    smpl_map = {n: i for i, n in enumerate(smpl_rig_.bone_names)}
    scale = _leg_length(armature_rig(character), mapping) / _leg_length(smpl_rig_, smpl_map)
    ankle = smpl.data.bones["left_ankle"].head_local[2] - min(smpl.data.bones[n].head_local[2] for n in feet)
    assert abs(low_char - ankle * scale) < 0.02, (low_char, ankle * scale)
    # the user already stood the character on the floor by moving its object up: no second lift
    rest_low = min(character.data.bones[n].head_local[2] for n in names)
    character.location.z = -rest_low
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    raised = min(min(world_heads(character, f)[n][2] for n in names) for f in range(1, 61))
    assert abs(raised - low_char) < 1e-3, (raised, low_char)


def test_failures_name_the_users_file_or_setting(addon, song, tmp_path, monkeypatch):
    s = bpy.context.scene.mace_dance

    def failure(op, **kw):
        with pytest.raises(RuntimeError) as err:  # bpy turns an ERROR report of a CANCELLED operator into this
            op(**kw)
        return str(err.value)

    s.audio_path = ""
    assert "Choose a song file first (the panel's Song is empty)" in failure(bpy.ops.dance.generate)
    s.audio_path = str(tmp_path / "missing.ogg")
    assert "missing.ogg does not exist" in failure(bpy.ops.dance.generate)
    assert s.failed and "missing.ogg does not exist" in s.status  # the panel's red box says it too (issue 31)
    empty = tmp_path / "silence.wav"
    empty.write_bytes(b"")
    s.audio_path = str(empty)
    assert "silence.wav is empty" in failure(bpy.ops.dance.generate)
    # a Backend Python that does not exist: a sentence naming the preference, nothing started, no traceback
    monkeypatch.setattr(blender_addon.backend_process, "preferences",
                        lambda: type("P", (), {"python": str(tmp_path / "nope" / "python"), "mode": "LOCAL"})())
    s.audio_path = str(song)
    text = failure(bpy.ops.dance.generate)
    assert "Backend Python set in the add-on preferences" in text and "nope/python" in text, text
    assert s.failed and "Backend Python" in s.status and not jobs.busy()
    assert blender_addon.backend_process.BACKEND.process is None  # nothing was started
    # Remote mode without an address: a sentence naming the setting
    monkeypatch.setattr(blender_addon.backend_process, "preferences",
                        lambda: type("P", (), {"python": "", "mode": "REMOTE", "endpoint": " "})())
    assert "Remote mode needs the server's Address" in failure(bpy.ops.dance.generate)


def test_a_broken_song_is_named_by_its_own_name(addon, tiny_model, tmp_path, monkeypatch):
    """The backend decodes a copy in its temp folder; the panel must name the user's file, never that copy."""
    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    broken = tmp_path / "my song.ogg"
    broken.write_bytes(b"this is not an ogg file" * 100)
    s = bpy.context.scene.mace_dance
    s.audio_path = str(broken)
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    import tempfile

    assert s.failed and "my song.ogg" in s.status, s.status
    assert tempfile.gettempdir() not in s.status.replace(str(tmp_path), ""), s.status  # not the server's copy
    assert "uint8" not in s.status and "array" not in s.status


def test_beat_markers_cover_the_whole_song(addon):
    m = smooth_motion(300)
    tracked = np.arange(40, 200, 15)  # the tracker dropped a quiet intro and a held final chord
    results.apply_result(bpy.context, m, beat_frames=tracked)
    marks = sorted(mk.frame for mk in bpy.context.scene.timeline_markers)
    assert marks[0] <= 1 + 15 and marks[-1] >= 300 - 15
    assert set(1 + tracked) <= set(marks)  # the tracked beats themselves are kept
    assert np.all(np.diff(marks) == 15)


def test_song_sections_become_labelled_markers(addon):
    scene = bpy.context.scene
    scene.render.fps = 24
    results.apply_result(bpy.context, smooth_motion(300), sections=[[0, 150, "A"], [150, 240, "B"], [240, 300, "A'"]],
                         settings=stored_dance.DanceSettings(start_frame=10))
    marks = sorted((mk.frame, mk.name) for mk in scene.timeline_markers)
    assert marks == [(10, "A"), (130, "B"), (202, "A'")]  # motion frames 0, 150, 240 at 24 fps from frame 10


def test_video_frames_follow_the_scene_rate(addon, tmp_path):
    """Video frames come at the dance's 30 fps; at 24 fps each scene frame shows the frame of its own time."""
    from PIL import Image

    from blender_addon import compat

    scene = bpy.context.scene
    scene.render.fps = 24
    frames = np.stack([np.full((8, 8, 3), i, np.uint8) for i in range(31)])  # frame i is filled with value i
    results.apply_video(bpy.context, frames, str(tmp_path / "v"), fps=30.0, start_frame=5)
    strip = next(st for st in compat.sequencer_strips(scene) if st.type == "IMAGE")
    assert strip.frame_start == 5 and len(strip.elements) == 25  # 1 s at 24 fps
    shown = [int(np.asarray(Image.open(tmp_path / "v" / e.filename))[0, 0, 0]) for e in strip.elements]
    assert shown == [round(k * 30 / 24) for k in range(25)]


def test_cancel_pressed_before_the_server_answers(addon, tiny_model, song, monkeypatch):
    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    s = bpy.context.scene.mace_dance
    s.audio_path, s.steps = str(song), 500
    objects = set(bpy.data.objects)
    assert bpy.ops.dance.generate() == {"FINISHED"}
    assert bpy.ops.dance.cancel() == {"FINISHED"}  # the job has no id yet
    drive()
    assert s.status == "Cancelled; the scene is unchanged.", s.status
    assert set(bpy.data.objects) == objects and not jobs.busy()


def test_the_panel_and_stored_dances_default_to_the_backends_steps(addon):
    # 0: the backend chooses (2 for a dance from the figure library, 12 otherwise), so the request carries no steps
    assert bpy.context.scene.mace_dance.bl_rna.properties["steps"].default == 0
    assert stored_dance.DanceSettings().steps == 0
    from backend.motion.beat_guidance import DEFAULT_BEAT_GUIDANCE
    from bridge.request import DanceRequest
    from bridge.request_wire import to_wire

    assert bpy.context.scene.mace_dance.bl_rna.properties["beat_guidance"].default == DEFAULT_BEAT_GUIDANCE
    assert stored_dance.DanceSettings().beat_guidance == DEFAULT_BEAT_GUIDANCE
    props = bpy.context.scene.mace_dance.bl_rna.properties
    for name in ("beta", "seed", "beat_sync", "style"):  # the panel starts where a request starts
        want = getattr(DanceRequest(), name)
        assert props[name].default == want if isinstance(want, str) else abs(props[name].default - want) < 1e-6
    # defaults are left to the server (an older one does not know a newer option); any other value is sent
    assert to_wire(DanceRequest(beat_guidance=DEFAULT_BEAT_GUIDANCE))[0] == {}
    assert to_wire(DanceRequest(beat_guidance=0.0))[0] == {"beat_guidance": 0.0}
