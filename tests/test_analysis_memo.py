"""Another take of a song the server just danced skips its analysis (backend/server/analysis_memo.py), and nothing a
job does to its music, nor its beat overrides, reaches the next job on the same song."""

from __future__ import annotations

import numpy as np
import pytest

import backend.music.features as features
from backend.music.features import MusicFeatures
from backend.server.analysis_memo import AnalysisMemo, nbytes, song_key
from backend.server.jobs import Job
from backend.server.runner import MotionRunner
from bridge.request import DanceRequest
from bridge.request_wire import to_wire
from tests.test_bridge import song, tiny_model  # noqa: F401 - fixtures shared with the bridge tests


def _music(frames: int, value: float = 0.0) -> MusicFeatures:
    return MusicFeatures(np.full((frames, 35), value, np.float32), np.arange(0, frames, 15), np.arange(0, frames, 7),
                         120.0, frames / 30.0)


@pytest.fixture
def counted(monkeypatch):
    """The real analyse_section, with a count of its runs."""
    runs = []
    real = features.analyse_section

    def analyse_section(path, start=0.0, end=None, *args):
        runs.append((start, end))
        return real(path, start, end, *args)

    monkeypatch.setattr(features, "analyse_section", analyse_section)
    return runs


def _job(runner: MotionRunner, audio: np.ndarray, request: DanceRequest) -> dict:
    options, arrays = to_wire(request)
    job = Job(id="j", kind="motion", options={**options, "audio_name": "song.wav"})
    fields, out = runner(job, {"audio": audio, **arrays}, lambda *a: None, lambda: False)
    return {**fields, **out}


def test_a_second_take_of_the_same_song_is_not_analysed_again_and_dances_as_the_first(tiny_model, song,
                                                                                      counted):  # noqa: F811
    runner = MotionRunner(tiny_model)
    audio = np.frombuffer(song.read_bytes(), dtype=np.uint8)
    first = _job(runner, audio, DanceRequest(steps=2, seed=1))
    again = _job(runner, audio, DanceRequest(steps=2, seed=1))
    other_seed = _job(runner, audio, DanceRequest(steps=2, seed=2))
    assert len(counted) == 1  # three jobs, one analysis
    for name in ("rotations", "root_translation"):
        np.testing.assert_array_equal(first[name], again[name])
    assert first["beat_frames"] == again["beat_frames"] == other_seed["beat_frames"]
    assert not np.allclose(first["rotations"], other_seed["rotations"])

    # another section, or other bytes under the same name, is analysed anew
    _job(runner, audio, DanceRequest(steps=2, start=1.0, end=3.0))
    changed = audio.copy()
    changed[-200:] = 0  # the end of the last samples silenced: another recording
    _job(runner, changed, DanceRequest(steps=2, seed=1))
    assert len(counted) == 3
    assert runner.memo.hits == 2 and runner.memo.misses == 3


def test_a_beat_override_on_one_take_does_not_reach_the_next(tiny_model, song, counted):  # noqa: F811
    runner = MotionRunner(tiny_model)
    audio = np.frombuffer(song.read_bytes(), dtype=np.uint8)
    plain = _job(runner, audio, DanceRequest(steps=2))["beat_frames"]
    mapped = _job(runner, audio, DanceRequest(steps=2, beat_map=np.arange(0.2, 3.8, 0.4)))["beat_frames"]
    assert _job(runner, audio, DanceRequest(steps=2))["beat_frames"] == plain != mapped
    assert len(counted) == 1


def test_a_job_that_changes_its_music_leaves_the_kept_analysis_as_it_was():
    memo = AnalysisMemo()
    key = ("abc", 0.0, None)
    music = memo.analysis(key, lambda: _music(90, 1.0))
    music.features[:] = 7.0
    music.beat_frames[:] = 0
    again = memo.analysis(key, lambda: pytest.fail("analysed again"))
    assert (again.features == 1.0).all() and again.beat_frames.tolist() == list(range(0, 90, 15))


def test_an_analysis_that_fails_is_not_kept():
    memo = AnalysisMemo()

    def broken():
        raise ValueError("not a song")

    for _ in range(2):
        with pytest.raises(ValueError, match="not a song"):
            memo.analysis(("bad", 0.0, None), broken)
    assert memo.misses == 2 and len(memo) == 0


def test_the_memo_keeps_the_latest_songs_within_its_bounds():
    size = nbytes(_music(300))
    assert size >= 300 * 35 * 4
    memo = AnalysisMemo(songs=3, max_bytes=10 * size)
    for k in range(5):
        memo.analysis((str(k), 0.0, None), lambda: _music(300))
    assert len(memo) == 3
    memo.analysis(("2", 0.0, None), lambda: pytest.fail("2 was dropped"))  # 2 is now the most recent
    memo.analysis(("5", 0.0, None), lambda: _music(300))  # drops 3, the least recently used
    memo.analysis(("2", 0.0, None), lambda: pytest.fail("2 was dropped"))
    runs = []
    memo.analysis(("3", 0.0, None), lambda: runs.append(1) or _music(300))
    assert runs == [1]

    by_bytes = AnalysisMemo(songs=100, max_bytes=int(2.5 * size))
    for k in range(4):
        by_bytes.analysis((str(k), 0.0, None), lambda: _music(300))
    assert len(by_bytes) == 2 and by_bytes.held_bytes() <= 2.5 * size
    by_bytes.analysis(("huge", 0.0, None), lambda: _music(3000))  # bigger than the whole memo: danced, not kept
    assert len(by_bytes) == 2


def test_the_key_tells_sections_and_bytes_apart():
    audio = np.arange(1000, dtype=np.int64).astype(np.uint8)
    assert song_key(audio, 0.0, None) == song_key(audio.copy(), 0, None)
    assert song_key(audio, 0.0, None) != song_key(audio, 0.0, 10.0)
    assert song_key(audio, 0.0, 10.0) != song_key(audio, 1.0, 10.0)
    other = audio.copy()
    other[500] ^= 1
    assert song_key(other, 0.0, None) != song_key(audio, 0.0, None)
