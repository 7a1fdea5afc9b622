"""The animator's word on the beat in the add-on: the panel's BPM, meter and downbeat and the beat markers they moved
reach every request the add-on builds; too few markers are refused in a sentence. The conversions (core/beats.py)
are tested without Blender first; the rest runs in the real bpy wheel."""

import numpy as np
import pytest

from blender_addon.core.beats import beat_map_problem, is_beat_marker, marker_song_seconds, tempo_fields

try:
    import bpy
except ImportError:  # the Blender-free tests below still run
    bpy = None

needs_bpy = pytest.mark.skipif(bpy is None, reason="the bpy wheel is not installed (scripts/test installs the "
                                                   "'blender' extra)")
if bpy is not None:
    from blender_fixtures import addon, drive, generate_tiny_dance, smooth_motion, song, tiny_model  # noqa: F401


def test_marker_frames_become_song_seconds():
    # 24 fps, the section starting at 10 s of the song plays from scene frame 1; markers in any order, one twice
    times = marker_song_seconds([25, 1, 13, 13, 37], 24.0, 1, 10.0)
    assert np.allclose(times, [10.0, 10.5, 11.0, 11.5])
    assert np.allclose(marker_song_seconds([101, 126], 25.0, 101, 0.0), [0.0, 1.0])  # 25 fps, start frame 101
    assert np.allclose(marker_song_seconds([30], 23.976, 6, 2.0), [2.0 + 24 / 23.976])


def test_only_the_addons_beat_markers_count():
    assert all(is_beat_marker(n) for n in ("beat1", "beat12", "beat300"))
    assert not any(is_beat_marker(n) for n in ("beat", "Beat1", "beats1", "beat1.001", "A", "A'", "key1", "F_01",
                                               "drop"))


def test_beat_map_problems_are_one_sentence():
    assert beat_map_problem(np.array([0.5, 1.0])) == ""
    few = beat_map_problem(np.array([0.5]))
    assert "at least two beat markers" in few and "found 1" in few and few.count(". ") == 0
    assert "found 0" in beat_map_problem(np.array([]))
    outside = beat_map_problem(np.array([0.5, 4.0, 5.0]), section=(1.0, 4.5))
    assert outside.startswith("Only 1 of the 3 beat markers lies inside the dance's section (1 to 4.5 s")
    assert beat_map_problem(np.array([1.0, 1.5]), section=(1.0, 4.5)) == ""


def test_panel_tempo_meter_and_downbeat_as_request_fields():
    assert tempo_fields(0.0, "AUTO", False, 3.0) == {}
    assert tempo_fields(92.5, "3", True, 1.24) == {"bpm": 92.5, "meter": 3, "downbeat": 1.24}
    assert tempo_fields(0.0, "4", False, 0.0) == {"meter": 4}
    with pytest.raises(ValueError, match=r"^BPM must be 0 \(found from the song\) or from 30 to 300 beats per "
                                         r"minute, got 12\.$"):
        tempo_fields(12.0, "AUTO", False, 0.0)
    assert tempo_fields(0.0, "AUTO", True, 2.0, section=(1.0, 4.5)) == {"downbeat": 2.0}
    with pytest.raises(ValueError, match=r"^The downbeat at 5 s lies outside the dance's section \(1 to 4\.5 s of "):
        tempo_fields(0.0, "AUTO", True, 5.0, section=(1.0, 4.5))


# a dance made for 0.5-3.0 s of the song, placed from scene frame 11 at 25 fps
FPS, START, SECTION = 25, 11, (0.5, 3.0)


def _sent(monkeypatch) -> list:
    """Record the requests the add-on would send (DanceRequest, read back from the wire) instead of sending them."""
    from blender_addon import jobs
    from bridge.request_wire import from_wire

    sent = []

    def record(context, path, options, arrays=None, kind="motion", **_):
        sent.append(from_wire(options, arrays or {}))

    monkeypatch.setattr(jobs, "start_job", record)
    return sent


def _section_dance(song):
    """A stored SMPL dance on the section, its beat markers every 0.5 s (and a user's, a section and a key marker)."""
    from blender_addon import results, stored_dance

    scene = bpy.context.scene
    scene.render.fps = FPS
    settings = stored_dance.DanceSettings(song=str(song), start_frame=START, time_start=SECTION[0],
                                          time_end=SECTION[1])
    motion = smooth_motion(75)  # 2.5 s at 30 fps
    obj = results.apply_result(bpy.context, motion, beat_frames=np.arange(0, 75, 15), settings=settings)
    for name, frame in (("cue", 20), ("A", START), ("key1", 30)):
        scene.timeline_markers.new(name, frame=frame)
    bpy.context.view_layer.objects.active = obj
    return obj, settings


@needs_bpy
def test_overrides_and_moved_markers_reach_every_request(addon, song, monkeypatch):
    from blender_addon import stored_dance
    from blender_addon.takes import add_take
    from rigs import rotations as rot

    obj, settings = _section_dance(song)
    scene, s = bpy.context.scene, bpy.context.scene.mace_dance
    beats = {m.name: m for m in scene.timeline_markers if m.name.startswith("beat")}
    assert [b.frame for b in sorted(beats.values(), key=lambda m: m.frame)] == [11, 24, 36, 48, 61]
    beats["beat3"].frame = 39  # the animator hears the third beat 3 frames later
    want = 0.5 + (np.array([11, 24, 39, 48, 61]) - 11) / 25.0  # song seconds; cue, A and key1 are not beats
    s.bpm, s.meter, s.use_downbeat, s.downbeat, s.use_beat_markers = 92.5, "3", True, 1.3, True
    s.audio_path, s.start_frame, s.whole_song = str(song), 1, True  # the markers keep their song times regardless
    sent = _sent(monkeypatch)
    assert bpy.ops.dance.generate() == {"FINISHED"}
    s.edit_mode, s.edit_start, s.edit_end = "RANGE", 20, 40
    assert bpy.ops.dance.edit() == {"FINISHED"}
    assert bpy.ops.dance.repeat() == {"FINISHED"}
    s.takes_range = True
    assert bpy.ops.dance.takes() == {"FINISHED"}
    for number in (1, 2):
        add_take(bpy.context, obj, number, smooth_motion(75, seed=number), settings)
    bpy.context.view_layer.objects.active = obj
    s.comp_take, s.comp_base = 2, 1
    assert bpy.ops.dance.mark_take() == {"FINISHED"}
    assert bpy.ops.dance.comp() == {"FINISHED"}
    scene.frame_set(30)
    pb = obj.pose.bones["left_elbow"]
    pb.rotation_quaternion = rot.axis_angle_to_quaternion(np.array([0.0, 0.9, 0.3]))
    assert pb.keyframe_insert("rotation_quaternion", frame=30)
    assert bpy.ops.dance.through_keys() == {"FINISHED"}
    assert len(sent) == 6 and not s.failed, s.status
    for request in sent:
        assert (request.bpm, request.meter, request.downbeat) == (92.5, 3, 1.3)
        assert np.allclose(request.beat_map, want), request.beat_map
    assert (sent[0].start, sent[0].end) == (0.0, None) and all(r.start == 0.5 for r in sent[1:])
    assert [r.edit.transitions != [] for r in sent if r.edit is not None] == [False, False, True]
    assert sent[-1].keys is not None and sent[2].repeat == "same"
    # off again: the tracker's beats, nothing sent about them
    s.bpm, s.meter, s.use_downbeat, s.use_beat_markers = 0.0, "AUTO", False, False
    assert bpy.ops.dance.repeat() == {"FINISHED"}
    assert (sent[-1].bpm, sent[-1].meter, sent[-1].downbeat, sent[-1].beat_map) == (None, None, None, None)
    assert stored_dance.has_dance(obj)


@needs_bpy
def test_too_few_beat_markers_or_a_bad_bpm_are_refused_in_the_panel(addon, song, monkeypatch):
    _section_dance(song)
    scene, s = bpy.context.scene, bpy.context.scene.mace_dance
    for marker in [m for m in scene.timeline_markers if m.name.startswith("beat")][1:]:
        scene.timeline_markers.remove(marker)  # one beat marker left beside cue, A and key1
    s.audio_path, s.use_beat_markers = str(song), True
    sent = _sent(monkeypatch)
    with pytest.raises(RuntimeError, match="needs at least two beat markers"):
        bpy.ops.dance.generate()
    assert s.failed and s.status == ("Use my beat markers needs at least two beat markers (beat1, beat2, ...) on the "
                                     "timeline, found 1; generate with Beat markers on, or turn Use my beat "
                                     "markers off.")
    with pytest.raises(RuntimeError, match="needs at least two beat markers"):
        bpy.ops.dance.repeat()
    scene.timeline_markers.new("beat2", frame=80)  # past the dance's section (3.0 s of the song is frame 74)
    with pytest.raises(RuntimeError, match=r"Only 1 of the 2 beat markers lies inside the dance's section"):
        bpy.ops.dance.repeat()
    s.use_beat_markers, s.bpm = False, 12.0
    with pytest.raises(RuntimeError, match="BPM must be 0"):
        bpy.ops.dance.generate()
    s.bpm, s.use_downbeat, s.downbeat = 0.0, True, 3.5
    with pytest.raises(RuntimeError, match=r"The downbeat at 3\.5 s lies outside the dance's section \(0\.5 to 3 s"):
        bpy.ops.dance.repeat()
    assert sent == []


@needs_bpy
def test_moved_markers_come_back_from_the_backend(addon, tiny_model, song, monkeypatch):
    s, obj = generate_tiny_dance(tiny_model, song, monkeypatch)
    scene = bpy.context.scene
    beats = sorted((m for m in scene.timeline_markers if m.name.startswith("beat")), key=lambda m: m.frame)
    assert len(beats) >= 3
    beats[1].frame += 4  # the animator moves the second beat 4 frames later
    mine = sorted(m.frame for m in beats)
    s.use_beat_markers = True
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied"), s.status
    # the server danced to the markers and sent them back: one set of beat markers, where the animator put them
    back = sorted(m.frame for m in scene.timeline_markers if m.name.startswith("beat"))
    assert back == mine, (back, mine)


@needs_bpy
def test_a_new_dance_replaces_the_beat_markers_and_a_failed_one_keeps_them(addon, monkeypatch):
    from blender_addon import results
    from blender_addon import scene as scene_mod

    scene = bpy.context.scene
    scene.timeline_markers.new("cue", frame=5)
    results.apply_result(bpy.context, smooth_motion(45), beat_frames=np.array([0, 15, 30]))
    bpy.context.view_layer.objects.active = None
    results.apply_result(bpy.context, smooth_motion(45, seed=1), beat_frames=np.array([3, 13, 23, 33, 43]))
    names = sorted((m.name, m.frame) for m in scene.timeline_markers)
    assert names == [("beat1", 4), ("beat2", 14), ("beat3", 24), ("beat4", 34), ("beat5", 44), ("cue", 5)]

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(scene_mod, "apply_motion", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        results.apply_result(bpy.context, smooth_motion(45, seed=2), beat_frames=np.array([0, 30]))
    assert sorted((m.name, m.frame) for m in scene.timeline_markers) == names
