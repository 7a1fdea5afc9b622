"""The noise schedule shared by training, sampling and the denoiser's v-prediction output."""

from __future__ import annotations

import math

import torch


class Schedule:
    """Cosine noise schedule (Nichol & Dhariwal) over `steps` training steps."""

    def __init__(self, steps: int = 1000):
        self.steps = steps
        s = 0.008
        t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        alphas_cumprod = (f / f[0])[1:]
        self.alphas_cumprod = alphas_cumprod.clamp(1e-8, 1.0).float()

    def ab(self, t: torch.Tensor) -> torch.Tensor:
        """alpha-bar at steps t (any shape), float32; t = -1 means 'clean' (1.0)."""
        ab = self.alphas_cumprod.to(t.device)
        return torch.where(t >= 0, ab[t.clamp(min=0)], torch.ones_like(t, dtype=torch.float32))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t from x0 (t: (B,) or scalar broadcast over the batch)."""
        ab = self.ab(t).reshape(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise
