"""Gaussian blur along time, for corrections that should move motion at a body's pace rather than frame by frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_in_time(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, L, C) blurred along time by a Gaussian of `sigma` frames (edges held)."""
    reach = max(1, int(3 * sigma))
    kernel = torch.exp(-0.5 * (torch.arange(-reach, reach + 1, device=x.device, dtype=x.dtype) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[-1], 1)[:, None]  # (C, 1, K): one filter per channel
    padded = F.pad(x.transpose(1, 2), (reach, reach), mode="replicate")
    return F.conv1d(padded, kernel, groups=x.shape[-1]).transpose(1, 2)
