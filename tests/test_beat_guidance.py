"""Beat guidance: the sampler's pull of the dance's rhythm onto the song's beats."""

import numpy as np
import pytest
import torch

from backend.motion.beat_guidance import BeatGuide, beat_phase, triple_weight
from backend.motion.checkpoint import SHIPPED_ME
from backend.motion.representation import Normalizer, motion_to_features
from backend.motion.sampling import SampleOptions
from backend.music.features import SR, MusicFeatures, extract_features
from backend.music.meter import UNKNOWN
from tests.builders import accompaniment, random_motion

IDENTITY = Normalizer(np.zeros(151, np.float32), np.ones(151, np.float32), np.zeros(35, np.float32),
                      np.ones(35, np.float32))


def test_beat_phase_counts_beats_and_continues_the_grid_past_the_ends():
    beats = np.array([20, 35, 50, 65, 80])
    phase = beat_phase(beats, 120)
    assert np.allclose(phase[beats], [0, 1, 2, 3, 4])
    assert np.isclose(phase[5], -1.0) and np.isclose(phase[95], 5.0) and np.all(np.diff(phase) > 0)
    assert beat_phase(np.array([10, 20, 30]), 100) is None  # too few beats to follow


def _bouncing(period: float, shift: float = 0.0, frames: int = 150) -> torch.Tensor:
    """Features of a dancer who bobs up and down with the given period (frames), fastest `shift` after a beat."""
    m = random_motion(frames, seed=1, scale=0.0, drift=0.0)  # a still body: per-frame random poses would jitter
    t = np.arange(frames)
    m.root_translation[:, 1] += 0.04 * np.sin(np.pi * (t - shift) / period)  # speed peaks twice per sine period
    return torch.tensor(motion_to_features(m))[None]


def test_the_score_prefers_step_and_bar_cycles_that_dip_on_the_beats():
    # real dancers' rhythm sits in the two-beat step cycle and the three-beat bar of triple time, not on every beat
    beats = np.arange(0, 150, 15)
    guide = BeatGuide(IDENTITY, beats, 150)
    assert guide.active
    score = lambda period, shift: float(guide.score(_bouncing(period, shift)))  # noqa: E731
    two_on, two_off = score(30.0, 0.0), score(30.0, 7.5)  # speed dips on beats 15, 45, ... / between beats
    three_on, three_off = score(45.0, 7.5), score(45.0, 0.0)  # dips on beats 30, 75, ... / between beats
    every_beat = score(15.0, 7.5)  # a bob on every beat, dipping on them
    off_tempo = score(30.0 * 1.37, 0.0)
    assert two_on > two_off and three_on > three_off
    assert min(two_on, three_on) > max(every_beat, off_tempo)
    x = torch.tensor(motion_to_features(random_motion(150, seed=2, scale=0.2, drift=0.0)))[None]
    assert float(guide.score(guide.nudge(x, 1.0, torch.tensor(1.0)))) > float(guide.score(x)) + 0.5  # uphill
    assert not BeatGuide(IDENTITY, np.array([3, 40]), 150).active
    # told the song is in triple time, the guide prefers the bar; told it is not, the step cycle
    waltz, four = BeatGuide(IDENTITY, beats, 150, triple=1.0), BeatGuide(IDENTITY, beats, 150, triple=0.0)
    bar, step = _bouncing(45.0, 7.5), _bouncing(30.0, 0.0)
    assert float(waltz.score(bar)) > float(waltz.score(step)) and float(four.score(step)) > float(four.score(bar))
    with pytest.raises(ValueError, match="beat guidance"):
        SampleOptions(beat_guidance=-1.0).validate()


def test_the_nudge_moves_the_dance_at_a_bodys_pace_not_frame_by_frame(monkeypatch):
    import backend.motion.beat_guidance as bg

    beats = np.arange(0, 150, 15)
    x = _bouncing(30.0, 7.5) + 0.05 * torch.randn(1, 150, 151, generator=torch.Generator().manual_seed(3))

    def jitter(guide) -> float:  # share of the nudge's motion in frame-to-frame zigzags (second differences)
        delta = guide.nudge(x, 1.0, torch.tensor(1.0)) - x
        return float((delta[:, 2:] - 2 * delta[:, 1:-1] + delta[:, :-2]).pow(2).sum() / delta.pow(2).sum())

    smooth = jitter(BeatGuide(IDENTITY, beats, 150))
    monkeypatch.setattr(bg, "NUDGE_SIGMA", 0.05)  # (as before the blur) the score's gradient taken raw
    raw = jitter(BeatGuide(IDENTITY, beats, 150))
    assert raw > 1.0 and smooth < 0.1 * raw
    guide = BeatGuide(IDENTITY, beats, 150)
    monkeypatch.undo()
    assert float(guide.score(guide.nudge(x, 1.0, torch.tensor(1.0)))) > float(guide.score(x))  # still uphill


def test_an_asked_style_moves_in_its_own_meter_whatever_the_song():
    song = MusicFeatures(np.zeros((300, 35), np.float32), np.arange(0, 300, 15), np.zeros(0, int), 120.0, 10.0)
    assert triple_weight("waltz", song) == 1.0
    assert triple_weight("cha-cha", song) == 0.0 and triple_weight("tango", song) == 0.0
    assert triple_weight("auto", song) == triple_weight(None, song) == UNKNOWN  # flat timbre: the music cannot tell
    waltz = extract_features(accompaniment("bcc"), SR)
    assert triple_weight("auto", waltz) > 0.8 and triple_weight("cha-cha", waltz) == 0.0  # auto follows the song


@pytest.mark.skipif(not (SHIPPED_ME / "model.safetensors").is_file(), reason="no shipped weights in weights/me")
def test_guided_dances_keep_the_songs_tempo():
    from backend.metrics.music_dependence import tempo_lock
    from backend.motion.generate import MotionExpert
    from backend.music.demo import synthesize_demo
    from backend.music.features import extract_features

    song = synthesize_demo(seconds=20.0)
    music = extract_features(song.samples, song.sr)
    me = MotionExpert.load()

    def lock(weight: float) -> float:
        runs = [me.generate(music, SampleOptions(seed=s, beat_guidance=weight), lock_feet=True) for s in (0, 1, 2)]
        return float(np.mean([tempo_lock(m.resample(60.0).joint_positions(), music.tempo) for m in runs]))

    assert lock(8.0) > 1.3 * lock(0.0)
