"""DDIM sampling with masked denoising: one mechanism for generation, inpainting, joint edits and root paths.

At every step the known parts of the motion (a mask over frames x channels) are replaced by the known values noised
to the current step (EDGE's inpainting), and at the end by the known values themselves, so kept parts come back
exactly. One model call per step: with guidance-free training, beta sets the guidance strength inside that call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from backend.motion.diffusion import Schedule
from backend.motion.model import Denoiser


class Cancelled(Exception):
    """Raised when the step callback asks to stop."""


@dataclass
class SampleOptions:
    """How to sample: DDIM steps, diversity beta (1 = unguided; smaller = stronger guidance), seed, DDIM eta."""

    steps: int = 20
    beta: float = 0.5
    seed: int = 0
    eta: float = 0.0

    def validate(self) -> None:
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be between 1 and 1000, got {self.steps}")
        if not 0.0 < self.beta <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {self.beta}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")


@dataclass
class Constraint:
    """Known values (normalised features, (L, C)) and where they hold (bool mask, (L, C))."""

    values: np.ndarray
    mask: np.ndarray


StepCallback = Callable[[int, int], bool | None]  # (step, total) -> True to cancel


def ddim_timesteps(train_steps: int, steps: int) -> list[int]:
    """Evenly spaced training steps from noisy to clean, e.g. [999, 949, ..., 0]."""
    ts = np.linspace(train_steps - 1, 0, steps).round().astype(int)
    return sorted(set(ts.tolist()), reverse=True)


@torch.no_grad()
def sample(model: Denoiser, music: torch.Tensor, options: SampleOptions, constraint: Constraint | None = None,
           callback: StepCallback | None = None, schedule: Schedule | None = None) -> torch.Tensor:
    """Sample normalised motion features (L, C) for normalised music features (L, 35)."""
    options.validate()
    schedule = schedule or Schedule()
    device = next(model.parameters()).device
    L = music.shape[0]
    C = model.cfg.motion_dim
    gen = torch.Generator(device="cpu").manual_seed(options.seed)
    x = torch.randn(1, L, C, generator=gen).to(device)
    music = music[None].to(device)
    enc = model.encode_music(music)
    beta = torch.full((1,), float(options.beta), device=device)
    known = mask = None
    if constraint is not None:
        known = torch.as_tensor(constraint.values, dtype=torch.float32, device=device)[None]
        mask = torch.as_tensor(constraint.mask, dtype=torch.bool, device=device)[None]
        if known.shape != (1, L, C) or mask.shape != (1, L, C):
            raise ValueError(f"constraint must be ({L}, {C}); got values {tuple(known.shape[1:])}, "
                             f"mask {tuple(mask.shape[1:])}")
    ts = ddim_timesteps(schedule.steps, options.steps)
    for i, t in enumerate(ts):
        if callback is not None and callback(i, len(ts)):
            raise Cancelled(f"cancelled at step {i} of {len(ts)}")
        t_now = torch.full((1,), t, device=device, dtype=torch.long)
        t_prev = torch.full((1,), ts[i + 1] if i + 1 < len(ts) else -1, device=device, dtype=torch.long)
        x0 = model(x, t_now, beta, enc)
        if known is not None:
            x0 = torch.where(mask, known, x0)
        ab, ab_prev = schedule.ab(t_now), schedule.ab(t_prev)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        sigma = options.eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).clamp(min=0).sqrt()
        noise = torch.randn(x.shape, generator=gen).to(device)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps + sigma * noise
        if known is not None:
            # known parts follow the forward process of the known values, so the model sees consistent context
            noised = schedule.q_sample(known, t_prev, torch.randn(known.shape, generator=gen).to(device))
            x = torch.where(mask, noised, x)
    if callback is not None:
        callback(len(ts), len(ts))
    return x[0]
