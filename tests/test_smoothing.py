"""Time filters for motion: the Gaussian blur of corrections and the low-pass that takes frame-to-frame jitter out."""

import math

import pytest
import torch

from backend.motion.smoothing import low_pass


def _power_above(x: torch.Tensor, hz: float, fps: float = 30.0) -> float:
    """Share of the (B, L, C) signal's frame-to-frame change power above `hz`."""
    v = torch.diff(x, dim=1)
    p = torch.fft.rfft(v - v.mean(dim=1, keepdim=True), dim=1).abs().pow(2).sum(dim=(0, 2))
    f = torch.fft.rfftfreq(v.shape[1], 1 / fps)
    return float(p[f >= hz].sum() / p.sum())


def test_low_pass_takes_out_jitter_and_keeps_the_dance():
    t = torch.arange(300) / 30.0
    dance = torch.sin(2 * math.pi * 1.5 * t) + 0.5 * torch.sin(2 * math.pi * 3.0 * t + 1.0)
    jitter = 0.3 * torch.sin(2 * math.pi * 11.0 * t)
    x = torch.stack([dance + jitter, dance], dim=-1)[None]
    y = low_pass(x, 6.0, 30.0)
    assert _power_above(x[..., :1], 8.0) > 0.5 and _power_above(y[..., :1], 8.0) < 1e-3
    inner = slice(15, -15)  # the end frames stay near where they were, jitter and all
    assert (y[0, inner, 0] - dance[inner]).abs().max() < 0.01  # 1.5 and 3 Hz pass untouched
    clean = (y[0, :, 1] - dance).abs()
    assert clean[inner].max() < 0.01 and clean.max() < 0.05  # a clean channel comes back; its ends ring a little
    assert torch.allclose(y[0, [0, -1], 0], x[0, [0, -1], 0], atol=0.01)


def test_low_pass_keeps_still_and_steadily_moving_channels_exactly():
    t = torch.arange(90, dtype=torch.float32)
    x = torch.stack([torch.full_like(t, 2.5), 0.04 * t - 1.0], dim=-1)[None]  # standing; walking at a steady pace
    assert torch.allclose(low_pass(x, 6.0, 30.0), x, atol=1e-5)


@pytest.mark.parametrize("frames, cutoff", [(3, 6.0), (50, 0.0), (50, 15.0)])
def test_low_pass_leaves_what_it_cannot_filter(frames, cutoff):
    x = torch.randn(1, frames, 2)
    assert torch.equal(low_pass(x, cutoff, 30.0), x)  # too short, off, or at/above Nyquist
