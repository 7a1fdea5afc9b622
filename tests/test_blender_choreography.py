"""The choreographer's tools in the real bpy wheel, through a real local backend: takes on NLA tracks, audition and
comp, dancing through keyed poses on the beat, repeating a detected repeat of the music."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the bpy wheel is not installed (scripts/test installs the 'blender' extra)")

from blender_fixtures import addon, drive, generate_tiny_dance, song, tiny_model  # noqa: E402,F401
from blender_addon import stored_dance  # noqa: E402
from blender_addon.takes import playing_take, take_actions  # noqa: E402
from blender_addon.scene import read_smpl_motion  # noqa: E402
from backend.motion.choreography import TRANSITION_HALF, local_joints  # noqa: E402
from rigs import rotations as rot  # noqa: E402

H = TRANSITION_HALF


def test_takes_on_nla_tracks_audition_and_comp(addon, tiny_model, song, monkeypatch, tmp_path):
    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    s = bpy.context.scene.mace_dance
    s.audio_path, s.steps, s.seed, s.takes = str(song), 2, 4, 3
    assert bpy.ops.dance.takes() == {"FINISHED"}
    drive()
    assert s.status.startswith("take 3 ready"), s.status
    obj = bpy.data.objects["SMPL"]
    takes = take_actions(obj)
    assert [n for n, _, _ in takes] == [1, 2, 3]
    assert [t.name for _, _, t in takes] == ["Take 1 (seed 4)", "Take 2 (seed 5)", "Take 3 (seed 6)"]
    assert all(t.mute and len(t.strips) == 1 and t.strips[0].action == a for _, a, t in takes)
    assert [stored_dance.load(a)[1].seed for _, a, _ in takes] == [4, 5, 6]  # settings travel with each take
    motions = [stored_dance.load(a)[0] for _, a, _ in takes]
    assert np.abs(motions[0].joint_positions() - motions[1].joint_positions()).max() > 1e-3
    assert playing_take(obj) == 3
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.dance.audition_take(number=1) == {"FINISHED"}
    assert playing_take(obj) == 1
    played = read_smpl_motion(bpy.context, obj, 1, 90)
    assert np.abs(played.joint_positions() - motions[0].joint_positions()).max() < 1e-4
    assert np.array_equal(stored_dance.load(obj)[0].rotations, motions[0].rotations)  # Edit/Retarget use it now
    # take 2 for frames 31-70, take 1 elsewhere: two switches, each a model-made transition
    s.comp_take, s.edit_start, s.edit_end, s.comp_base = 2, 31, 70, 1
    assert bpy.ops.dance.mark_take() == {"FINISHED"}
    assert bpy.ops.dance.comp() == {"FINISHED"}
    drive()
    assert s.status.startswith("comped 2 switch"), s.status
    assert obj.animation_data.action.name.startswith("comp") and len(take_actions(obj)) == 3
    comp = local_joints(read_smpl_motion(bpy.context, obj, 1, 90))
    ones, twos = local_joints(motions[0]), local_joints(motions[1])
    for frames, source in ((np.r_[0:30 - H, 70 + H:90], ones), (np.r_[30 + H:70 - H], twos)):
        assert np.abs(comp[frames] - source[frames]).max() < 1e-4
    assert np.abs(comp[30:30 + H] - ones[30:30 + H]).max() > 1e-3  # the transition is danced anew
    s.comp_take = 7  # a take that does not exist is refused in a sentence
    with pytest.raises(RuntimeError, match="no take 7 on the selected armature"):
        bpy.ops.dance.mark_take()
    # the takes survive saving and reopening the file, and still audition
    path = str(tmp_path / "takes.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    obj = bpy.data.objects["SMPL"]
    assert [n for n, _, _ in take_actions(obj)] == [1, 2, 3] and playing_take(obj) == 0  # the comp plays
    assert len(bpy.context.scene.mace_dance.comp_marks) == 0  # cleared by the comp they were for
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.dance.audition_take(number=2) == {"FINISHED"}
    played = read_smpl_motion(bpy.context, obj, 1, 90)
    assert np.abs(played.joint_positions() - motions[1].joint_positions()).max() < 1e-4


def test_dance_through_keyed_poses_on_the_beat(addon, tiny_model, song, monkeypatch):
    from backend.music.features import analyse_file

    s, obj = generate_tiny_dance(tiny_model, song, monkeypatch)
    with pytest.raises(RuntimeError, match="No pose on SMPL differs from its dance"):
        bpy.ops.dance.through_keys()
    posed = {}
    for frame, angle in ((20, 0.9), (47, -0.7), (71, 0.6)):
        bpy.context.scene.frame_set(frame)
        pb = obj.pose.bones["left_elbow"]
        pb.rotation_quaternion = rot.axis_angle_to_quaternion(np.array([0.0, angle, 0.3]))
        assert pb.keyframe_insert("rotation_quaternion", frame=frame)
        posed[frame] = read_smpl_motion(bpy.context, obj, frame, frame).matrices()[0, 18]
    s.keys_on_beats = True
    assert bpy.ops.dance.through_keys() == {"FINISHED"}
    drive()
    assert s.status == "danced through 3 keyed poses (on beats)", s.status
    beats = set(int(b) + 1 for b in analyse_file(song).beat_frames)  # scene frames (start frame 1, 30 fps)
    landed = sorted(m.frame for m in bpy.context.scene.timeline_markers if m.name.startswith("key"))
    assert len(landed) == 3 and set(landed) <= beats
    after = read_smpl_motion(bpy.context, obj, 1, 90)
    for frame, (old, want) in zip(landed, sorted(posed.items())):
        assert abs(frame - old) <= 8  # the nearest beat, not anywhere
        assert np.abs(after.matrices()[frame - 1, 18] - want).max() < 1e-4  # the keyed elbow, on the beat


def test_repeat_a_detected_repeat_of_the_music(addon, tiny_model, tmp_path, monkeypatch):
    import soundfile as sf

    from backend.motion.choreography import repeat_plan
    from backend.music.features import SR, analyse_file
    from backend.music.structure import song_sections
    from builders import C, F_SHARP, chord_song

    wav = tmp_path / "aba.wav"
    sf.write(str(wav), chord_song([C, F_SHARP, C]), SR)
    s, obj = generate_tiny_dance(tiny_model, wav, monkeypatch)
    assert [m.name for m in bpy.context.scene.timeline_markers if not m.name.startswith("beat")] == ["A", "B", "A'"]
    s.repeat_mode = "SAME"
    assert bpy.ops.dance.repeat() == {"FINISHED"}
    drive(240)
    assert s.status == "repeated 1 section(s): A'", s.status
    [span] = repeat_plan(song_sections(analyse_file(wav)))
    dance = local_joints(read_smpl_motion(bpy.context, obj, 1, 900))
    inner = np.arange(H, span.frames - H)
    assert np.abs(dance[span.source + inner] - dance[span.target + inner]).max() < 1e-4
    assert obj.animation_data.action.name.startswith("repeat")


def test_comp_refuses_takes_of_different_songs_and_needs_marks(addon):
    from blender_addon.takes import add_take
    from blender_addon.scene import create_smpl_armature
    from builders import random_motion

    obj = create_smpl_armature(bpy.context)
    for number, song_name in ((1, "a.wav"), (2, "b.wav")):
        settings = stored_dance.DanceSettings(song=song_name, seed=number, start_frame=1)
        add_take(bpy.context, obj, number, random_motion(60, seed=number), settings)
    bpy.context.view_layer.objects.active = obj
    s = bpy.context.scene.mace_dance
    with pytest.raises(RuntimeError, match="Mark at least one range"):
        bpy.ops.dance.comp()
    s.comp_take, s.edit_start, s.edit_end, s.comp_base = 2, 10, 30, 1
    assert bpy.ops.dance.mark_take() == {"FINISHED"}
    with pytest.raises(RuntimeError, match="Take 2 was made for another song or section than take 1"):
        bpy.ops.dance.comp()
    assert [n for n, _, _ in take_actions(obj)] == [1, 2] and playing_take(obj) == 2
