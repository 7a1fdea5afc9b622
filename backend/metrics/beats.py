"""Beat Align Score (Bailando direction: averaged over music beats) and motion beats; spec section 5.

We score at the motion's own 30 fps with music beats from backend.music (15360 Hz, hop 512, full-mix onset,
tightness 100): the EDGE/LODGE-family music beats with LODGE's Bailando-direction score. sigma = 3 frames.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from rigs.rotations import vector_norm


def motion_beats(joints: np.ndarray, smooth_sigma: float = 5.0) -> np.ndarray:
    """Frames where the mean joint speed has a strict local minimum after Gaussian smoothing (Bailando)."""
    P = np.asarray(joints, dtype=np.float64)
    speed = vector_norm(P[1:] - P[:-1]).mean(axis=1)  # s_t for t = 0..T-2
    smooth = gaussian_filter1d(speed, smooth_sigma, mode="reflect", truncate=4.0)
    # argrelextrema(smooth, np.less) in numpy: scipy.signal's import alone took the CLI 0.5-0.9 s
    return np.flatnonzero((smooth[1:-1] < smooth[:-2]) & (smooth[1:-1] < smooth[2:])) + 1


def beat_align_score(music_beat_frames: np.ndarray, motion_beat_frames: np.ndarray, sigma: float = 3.0) -> float:
    """Mean over music beats of exp(-d^2 / (2 sigma^2)), d = distance to the nearest motion beat (frames).

    NaN when there are no music beats; 0 when the motion has no beats (the reference code would crash).
    """
    music = np.asarray(music_beat_frames, dtype=np.float64)
    motion = np.asarray(motion_beat_frames, dtype=np.float64)
    if music.size == 0:
        return float("nan")
    if motion.size == 0:
        return 0.0
    d = np.abs(music[:, None] - motion[None, :]).min(axis=1)
    return float(np.mean(np.exp(-(d ** 2) / (2 * sigma ** 2))))
