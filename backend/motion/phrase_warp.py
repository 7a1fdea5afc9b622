"""The time warp that puts a library phrase on a song: its bar lines on the song's bar lines, its accents on beats.

Two maps compose. The bar map sends the phrase's beats (its source song's beats) onto the song's beats, linearly in
between and at the outer beats' rates beyond them (so intros and outros keep dancing). The accent map then moves the
phrase's own motion beats (the speed minima the BAS metric finds, stored per phrase by figure_library) that lie
within ACCENT_SHIFT of a song beat onto that beat, by beat sync's monotone PCHIP warp with its rate limit, the
piece's ends fixed so joins stay on the bar lines. Why: a dancer's stops lie anywhere relative to the beat tracker's
beats of the source song (uniformly over the beat in the train dances), so the bar map alone leaves the retrieved
dance's stops no nearer its song's beats than another song's (BAS own/other 0.98x on the val songs).
"""

from __future__ import annotations

import numpy as np

from backend.metrics.beats import motion_beats
from backend.motion.beatsync import BeatSyncConfig, time_map
from rigs.motion import Motion

ACCENT_SHIFT = 0.5  # in beat periods: a motion beat farther than this from every song beat stays where it is
ACCENT_RATE = 1.5  # the accent map's playback rate stays within [1/ACCENT_RATE, ACCENT_RATE]
FINE_SHIFT, FINE_RATE = 0.3, 1.2  # the second pass: only the few frames retiming moved the minima by


def bar_times(f: np.ndarray, target: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Source frames for song frames `f`: `beats` (source frames) land on `target` (song frames), linear between."""
    t = np.interp(f, target, beats)
    t = np.where(f < target[0], beats[0] + (f - target[0]) * (beats[1] - beats[0]) / (target[1] - target[0]), t)
    return np.where(f > target[-1], beats[-1] + (f - target[-1]) * (beats[-1] - beats[-2]) / (target[-1] - target[-2]),
                    t)


def phrase_times(f: np.ndarray, target: np.ndarray, beats: np.ndarray, minima: np.ndarray | None,
                 song_beats: np.ndarray, shift: float = ACCENT_SHIFT) -> np.ndarray:
    """Source frames for the song frames `f` (consecutive): the bar map, then the phrase's motion beats `minima`
    (source frames) within `shift` beats of a song beat moved onto it (shift 0 or no minima: the bar map alone)."""
    t0 = bar_times(f, target, beats)
    if minima is None or not len(minima) or shift <= 0 or len(f) < 3:
        return t0
    inside = minima[(minima > t0[0]) & (minima < t0[-1])]
    accents = np.interp(inside, t0, f) - f[0]  # where the bar map puts them, in frames of this piece
    cfg = BeatSyncConfig(max_shift=shift, max_rate=ACCENT_RATE)
    local = time_map(accents, np.asarray(song_beats, dtype=np.float64) - f[0], len(f), cfg)
    return np.interp(local + f[0], f, t0)


def refined_times(source: Motion, times: np.ndarray, song_beats: np.ndarray) -> np.ndarray:
    """`times` (source frames per output frame) composed with a fine pass that moves the warped piece's own motion
    beats, as the metric finds them after retiming (which moves speed minima a little), onto `song_beats` (output
    frames); beat sync's second pass."""
    found = motion_beats(source.at_times(times).joint_positions())
    cfg = BeatSyncConfig(max_shift=FINE_SHIFT, max_rate=FINE_RATE)
    local = time_map(found, song_beats, len(times), cfg)
    return np.interp(local, np.arange(len(times)), times)
