"""The timbre cue to the meter: does the music's sound repeat every three beats or every two (backend.music.meter)?

Kept apart from meter.py so that the feature extraction can ask it (where the downbeat tracker is unsure of its
meter) without importing the module that reads MusicFeatures.
"""

from __future__ import annotations

import numpy as np

SAMPLES_PER_BEAT = 12
MIN_BEATS = 12  # fewer beats cannot tell a 3-beat cycle from a 2-beat one
TRIPLE_SPLIT = -0.62  # log(power at 1/3 / power at 1/2 cycle per beat) between the train songs' two groups
# log-ratio units over which the answer goes from unsure to sure: gentle, because songs outside the ballroom set mislead
# the cue (Brahms' Hungarian Dance no. 5, in two, sits at -0.00, on the triple side)
TRIPLE_SOFTNESS = 1.0
# Where the tracker is unsure of its meter, the timbre cue overrules it only beyond this distance from the split: on the
# tracker's beats the Tang waltzes lie at +0.06..+3.94 and the others at -5.66..+0.09 (issue 33's eval), so only a
# clear reading counts (the librosa example waltz, +2.43, whose downbeat activations barely favour either meter).
TIMBRE_DECISIVE = 1.5


def cycle_evidence(beat_frames: np.ndarray, mfcc: np.ndarray, num_frames: int) -> float | None:
    """log(power at 1/3 / power at 1/2 cycle per beat) of MFCCs (T, n) resampled onto a beat grid; None with too
    few beats or an unchanging sound."""
    beats = np.unique(np.asarray(beat_frames, dtype=np.float64))
    beats = beats[(beats >= 0) & (beats <= num_frames - 1)]
    if len(beats) < MIN_BEATS:
        return None
    grid = np.arange(0.0, len(beats) - 1, 1.0 / SAMPLES_PER_BEAT)  # beat count, 12 samples per beat
    frames = np.interp(grid, np.arange(len(beats)), beats)
    mfcc = np.asarray(mfcc, dtype=np.float64)
    x = np.stack([np.interp(frames, np.arange(len(mfcc)), mfcc[:, d]) for d in range(mfcc.shape[1])], axis=1)
    x = x - x.mean(axis=0)
    power = (np.abs(np.fft.rfft(x * np.hanning(len(x))[:, None], axis=0)) ** 2).sum(axis=1)
    freq = np.fft.rfftfreq(len(x), d=1.0 / SAMPLES_PER_BEAT)  # cycles per beat
    if power[1:].sum() <= 1e-12:
        return None  # a timbre that never changes says nothing about the meter
    bin_width = 1.0 / (len(beats) - 1)

    def near(m: float) -> float:  # within 3 % of the cycle, or within one bin when the bins are coarser
        return float(power[np.abs(freq - m) <= max(0.03 * m, bin_width)].sum())

    evidence = float(np.log((near(1 / 3) + 1e-9) / (near(1 / 2) + 1e-9)))
    return evidence if np.isfinite(evidence) else None


def timbre_meter(beat_frames: np.ndarray, mfcc: np.ndarray, num_frames: int) -> int | None:
    """3 or 4 where the timbre cue is decisive (beyond TIMBRE_DECISIVE of the split), else None."""
    evidence = cycle_evidence(beat_frames, mfcc, num_frames)
    if evidence is None or abs(evidence - TRIPLE_SPLIT) < TIMBRE_DECISIVE:
        return None
    return 3 if evidence > TRIPLE_SPLIT else 4
