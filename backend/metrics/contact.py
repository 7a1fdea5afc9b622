"""Physical Foot Contact score (EDGE eval_pfc.py); spec section 6.

The reference works z-up; in our y-up frame its horizontal plane (x, y) is (x, z) and its vertical z is y, so the
score is the same without converting. 30 fps, per-frame foot displacements, 10^4 x the mean over clips.
"""

from __future__ import annotations

import numpy as np

DT = 1.0 / 30.0
LANKLE, RANKLE, LTOE, RTOE = 7, 8, 10, 11


def pfc_clip(joints: np.ndarray) -> float:
    """PFC term of one clip of (S, 24, 3) y-up joints at 30 fps; NaN if the root never accelerates."""
    P = np.asarray(joints, dtype=np.float64)
    root = P[:, 0]
    v = (root[1:] - root[:-1]) / DT
    a = (v[1:] - v[:-1]) / DT  # t = 0..S-3
    a[:, 1] = np.maximum(a[:, 1], 0.0)  # falling is explained by gravity
    mag = np.linalg.norm(a, axis=-1)
    peak = mag.max()
    if not peak > 0:
        return float("nan")
    alpha = mag / peak
    horiz = P[:, :, [0, 2]]
    u = np.linalg.norm(horiz[2:] - horiz[1:-1], axis=-1)  # u[t] = |xy_{t+2} - xy_{t+1}|, t = 0..S-3
    left = np.minimum(u[:, LANKLE], u[:, LTOE])
    right = np.minimum(u[:, RANKLE], u[:, RTOE])
    return float(np.mean(left * right * alpha))


def pfc(clips: list[np.ndarray]) -> float:
    """10^4 x the mean clip score over clips (NaN clips ignored)."""
    scores = np.array([pfc_clip(c) for c in clips])
    scores = scores[np.isfinite(scores)]
    return float(1e4 * scores.mean()) if scores.size else float("nan")


def clips_of(joints: np.ndarray, length: int = 150, stride: int = 75) -> list[np.ndarray]:
    """EDGE's protocol: 5-s slices with a 2.5-s stride at 30 fps."""
    T = joints.shape[0]
    if T < length:
        return [joints] if T >= 4 else []
    return [joints[s : s + length] for s in range(0, T - length + 1, stride)]
