"""Ellis' dynamic-programming beat tracker as librosa 0.11 runs it, in numpy, without numba.

`librosa.beat` compiles its numba kernels (one with caching off) on every import: 1.5 s of a cold CLI run, more
than the whole feature extraction. This is the same algorithm on the same float32 onset envelope, step for step
(local score = Gaussian-windowed onsets, the DP over [beat/2, 2 beats] back with a log-tempo penalty, the last beat
among the local maxima of the cumulative score, back-tracking, trimming weak leading and trailing beats), tested
equal to `librosa.beat.beat_track` in tests/test_music.py. Tempo estimation stays librosa's (`feature.tempo`).
"""

from __future__ import annotations

import numpy as np


def _local_score(onsets: np.ndarray, frames_per_beat: float) -> np.ndarray:
    """Onsets normalised by their std and smoothed with librosa's beat-length Gaussian window."""
    norm = onsets / (onsets.std(ddof=1) + np.finfo(onsets.dtype).tiny)
    fpb = np.float32(frames_per_beat) if onsets.dtype == np.float32 else frames_per_beat
    window = np.exp(-0.5 * (np.arange(-fpb, fpb + 1) * 32.0 / fpb) ** 2).astype(onsets.dtype)
    K, N = len(window), len(norm)
    full = np.convolve(norm, window)  # full[i + K//2] = sum_k window[k] * norm[i + K//2 - k]
    return full[K // 2: K // 2 + N].astype(onsets.dtype)


def _dynamic_program(score: np.ndarray, frames_per_beat: float, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """Backlinks and cumulative scores: each frame's best previous beat between half and two beat periods back."""
    N = len(score)
    fpb = np.float32(frames_per_beat)
    lo, hi = int(np.round(fpb / 2)), int(2 * fpb)  # offsets searched: lo .. hi frames back
    offsets = np.arange(lo, hi + 1)
    # the penalty as librosa's kernel computes it: float64 logs of the gap, float32 log of the period
    penalty = np.float32(tightness) * (np.log(offsets) - np.log(fpb)) ** 2
    cumscore = np.zeros(N, dtype=score.dtype)
    backlink = np.full(N, -1, dtype=np.int64)
    thresh = 0.01 * score.max()
    first_beat = True
    for i in range(N):
        locs = i - offsets
        valid = locs >= 0
        if valid.any():
            cand = cumscore[locs[valid]].astype(np.float64) - penalty[valid]
            k = int(np.argmax(cand))  # first maximum: the nearest candidate wins ties, as in the kernel's loop
            best, loc = cand[k], int(locs[valid][k])
            cumscore[i] = score[i] + best
        else:
            loc = -1
            cumscore[i] = score[i]
        if first_beat and score[i] < thresh:
            backlink[i] = -1
        else:
            backlink[i] = loc
            first_beat = False
    return backlink, cumscore


def _local_max(x: np.ndarray) -> np.ndarray:
    """librosa.util.localmax: x[i] > x[i-1] and x[i] >= x[i+1]; never the first element; the last if above its left."""
    out = np.zeros(len(x), dtype=bool)
    if len(x) >= 3:
        out[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])
    if len(x) >= 2:
        out[-1] = x[-1] > x[-2]
    return out


def _last_beat(cumscore: np.ndarray) -> int:
    """The last local maximum of the cumulative score above half the median local maximum."""
    peaks = _local_max(cumscore)
    threshold = 0.5 * np.median(cumscore[peaks]) if peaks.any() else 0.0
    for n in range(len(cumscore) - 1, -1, -1):
        if peaks[n] and cumscore[n] >= threshold:
            return n
    return len(cumscore) - 1


def _trim(score: np.ndarray, beats: np.ndarray, trim: bool) -> np.ndarray:
    """Drop leading and trailing beats whose local score is at most half the RMS of the smoothed beat scores
    (without `trim`: only beats on frames of zero score)."""
    w = np.hanning(5)
    smooth = np.convolve(score[beats], w)[len(w) // 2: len(score) + len(w) // 2]
    threshold = 0.5 * np.sqrt(np.mean(smooth ** 2)) if trim else 0.0
    out = beats.copy()
    n = 0
    while n < len(score) and score[n] <= threshold:
        out[n] = False
        n += 1
    n = len(score) - 1
    while n >= 0 and score[n] <= threshold:
        out[n] = False
        n -= 1
    return out


def track_beats(onset_envelope: np.ndarray, bpm: float, frame_rate: float, tightness: float = 100.0,
                trim: bool = True) -> np.ndarray:
    """Beat frames of an onset envelope at a given tempo (librosa.beat.beat_track's tracker, frames units)."""
    onsets = np.asarray(onset_envelope)
    if not onsets.any():
        return np.zeros(0, dtype=int)
    if bpm <= 0 or tightness <= 0:
        raise ValueError(f"bpm ({bpm}) and tightness ({tightness}) must be positive")
    frames_per_beat = float(np.round(frame_rate * 60.0 / bpm))
    score = _local_score(onsets, frames_per_beat)
    backlink, cumscore = _dynamic_program(score, frames_per_beat, tightness)
    beats = np.zeros(len(onsets), dtype=bool)
    n = _last_beat(cumscore)
    while n >= 0:
        beats[n] = True
        n = backlink[n]
    return np.flatnonzero(_trim(score, beats, trim))
