"""Beat guidance: the sampler nudges its clean estimate so the dance's rhythm sits on the song's beats.

The denoiser alone does not follow its song's tempo (metrics.md section 10: tempo lock own/other 0.97-1.28x for the
shipped weights, against 1.86x for real dancers), and training signals tried so far did not change that (weights/me/
README.md). So at every DDIM step the clean estimate x0 is moved up the gradient of a rhythm score, in the manner of
classifier guidance on x0 (no backward pass through the network; only forward kinematics):

    score = share of the speed envelope's variance at the local beat period (1/2, 1 and 2 beats, any phase)
            + PHASE_WEIGHT * (how much the speed dips on the beats)

where the beat period and phase follow the tracked beats frame by frame (a song that speeds up is followed). The step
is scaled by the noise level, so the last, clean steps are left to the model. Unlike beat sync, which retimes a
finished dance, this shapes the dance as it is sampled: the movement is the model's, its timing is the song's.
"""

from __future__ import annotations

import numpy as np
import torch

from backend.motion.diffusion import LossWeights, MotionLosses
from backend.motion.representation import Normalizer

DEFAULT_BEAT_GUIDANCE = 8.0  # test songs: BAS own/other 0.99x -> 2.36x, tempo lock 1.03x -> 1.21x (weights/me/README)
PHASE_WEIGHT = 2.0
STEP = 0.01  # x0 moves by weight * STEP * sqrt(1 - alpha_bar) times the gradient's RMS-normalised direction
MULTIPLES = (0.5, 1.0, 2.0)


def beat_phase(beat_frames: np.ndarray, length: int) -> np.ndarray | None:
    """(length,) beat count at each frame (0 on the first beat, 1 on the next, ...), the grid continued past the
    first and last beats at the median period; None with fewer than 4 beats."""
    b = np.unique(np.asarray(beat_frames, dtype=np.float64))
    if len(b) < 4:
        return None
    period = float(np.median(np.diff(b)))
    before = b[0] - period * np.arange(int(b[0] / period) + 2, 0, -1)
    after = b[-1] + period * np.arange(1, int(max(0.0, length - b[-1]) / period) + 3)
    grid = np.concatenate([before, b, after])
    return np.interp(np.arange(length), grid, np.arange(len(grid), dtype=np.float64) - len(before))


class BeatGuide:
    """The rhythm score of normalised x0 (1, L, 151) for one song's beats."""

    def __init__(self, normalizer: Normalizer, beat_frames: np.ndarray, length: int):
        self.fk = MotionLosses(torch.tensor(normalizer.motion_mean), torch.tensor(normalizer.motion_std),
                               LossWeights())
        phase = beat_phase(beat_frames, length)
        self.length = length
        self.basis = None
        if phase is not None:
            cols = [f(2 * np.pi * m * phase) for m in MULTIPLES for f in (np.cos, np.sin)]
            self.basis = torch.tensor(np.stack(cols, axis=1)[1:], dtype=torch.float32)  # speed frames 1..L-1

    @property
    def active(self) -> bool:
        """Whether the song has enough beats to guide by."""
        return self.basis is not None and self.length >= 8

    def score(self, x0: torch.Tensor) -> torch.Tensor:
        """Rhythm score (higher: more of the motion's speed at the beat periods, dipping on the beats)."""
        x = x0[:, :self.length]
        joints = self.fk.joints(x * self.fk.std.to(x.device) + self.fk.mean.to(x.device))[0]
        speed = (joints[1:] - joints[:-1]).norm(dim=-1).mean(-1)
        speed = speed - speed.mean()
        basis = self.basis.to(x.device)
        proj = (basis * speed[:, None]).sum(0) * (2.0 / len(speed))
        power = speed.pow(2).mean() + 1e-8
        share = (proj ** 2).sum() / 2 / power
        on_beat = -proj[2] / power.sqrt()  # the 1-beat cosine is +1 on the beats: speed below its mean there
        return share + PHASE_WEIGHT * on_beat

    def nudge(self, x0: torch.Tensor, weight: float, noise: torch.Tensor,
              free: torch.Tensor | None = None) -> torch.Tensor:
        """x0 moved up the score's gradient by `weight` (scaled by the noise level sqrt(1 - alpha_bar)); with `free`
        (bool, broadcastable to x0) only there, so kept values that are put back anyway do not dilute the step."""
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.score(x), x)
        if free is not None:
            grad = grad * free
        direction = grad / (grad.pow(2).mean().sqrt() + 1e-8)
        return x0 + weight * STEP * noise * direction
