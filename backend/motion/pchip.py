"""Monotone piecewise-cubic interpolation (PCHIP, Fritsch and Butland), in numpy.

The same curve as scipy.interpolate.PchipInterpolator (tests compare them), written here because importing
scipy.interpolate (it pulls scipy.special and scipy.stats) cost the CLI 0.4-0.7 s of its start, for one curve per
dance (beat sync's time warp).
"""

from __future__ import annotations

import numpy as np


def _slopes(h: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The knots' derivatives: weighted harmonic means inside (0 at a turn), a shape-keeping three-point end rule."""
    n = len(h) + 1
    d = np.zeros(n)
    if n == 2:
        return np.full(2, delta[0])
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = (np.sign(delta[1:]) * np.sign(delta[:-1])) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same, inner, 0.0)
    d[0] = _edge(h[0], h[1], delta[0], delta[1])
    d[-1] = _edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _edge(h0: float, h1: float, m0: float, m1: float) -> float:
    """An end knot's derivative from its two intervals, kept from overshooting."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return d


class Pchip:
    """y(x) through the knots (x strictly increasing), monotone between them; extrapolates with the end pieces."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        if self.x.ndim != 1 or self.x.shape != self.y.shape or len(self.x) < 2:
            raise ValueError("pchip needs matching 1-D x and y with at least two knots")
        h = np.diff(self.x)
        if not (h > 0).all():
            raise ValueError("pchip needs strictly increasing x")
        self.h = h
        self.d = _slopes(h, np.diff(self.y) / h)

    def _piece(self, t: np.ndarray):
        t = np.asarray(t, dtype=np.float64)
        i = np.clip(np.searchsorted(self.x, t, side="right") - 1, 0, len(self.h) - 1)
        return i, (t - self.x[i]) / self.h[i]

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """Values at t (cubic Hermite on each piece)."""
        i, s = self._piece(t)
        h, y0, y1, d0, d1 = self.h[i], self.y[i], self.y[i + 1], self.d[i], self.d[i + 1]
        return ((2 * s ** 3 - 3 * s ** 2 + 1) * y0 + (s ** 3 - 2 * s ** 2 + s) * h * d0
                + (-2 * s ** 3 + 3 * s ** 2) * y1 + (s ** 3 - s ** 2) * h * d1)

    def derivative(self, t: np.ndarray) -> np.ndarray:
        """dy/dx at t."""
        i, s = self._piece(t)
        h, y0, y1, d0, d1 = self.h[i], self.y[i], self.y[i + 1], self.d[i], self.d[i + 1]
        return ((6 * s ** 2 - 6 * s) * (y0 - y1) / h + (3 * s ** 2 - 4 * s + 1) * d0 + (3 * s ** 2 - 2 * s) * d1)
