"""Beat guidance: the sampler nudges its clean estimate so the dance's rhythm sits on the song's beats.

The denoiser alone does not follow its song's tempo (metrics.md section 10: tempo lock own/other 0.97-1.28x for the
shipped weights, against 1.86x for real dancers), and training signals tried so far did not change that (weights/me/
README.md). So at every DDIM step the clean estimate x0 is moved up the gradient of a rhythm score, in the manner of
classifier guidance on x0 (no backward pass through the network; only forward kinematics):

    score = share of the speed envelope's variance in cycles of 2 and 3 beats (the step and the bar of triple time)
            + PHASE_WEIGHT * (how squarely those cycles dip on beats, whichever beat)

where the beat period and phase follow the tracked beats frame by frame (a song that speeds up is followed). The step
is scaled by the noise level, so the last, clean steps are left to the model. Unlike beat sync, which retimes a
finished dance, this shapes the dance as it is sampled: the movement is the model's, its timing is the song's.
"""

from __future__ import annotations

import numpy as np
import torch

from backend.motion.conditioning import STYLES, style_index
from backend.motion.diffusion import LossWeights, MotionLosses
from backend.motion.representation import Normalizer
from backend.motion.smoothing import smooth_in_time
from backend.music.meter import triple_time
from bridge.request import default_of

DEFAULT_BEAT_GUIDANCE = default_of("beat_guidance")  # test songs, as shipped, raw: tempo lock own/other 2.27x, BAS 1.20x (weights/me/README)
# val songs, with the meter, phase weight 1 / 2 / 4: own-song BAS 0.242 / 0.248 / 0.252, tempo lock own/other 4.6x /
# 4.4x / 5.0x, FID_k 92.1 / 92.5 / 92.9
PHASE_WEIGHT = 4.0
STEP = 0.01  # x0 moves by weight * STEP * sqrt(1 - alpha_bar) times the gradient's RMS-normalised direction
# Cycles per beat the speed is pulled into: the two-beat step cycle and the three-beat bar of triple time. Real dancers
# put their rhythm there, not on every beat (share of the speed envelope's power at 1/3, 1/2, 1 and 2 cycles per beat:
# test waltzes 0.27-0.40 / 0.01-0.04 / 0.01-0.02 / 0.00; cha-cha and rumba 0.01-0.03 / 0.14-0.24 / 0.01-0.02 / 0.00).
# A per-beat pull (1, with 1/2 and 2, until 2026-12-01) made every dance bob on each beat, so a waltz scored as well
# against a song at twice its tempo as against its own.
MULTIPLES = (1 / 3, 1 / 2)
# frames: the nudge is blurred in time before it is taken. The score's gradient flips sign from frame to frame (a
# joint's speed pulls its positions on both sides of a step apart), and taken raw it left the dances shaking: val songs,
# median joint acceleration 6.4 -> 10.7 m/s^2 with the guidance on (real dances 1.5-3.4). The cycles it shapes last
# one to three beats (15-45 frames at 120 bpm), far slower than this blur.
NUDGE_SIGMA = 2.0


def on_beat_dips(proj: torch.Tensor, weights: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """How squarely the 2- and 3-beat cycles of `proj` (cos, sin per MULTIPLES entry) put their dips on beats.

    A cycle a cos(w) + b sin(w) = A cos(w - th) dips on a beat, whichever beat, when cos(2 th) = 1 for two beats
    (its peak is then on a beat as well) and cos(3 th) = -1 for three; weighted by the cycle's power A^2. No beat is
    singled out as the first: the music's downbeat is not known. `weights` (three-beat, two-beat) as in BeatGuide.
    """
    a2, b2, a3, b3 = proj[2], proj[3], proj[0], proj[1]
    half = a2 ** 2 - b2 ** 2  # A^2 cos(2 th)
    third = -(a3 ** 3 - 3 * a3 * b3 ** 2) / (a3 ** 2 + b3 ** 2 + 1e-12).sqrt()  # -A^2 cos(3 th)
    return weights[1] * half + weights[0] * third


def triple_weight(style: str | None, music) -> float:
    """How much the guidance pulls into three-beat bars: an asked style's own meter (a waltz in three, cha-cha, rumba
    and tango in two), else the music's (backend.music.meter). A cha-cha asked on a waltz song moves in twos: pulled
    into the song's bars it read as a rumba (test songs: cha-cha recognised 10 of 18, 8 as rumba)."""
    index = style_index(style, len(STYLES) - 1)
    if index:
        return 1.0 if STYLES[index] == "waltz" else 0.0
    return triple_time(music)


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

    def __init__(self, normalizer: Normalizer, beat_frames: np.ndarray, length: int, triple: float = 0.5):
        """`triple` (0..1): how sure the song is in triple time (backend.music.meter); it shares the pull between the
        three-beat bar and the two-beat step cycle (0.5: both alike, as when the meter is unknown)."""
        self.fk = MotionLosses(torch.tensor(normalizer.motion_mean), torch.tensor(normalizer.motion_std),
                               LossWeights())
        phase = beat_phase(beat_frames, length)
        self.length = length
        triple = float(np.clip(triple, 0.0, 1.0)) if np.isfinite(triple) else 0.5
        self.weights = (2.0 * triple, 2.0 * (1.0 - triple))  # (three-beat, two-beat); unsure (0.5) weighs both 1
        self.basis = None
        if phase is not None:
            cols = [f(2 * np.pi * m * phase) for m in MULTIPLES for f in (np.cos, np.sin)]
            self.basis = torch.tensor(np.stack(cols, axis=1)[1:], dtype=torch.float32)  # speed frames 1..L-1

    @property
    def active(self) -> bool:
        """Whether the song has enough beats to guide by."""
        return self.basis is not None and self.length >= 8

    def score(self, x0: torch.Tensor) -> torch.Tensor:
        """Rhythm score (higher: more of the motion's speed in 2- and 3-beat cycles whose dips fall on beats)."""
        x = x0[:, :self.length]
        joints = self.fk.joints(x * self.fk.std.to(x.device) + self.fk.mean.to(x.device))[0]
        speed = (joints[1:] - joints[:-1]).norm(dim=-1).mean(-1)
        speed = speed - speed.mean()
        basis = self.basis.to(x.device)
        proj = (basis * speed[:, None]).sum(0) * (2.0 / len(speed))
        power = speed.pow(2).mean() + 1e-8
        w3, w2 = self.weights
        share = (w3 * (proj[0] ** 2 + proj[1] ** 2) + w2 * (proj[2] ** 2 + proj[3] ** 2)) / 2 / power
        return share + PHASE_WEIGHT * on_beat_dips(proj, self.weights) / power

    def nudge(self, x0: torch.Tensor, weight: float, noise: torch.Tensor,
              free: torch.Tensor | None = None) -> torch.Tensor:
        """x0 moved up the score's gradient by `weight` (scaled by the noise level sqrt(1 - alpha_bar)); with `free`
        (bool, broadcastable to x0) only there, so kept values that are put back anyway do not dilute the step."""
        with torch.enable_grad():
            x = x0.detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.score(x), x)
        grad = smooth_in_time(grad, NUDGE_SIGMA)
        if free is not None:
            grad = grad * free
        direction = grad / (grad.pow(2).mean().sqrt() + 1e-8)
        return x0 + weight * STEP * noise * direction
