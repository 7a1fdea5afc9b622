"""32-D geometric ("manual") features (Bailando manual_new.py = aistplusplus_api manual.py); spec section 2.

Each feature is the fraction of frames t = 1..T-1 at which a boolean relation between joints holds. Velocities use
the reference's hard-coded dt = 1/120 s, and MOVE ignores its nominal fourth joint, as the reference code does.
"""

from __future__ import annotations

import numpy as np

DT_M = 1.0 / 120.0
HL = 0.256838  # humerus length of the SMPL template (m)
SW = 0.390848  # shoulder width
HW = 0.119247  # hip width

(ROOT, LHIP, RHIP, BELLY, LKNEE, RKNEE, SPINE, LANKLE, RANKLE, CHEST, LTOES, RTOES, NECK, LCOLLAR, RCOLLAR, HEAD,
 LSHOULDER, RSHOULDER, LELBOW, RELBOW, LWRIST, RWRIST, LHAND, RHAND) = range(24)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1)


def _norm(a: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a, axis=-1)


class _Frames:
    """Joint positions at t (cur) and t-1 (prev) for t = 1..T-1, plus the special points of the spec."""

    def __init__(self, joints: np.ndarray):
        self.cur = joints[1:]
        self.prev = joints[:-1]
        n = self.cur.shape[0]
        self.zero = np.zeros((n, 3))
        self.y_unit = np.tile([0.0, 1.0, 0.0], (n, 1))
        self.minus_y_unit = -self.y_unit
        self.y_min = np.zeros((n, 3))
        self.y_min[:, 1] = self.cur[..., 1].min(axis=1)

    def __getitem__(self, j):
        return self.cur[:, j] if isinstance(j, int) else j

    def plane(self, a, b, c, p, theta):
        a, b, c, p = self[a], self[b], self[c], self[p]
        n = np.cross(c - a, b - a)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _dot(n, p - a) / _norm(n) > theta

    def nplane(self, n1, n2, a, p, theta):
        n1, n2, a, p = self[n1], self[n2], self[a], self[p]
        n = n2 - n1
        with np.errstate(invalid="ignore", divide="ignore"):
            return _dot(n, p - a) / _norm(n) > theta

    def angle(self, j1, j2, k1, k2, lo, hi):
        u = self[j2] - self[j1]
        v = self[k2] - self[k1]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = _dot(u, v) / (_norm(u) * _norm(v))
            deg = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        return (deg > lo) & (deg < hi)  # NaN compares false, as in the reference

    def _w(self, j1, p):
        return (self.cur[:, p] - self.cur[:, j1]) - (self.prev[:, p] - self.prev[:, j1])

    def move(self, j1, j2, p, theta):
        d = self[j2] - self[j1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return _dot(self._w(j1, p), d) / _norm(d) / DT_M > theta

    def nmove(self, j1, j2, j3, p, theta):
        d = np.cross(self[j3] - self[j1], self[j2] - self[j1])
        with np.errstate(invalid="ignore", divide="ignore"):
            return _dot(self._w(j1, p), d) / _norm(d) / DT_M > theta

    def fast(self, j, theta):
        return _norm(self.cur[:, j] - self.prev[:, j]) / DT_M > theta


def geometric_features(joints: np.ndarray) -> np.ndarray:
    """(T, 24, 3) y-up joint positions (m) -> (32,) float32 fractions of frames."""
    P = np.asarray(joints, dtype=np.float64)
    if P.ndim != 3 or P.shape[1:] != (24, 3) or P.shape[0] < 2:
        raise ValueError(f"geometric features need (T >= 2, 24, 3) joints, got {P.shape}")
    f = _Frames(P)
    feats = [
        f.nmove(NECK, RHIP, LHIP, RWRIST, 1.8 * HL),
        f.nmove(NECK, LHIP, RHIP, LWRIST, 1.8 * HL),
        f.nplane(CHEST, NECK, NECK, RWRIST, 0.2 * HL),
        f.nplane(CHEST, NECK, NECK, LWRIST, 0.2 * HL),
        f.move(BELLY, CHEST, CHEST, 1.8 * HL),
        f.move(BELLY, CHEST, CHEST, 1.8 * HL),
        f.angle(RELBOW, RSHOULDER, RELBOW, RWRIST, 0, 110),
        f.angle(LELBOW, LSHOULDER, LELBOW, LWRIST, 0, 110),
        f.nplane(LSHOULDER, RSHOULDER, LWRIST, RWRIST, 2.5 * SW),
        f.move(LWRIST, RWRIST, RWRIST, 1.4 * HL),
        f.move(RWRIST, ROOT, LWRIST, 1.4 * HL),
        f.move(LWRIST, ROOT, RWRIST, 1.4 * HL),
        f.fast(RWRIST, 2.5 * HL),
        f.fast(LWRIST, 2.5 * HL),
        f.plane(ROOT, LHIP, LTOES, RANKLE, 0.38 * HL),
        f.plane(ROOT, RHIP, RTOES, LANKLE, 0.38 * HL),
        f.nplane(f.zero, f.y_unit, f.y_min, RANKLE, 1.2 * HL),
        f.nplane(f.zero, f.y_unit, f.y_min, LANKLE, 1.2 * HL),
        f.nplane(LHIP, RHIP, LANKLE, RANKLE, 2.1 * HW),
        f.angle(RKNEE, RHIP, RKNEE, RANKLE, 0, 110),
        f.angle(LKNEE, LHIP, LKNEE, LANKLE, 0, 110),
        f.fast(RANKLE, 2.5 * HL),
        f.fast(LANKLE, 2.5 * HL),
        f.angle(NECK, ROOT, RSHOULDER, RELBOW, 25, 180),
        f.angle(NECK, ROOT, LSHOULDER, LELBOW, 25, 180),
        f.angle(NECK, ROOT, RHIP, RKNEE, 50, 180),
        f.angle(NECK, ROOT, LHIP, LKNEE, 50, 180),
        f.plane(RANKLE, NECK, LANKLE, ROOT, 0.5 * HL),
        f.angle(NECK, ROOT, f.zero, f.y_unit, 70, 110),
        f.nplane(f.zero, f.minus_y_unit, f.y_min, RWRIST, -1.2 * HL),
        f.nplane(f.zero, f.minus_y_unit, f.y_min, LWRIST, -1.2 * HL),
        f.fast(ROOT, 2.3 * HL),
    ]
    return np.stack([x.mean() for x in feats]).astype(np.float32)

