"""Gaussian blur along time, for corrections that should move motion at a body's pace rather than frame by frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(2 reach + 1,) normalised Gaussian weights over +-3 sigma frames (at least one frame each side)."""
    reach = max(1, int(3 * sigma))
    kernel = torch.exp(-0.5 * (torch.arange(-reach, reach + 1, device=device, dtype=dtype) / sigma) ** 2)
    return kernel / kernel.sum()


def smooth_in_time(x: torch.Tensor, sigma: float, periodic: bool = False) -> torch.Tensor:
    """(B, L, C) blurred along time by a Gaussian of `sigma` frames (edges held; wrapped round when `periodic`)."""
    kernel = gaussian_kernel(sigma, x.device, x.dtype)
    reach = len(kernel) // 2
    kernel = kernel.repeat(x.shape[-1], 1)[:, None]  # (C, 1, K): one filter per channel
    if periodic and x.shape[1] > reach:
        padded = F.pad(x.transpose(1, 2), (reach, reach), mode="circular")
    else:
        padded = F.pad(x.transpose(1, 2), (reach, reach), mode="replicate")
    return F.conv1d(padded, kernel, groups=x.shape[-1]).transpose(1, 2)


def low_pass(x: torch.Tensor, cutoff: float, fps: float, taper: float = 0.25,
             periodic: bool = False) -> torch.Tensor:
    """(B, L, C) with what moves faster than `cutoff` Hz taken out along time, zero phase.

    `periodic`: x is one period of a loop (frame L would be frame 0 again), filtered as such, so the join stays smooth.

    Done in the frequency domain over an odd extension at each end (point-mirrored through the end frame, as scipy's
    filtfilt pads, so value and slope carry on; the end frames themselves stay about where they are); the gain falls from
    1 at (1 - taper) * cutoff to 0 at (1 + taper) * cutoff along a raised cosine, which rings less than a hard edge.
    """
    L = x.shape[1]
    if L < 4 or cutoff <= 0 or cutoff >= fps / 2:
        return x
    if periodic:
        freq = torch.fft.rfftfreq(L, d=1.0 / fps).to(x.device)
        gain = _raised_cosine(freq, cutoff, taper)
        return torch.fft.irfft(torch.fft.rfft(x.double(), dim=1) * gain[None, :, None], n=L, dim=1).to(x.dtype)
    pad = min(L - 1, int(round(2 * fps / cutoff)) + 1)  # a few periods of the cutoff on each side
    head, tail = x[:, :1], x[:, -1:]
    padded = torch.cat([2 * head - x[:, 1:pad + 1].flip(1), x, 2 * tail - x[:, -pad - 1:-1].flip(1)], dim=1)
    n = padded.shape[1]
    # the straight line from the first padded frame to the last comes off first (and back on after), so the
    # transform does not see the jump from the end back to the start
    ramp = torch.linspace(0, 1, n, device=x.device, dtype=x.dtype)[None, :, None]
    line = padded[:, :1] + (padded[:, -1:] - padded[:, :1]) * ramp
    padded = padded - line
    freq = torch.fft.rfftfreq(n, d=1.0 / fps).to(x.device)
    gain = _raised_cosine(freq, cutoff, taper)
    out = torch.fft.irfft(torch.fft.rfft(padded.double(), dim=1) * gain[None, :, None], n=n, dim=1)
    return out[:, pad:pad + L].to(x.dtype) + line[:, pad:pad + L]


def _raised_cosine(freq: torch.Tensor, cutoff: float, taper: float) -> torch.Tensor:
    """Gain 1 up to (1 - taper) * cutoff, 0 from (1 + taper) * cutoff, a raised cosine between (float64)."""
    lo, hi = (1 - taper) * cutoff, (1 + taper) * cutoff
    gain = (0.5 * (1 + torch.cos(torch.pi * (freq - lo) / (hi - lo)))).clamp(0, 1)
    gain = torch.where(freq <= lo, torch.ones_like(gain), torch.where(freq >= hi, torch.zeros_like(gain), gain))
    return gain.double()
