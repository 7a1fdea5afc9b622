"""The phrase time warp: bar lines on the song's bar lines, the phrase's motion beats moved onto the song's beats within
the shift and rate limits; and the per-phrase rhythm features the retrieval chooses by."""

import numpy as np

from backend.motion import phrase_rhythm, phrase_warp
from tests.test_retrieval import library  # noqa: F401 - the synthetic figure library


def test_the_bar_map_puts_the_phrase_beats_on_the_song_beats_and_keeps_dancing_beyond():
    target, beats = np.array([10.0, 25.0, 40.0]), np.array([100.0, 120.0, 140.0])
    f = np.arange(0.0, 51.0)
    t = phrase_warp.bar_times(f, target, beats)
    assert np.allclose(t[[10, 25, 40]], beats) and np.all(np.diff(t) > 0)
    assert np.isclose(t[0], 100.0 - 10 * 20 / 15) and np.isclose(t[50], 140.0 + 10 * 20 / 15)


def test_motion_beats_near_song_beats_land_on_them_and_the_ends_stay():
    target = np.arange(0.0, 91.0, 15.0)  # song beats every 15 frames; the source dances at the same tempo
    beats = target + 200.0
    minima = beats[1:-1] + np.array([4.0, 3.0, 5.0, 4.0, 2.0])  # the dancer stops a little late
    f = np.arange(0.0, 91.0)
    t = phrase_warp.phrase_times(f, target, beats, minima, target)
    assert np.isclose(t[0], beats[0]) and np.isclose(t[-1], beats[-1])  # joins stay on the bar lines
    assert np.all(np.diff(t) > 0) and np.diff(t).max() <= phrase_warp.ACCENT_RATE + 1e-6
    landed = np.interp(minima, t, f)  # the song frame where each stop is danced now
    assert np.abs(landed - target[1:-1]).max() < 0.5  # on the song's beats (before: 2-5 frames off)
    assert np.allclose(phrase_warp.phrase_times(f, target, beats, minima, target, shift=0.0),
                       phrase_warp.bar_times(f, target, beats))


def test_a_stop_farther_than_the_shift_stays_where_it_is():
    target = np.arange(0.0, 61.0, 15.0)
    beats, f = target + 50.0, np.arange(0.0, 61.0)
    t = phrase_warp.phrase_times(f, target, beats, np.array([beats[2] + 7.0]), target, shift=0.3)  # 0.47 beat off
    assert np.allclose(t, phrase_warp.bar_times(f, target, beats))


def test_beat_lock_and_grooves_read_the_phrases_speed_profiles(library):  # noqa: F811
    lock, groove = phrase_rhythm.beat_lock(library), phrase_rhythm.grooves(library)
    assert lock.shape == (library.size,) and np.all((lock >= 0) & (lock <= 1 + 1e-9))
    per_bar = library.arrays["per_bar"]
    n = per_bar * 4
    for p in range(0, library.size, 7):
        g = groove[p, :n[p]]
        assert np.isclose(np.linalg.norm(g), 1.0) and np.isclose(g.sum(), 0.0, atol=1e-9)
        assert np.isnan(groove[p, n[p]:]).all()
    # a profile that bounces once per beat locks fully; noise hardly
    saved = library.arrays["speed"].copy()
    try:
        grid = np.arange(24)
        library.arrays["speed"][:] = (1 + np.cos(2 * np.pi * grid / 4)).astype(np.float16)
        library._lock = None
        assert phrase_rhythm.beat_lock(library).min() > 0.99
    finally:
        library.arrays["speed"][:] = saved
        library._lock = None
