"""Dense rhythm inputs for the Motion Expert: where in the beat every frame sits, not only which frames are beats.

A one-hot beat column is one frame in fifteen; a denoiser learns to ignore it. These columns carry the beat grid on
every frame, so a step can be planned from the music around it (the levers in issue 12):
- beat phase as (sin, cos) of 2 pi * phase, phase running 0 -> 1 from one beat to the next;
- the same for the two-beat cycle (steps alternate feet; which beat is "even" is arbitrary, mirror augmentation
  covers both);
- a Gaussian-smoothed beat curve (sigma 2 frames), so being near a beat is a smooth signal;
- local tempo as log2(bpm / 120), from the beat intervals around each frame;
- the onset envelope smoothed and scaled by its own song's 95th percentile (accent strength, loudness-free).
Everything is computed from a MusicFeatures (its beat frames and envelope column), so training data, time-stretched
training data and generation share one definition.
"""

from __future__ import annotations

import numpy as np

RHYTHM_DIM = 7
RHYTHM_COLUMNS = ("beat_sin", "beat_cos", "bar2_sin", "bar2_cos", "beat_curve", "log_tempo", "accent")
_CURVE_SIGMA = 2.0  # frames
_MIN_PERIOD, _MAX_PERIOD = 5.0, 90.0  # frames between beats: 360 to 20 bpm at 30 fps


def beat_phase(beat_frames: np.ndarray, num_frames: int, cycle: int = 1) -> np.ndarray:
    """(T,) phase in [0, 1) of a `cycle`-beat period at every frame; NaN where there are fewer than 2 beats.

    Between beats the phase is linear; before the first and after the last beat the nearest interval's period is
    extended, so the phase keeps running through intros and outros.
    """
    b = np.unique(np.asarray(beat_frames, dtype=np.float64))
    t = np.arange(num_frames, dtype=np.float64)
    if len(b) < 2:
        return np.full(num_frames, np.nan)
    # beat index as a continuous function of time, linear between beats and extrapolated at both ends
    idx = np.interp(t, b, np.arange(len(b), dtype=np.float64))
    first, last = b[1] - b[0], b[-1] - b[-2]
    idx = np.where(t < b[0], (t - b[0]) / first, idx)
    idx = np.where(t > b[-1], len(b) - 1 + (t - b[-1]) / last, idx)
    return np.mod(idx / cycle, 1.0)


def local_period(beat_frames: np.ndarray, num_frames: int) -> np.ndarray:
    """(T,) beat period in frames at every frame (the interval it falls in; NaN with fewer than 2 beats)."""
    b = np.unique(np.asarray(beat_frames, dtype=np.float64))
    if len(b) < 2:
        return np.full(num_frames, np.nan)
    mids = (b[1:] + b[:-1]) / 2
    return np.clip(np.interp(np.arange(num_frames), mids, np.diff(b)), _MIN_PERIOD, _MAX_PERIOD)


def beat_curve(beat_frames: np.ndarray, num_frames: int, sigma: float = _CURVE_SIGMA) -> np.ndarray:
    """(T,) sum of unit-height Gaussians at the beats (1 on a beat, ~0 between beats)."""
    t = np.arange(num_frames, dtype=np.float64)[:, None]
    b = np.asarray(beat_frames, dtype=np.float64)[None]
    if b.size == 0:
        return np.zeros(num_frames)
    near = np.exp(-0.5 * ((t - b) / sigma) ** 2)
    return np.clip(near.sum(axis=1), 0.0, 1.0)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    radius = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, radius, mode="edge"), k, mode="valid")


def rhythm_features(beat_frames: np.ndarray, envelope: np.ndarray) -> np.ndarray:
    """(T, RHYTHM_DIM) float32 rhythm columns for a beat grid and an onset envelope of T frames (fps 30)."""
    envelope = np.asarray(envelope, dtype=np.float64).reshape(-1)
    T = len(envelope)
    out = np.zeros((T, RHYTHM_DIM), dtype=np.float64)
    phase1, phase2 = beat_phase(beat_frames, T, 1), beat_phase(beat_frames, T, 2)
    if not np.isnan(phase1).any():  # no beat grid (silence, < 2 beats): the phase columns stay 0, "unknown"
        out[:, 0], out[:, 1] = np.sin(2 * np.pi * phase1), np.cos(2 * np.pi * phase1)
        out[:, 2], out[:, 3] = np.sin(2 * np.pi * phase2), np.cos(2 * np.pi * phase2)
        out[:, 5] = np.log2(60.0 * 30.0 / local_period(beat_frames, T) / 120.0)
    out[:, 4] = beat_curve(beat_frames, T)
    smooth = _smooth(envelope, 1.5) if T else envelope
    scale = np.percentile(smooth, 95) if T else 0.0
    out[:, 6] = np.clip(smooth / scale, 0.0, 2.0) if scale > 1e-8 else 0.0
    return out.astype(np.float32)
