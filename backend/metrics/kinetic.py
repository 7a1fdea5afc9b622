"""72-D kinetic features (Bailando / aistplusplus_api), per joint [KE_h, KE_v, EE]; spec section 1.

Input joints are y-up, metres, 60 fps, zero-started. The frame rate is hard-coded to 1/60 s as in the reference
code, and the energy-expenditure term keeps the reference code's operator-precedence bug for comparability.
"""

from __future__ import annotations

import numpy as np

DT = 1.0 / 60.0
HALF_WINDOW = 2


def kinetic_features(joints: np.ndarray) -> np.ndarray:
    """(T, J, 3) joint positions -> (3 J,) float32 kinetic features."""
    P = np.asarray(joints, dtype=np.float64)
    T = P.shape[0]
    if T < 3:
        raise ValueError(f"kinetic features need at least 3 frames, got {T}")
    diff = P[1:] - P[:-1]  # diff[k-1] = P_k - P_{k-1}, k = 1..T-1
    cum = np.concatenate([np.zeros((1, *diff.shape[1:])), np.cumsum(diff, axis=0)])  # cum[k] = sum_{m<=k} diff
    i = np.arange(1, T)
    lo = np.maximum(1, i - HALF_WINDOW)
    hi = np.minimum(T - 1, i + HALF_WINDOW)
    # sum_{k=lo..hi} (P_k - P_{k-1}) = sum of diff[lo-1 .. hi-1]
    vsum = cum[hi] - cum[lo - 1]
    v = vsum / ((hi - lo + 1)[:, None, None] * DT)  # (T-1, J, 3)
    ke_h = np.sum(v[..., 0] ** 2 + v[..., 2] ** 2, axis=0) / (T - 1)
    ke_v = np.sum(v[..., 1] ** 2, axis=0) / (T - 1)
    # The reference's acceleration, precedence bug included: ((P_{k+1}-P_k)/dt - (P_k - P_{k-1}/dt)) / dt.
    k = np.arange(1, T - 1)
    a = ((P[k + 1] - P[k]) / DT - (P[k] - P[k - 1] / DT)) / DT  # a[k-1] for k = 1..T-2
    lo2 = np.maximum(1, i - HALF_WINDOW)
    hi2 = np.minimum(T - 2, i + HALF_WINDOW)
    acum = np.concatenate([np.zeros((1, *a.shape[1:])), np.cumsum(a, axis=0)])
    count = hi2 - lo2 + 1
    valid = count > 0
    asum = np.zeros((T - 1, *a.shape[1:]))
    asum[valid] = acum[hi2[valid]] - acum[lo2[valid] - 1]
    mean_a = np.where(valid[:, None, None], asum / np.maximum(count, 1)[:, None, None], 0.0)
    ee = np.sum(np.linalg.norm(mean_a, axis=-1), axis=0) / (T - 1)
    return np.stack([ke_h, ke_v, ee], axis=1).reshape(-1).astype(np.float32)
