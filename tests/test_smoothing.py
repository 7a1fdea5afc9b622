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


def test_an_edits_kept_values_are_led_into_by_the_filter_not_snapped_to():
    from backend.motion.sampling import _low_pass_around_kept

    L, C = 90, 151
    x0 = torch.zeros(1, L, C)
    known = torch.zeros(1, L, C)
    mask = torch.zeros(1, L, C, dtype=torch.bool)
    known[0, 40, 10], mask[0, 40, 10] = 1.0, True  # a lone key far off the generated curve
    known[0, 60:, 20], mask[0, 60:, 20] = 0.5, True  # a kept range from frame 60 on
    out = _low_pass_around_kept(x0, known, mask, 6.0)
    key, held = out[0, :, 10], out[0, :, 20]
    assert abs(float(key[40]) - 1.0) < 0.02  # the key is (nearly) met before the exact value goes back in
    assert float(key[37]) > 0.2 and float(key[43]) > 0.2  # its neighbours lead in and out of it
    assert float(torch.diff(key, n=2).abs().max()) < 0.5  # a smooth bump, no one-frame spike
    assert torch.allclose(held[65:], torch.full((L - 65,), 0.5), atol=0.02) and float(held[55]) > 0.02
    assert float(out[0, :, 30].abs().max()) == 0.0  # a channel with nothing kept is only filtered


def test_a_loop_is_low_passed_as_one_period_so_its_join_is_as_smooth_as_the_rest():
    from backend.motion.representation import ROOT
    from backend.motion.sampling import ROOT_XZ, _low_pass_loop

    L, k, C = 240, 30, 10  # 8 s; the sampler's loop dances k frames past the end, tied to the first k
    t = torch.arange(L + k) / 30.0
    pose = torch.sin(2 * math.pi * t * 1.0) + 0.4 * torch.cos(2 * math.pi * t * 0.25)  # 8 and 2 cycles per loop
    jitter = 0.2 * torch.sin(2 * math.pi * 11.0 * t)
    x = (pose + jitter)[None, :, None].repeat(1, 1, C).double()
    walk = 0.5 * t.double()  # the root travels 4 m per loop: a loop in pose, not in place
    assert ROOT.stop <= 8 < C  # channel 8: a joint rotation (the first channels are contacts and the root)
    x[0, :, ROOT_XZ[0]] = walk
    y = _low_pass_loop(x, L, k, 6.0, None, None)
    assert torch.allclose(y[0, :L, 8], pose[:L].double(), atol=1e-5)  # the whole period, ends included
    travel = y[0, L:, ROOT_XZ[0]] - y[0, :k, ROOT_XZ[0]]
    assert torch.allclose(travel, torch.full_like(travel, 0.5 * L / 30.0), atol=1e-6)
    assert torch.allclose(y[0, :, ROOT_XZ[0]], walk, atol=1e-6)  # steady travel passes unchanged
    # played again, frame 0 follows frame L-1 with no kink: the wrap's jerk is the signal's own
    wrapped = torch.cat([y[0, L - 10:L, 8], y[0, :10, 8]])
    jerk_wrap = torch.diff(wrapped, n=3).abs().max()
    assert jerk_wrap <= 1.05 * torch.diff(y[0, :L, 8], n=3).abs().max()


def test_a_loop_keyed_at_its_first_frame_joins_without_a_step():
    from backend.motion.sampling import _low_pass_loop

    L, k, C = 240, 30, 10
    t = torch.arange(L + k) / 30.0
    x = torch.sin(2 * math.pi * t * 0.5)[None, :, None].repeat(1, 1, C).double()  # 4 cycles per loop
    known = torch.zeros(1, L, C, dtype=torch.float64)
    mask = torch.zeros(1, L, C, dtype=torch.bool)
    for key in (0, 120):  # a key at the join and one mid-loop, both 0.5 off the motion
        known[0, key] = x[0, key] + 0.5
        mask[0, key] = True
    y = _low_pass_loop(x, L, k, 6.0, known, mask)
    y = torch.where(torch.cat([mask, torch.zeros_like(mask[:, :k])], dim=1),
                    torch.cat([known, torch.zeros_like(known[:, :k])], dim=1), y)  # the sampler re-inserts keys
    loop = torch.cat([y[0, L - 12:L, 8], y[0, :12, 8]])  # played again: frame 0 after frame L-1
    mid = y[0, 120 - 12:120 + 12, 8]
    # the key at the join is reached as the mid-loop key is, from both sides
    assert torch.diff(loop, n=3).abs().max() < 1.5 * torch.diff(mid, n=3).abs().max()
