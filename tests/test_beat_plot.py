"""The beat plot a person can read (issue 33, item 3): a close-up of 8-16 bars and the tempo over the whole song."""

from dataclasses import replace

import numpy as np
import pytest

from backend.music.features import FPS, SR, extract_features
from backend.music.report import beat_plot_data, plot_beats

BPM = 112.0
LEAD_IN = 1.6  # s of silence before the first click: the close-up must not start in it


def accented_clicks(bpm: float = BPM, seconds: float = 45.0, meter: int = 4) -> np.ndarray:
    """A click track at the features' rate: a low loud click on each bar's first beat, high soft ones between."""
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    t = np.arange(int(0.04 * SR)) / SR
    beat = 60.0 / bpm
    for k in range(int((seconds - LEAD_IN) / beat)):
        first = k % meter == 0
        click = (1.0 if first else 0.45) * np.sin(2 * np.pi * (800 if first else 2000) * t) * np.exp(-t * 120)
        i = int(round((LEAD_IN + k * beat) * SR))
        y[i:i + len(click)] += click[: len(y) - i].astype(np.float32)
    return y


@pytest.fixture(scope="module")
def clicks():
    """The features of a 45-s accented click track at 112 BPM."""
    return extract_features(accented_clicks(), SR)


def test_close_up_is_whole_bars_with_their_starts_numbered(clicks, tmp_path):
    assert len(clicks.downbeat_frames) > 16
    data = plot_beats(clicks, tmp_path / "beats.png", "clicks")
    assert (tmp_path / "beats.png").stat().st_size > 10_000
    assert 8 <= data.bars <= 16
    bar_starts = clicks.downbeat_frames / FPS
    t0, t1 = data.window
    # the window runs from a bar's start to the start of the bar after its last: whole bars, no pickup
    assert t0 >= LEAD_IN - 1.0 / FPS and t0 in bar_starts
    assert t1 == pytest.approx(bar_starts[list(bar_starts).index(t0) + data.bars])
    # the bold lines drawn are exactly the tracker's bar starts inside the window, numbered in order from bar 1
    np.testing.assert_allclose(data.downbeats, bar_starts[(bar_starts >= t0) & (bar_starts < t1 - 0.5 / FPS)])
    assert len(data.downbeats) == data.bars
    np.testing.assert_array_equal(data.bar_numbers, np.arange(data.first_bar, data.first_bar + data.bars))
    assert data.first_bar == 1
    # every beat in the window is drawn, `meter` of them a bar
    assert data.meter == 4
    assert len(data.beats) == data.bars * data.meter


def test_a_named_window_and_bar_count(clicks, tmp_path):
    data = beat_plot_data(clicks, bars=12, start=20.0)
    bar_starts = clicks.downbeat_frames / FPS
    assert data.bars == 12
    assert data.window[0] == pytest.approx(bar_starts[bar_starts >= 20.0 - 0.5 / FPS][0])
    assert data.first_bar == int(np.searchsorted(bar_starts, data.window[0] - 0.5 / FPS)) + 1
    late = beat_plot_data(clicks, bars=16, start=44.0)  # near the end: moved back so 16 whole bars still fit
    assert late.bars == 16 and late.window[1] <= clicks.duration + 1.0 / FPS


def test_tempo_curve_is_the_true_tempo(clicks):
    data = beat_plot_data(clicks)
    assert len(data.smoothed_bpm) == len(clicks.beat_frames) - 1
    assert np.median(data.smoothed_bpm) == pytest.approx(BPM, rel=0.02)
    assert np.median(data.local_bpm) == pytest.approx(BPM, rel=0.02)
    assert data.tempo == pytest.approx(BPM, rel=0.02)


def test_a_missed_beat_does_not_dip_the_smoothed_tempo(clicks):
    beats = np.delete(clicks.beat_frames, 40)
    data = beat_plot_data(replace(clicks, beat_frames=beats), sections=False)
    assert data.local_bpm.min() < 0.6 * BPM  # the raw interval across the gap is half the tempo ...
    assert data.smoothed_bpm.min() > 0.95 * BPM  # ... the smoothed curve does not follow it
