"""The numpy stand-ins for scipy.interpolate's PCHIP and scipy.signal's argrelextrema (kept off the CLI's start) give
scipy's answers, ends, flats and turns included."""

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator
from scipy.signal import argrelextrema

from backend.metrics.beats import motion_beats
from backend.motion.pchip import Pchip


@pytest.mark.parametrize("n", [2, 3, 5, 40])
def test_pchip_is_scipys_curve_and_slope_inside_and_beyond_the_knots(n):
    rng = np.random.default_rng(n)
    for k in range(30):
        x = np.sort(rng.choice(np.arange(2000), n, replace=False)) / 10.0
        y = rng.normal(size=n) if k % 2 else np.cumsum(rng.random(n))  # turns, or monotone (beat sync's warps)
        if k % 5 == 0 and n > 3:
            y[1:3] = y[1]  # a flat stretch
        t = np.linspace(x[0] - 3, x[-1] + 3, 700)
        ref = PchipInterpolator(x, y)
        np.testing.assert_allclose(Pchip(x, y)(t), ref(t), atol=1e-9)
        np.testing.assert_allclose(Pchip(x, y).derivative(t), ref.derivative()(t), atol=1e-8)


def test_pchip_refuses_knots_it_cannot_pass_through():
    with pytest.raises(ValueError, match="strictly increasing"):
        Pchip(np.array([0.0, 1.0, 1.0]), np.zeros(3))
    with pytest.raises(ValueError, match="two knots"):
        Pchip(np.array([0.0]), np.zeros(1))


def test_motion_beats_are_argrelextremas_minima():
    rng = np.random.default_rng(7)
    for frames in (3, 12, 300):
        joints = np.cumsum(rng.normal(size=(frames, 24, 3)) * 0.01, axis=0)
        joints[frames // 3: frames // 2] = joints[frames // 3]  # a held pose: equal speeds are not minima
        from scipy.ndimage import gaussian_filter1d

        speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=1)
        expected = argrelextrema(gaussian_filter1d(speed, 5.0, mode="reflect", truncate=4.0), np.less)[0]
        np.testing.assert_array_equal(motion_beats(joints), expected)
