"""The diffusion process: noise schedule, the guidance-free training objective, and the losses on x0.

Guidance-Free Training (Chen et al. 2025, arXiv 2501.15420): the model f(x_t, t, c, beta) is trained so that
beta * f(x_t, t, c, beta) + (1 - beta) * stopgrad(f(x_t, t, none, 1)) matches the ordinary conditional target;
the condition is dropped (none, beta = 1) for a fraction of samples and beta ~ U(0, 1) otherwise. At sampling time a
single call f(x_t, t, c, beta) is the guided prediction with CFG scale 1/beta - 1 (beta = 1: unguided).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backend.motion.model import Denoiser
from backend.motion.representation import CONTACTS, ROOT, ROT6D
from backend.motion.schedule import Schedule
from rigs import rotations as rot
from rigs.kinematics import joint_positions
from rigs.skeleton import smpl_skeleton


@dataclass
class LossWeights:
    """Weights of EDGE's auxiliary losses beside the plain x0 reconstruction."""

    velocity: float = 1.0
    fk: float = 1.0
    foot: float = 0.5
    rhythm: float = 0.0  # > 0: match the spectrum of the motion's speed envelope (tempo) to the real dance's
    snr_gamma: float = 0.0  # > 1: weight each sample by its signal-to-noise ratio clipped to [1, snr_gamma] (below)


def snr_weights(schedule: Schedule, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B,) loss weights clip(SNR(t), 1, gamma) for steps t; all ones when gamma <= 1.

    A plain x0 loss weighs every noise level alike, so the nearly clean steps, whose errors are small, hardly train:
    the network learns to smooth what little noise is left, and with it a dance's quick small motions (one-step
    estimates of the val cha-cha at t = 100 keep 0.68x its hands' vertical energy, and every sampling step compounds
    that). Min-SNR weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy") weighs
    an x0 loss by min(SNR, gamma); the floor at 1 keeps the noisy steps, which lay out the dance, at today's weight.
    """
    if gamma <= 1:
        return torch.ones(t.shape, dtype=torch.float32, device=t.device)
    ab = schedule.ab(t)
    return (ab / (1 - ab).clamp(min=1e-8)).clamp(1.0, gamma)


def speed_spectrum(joints: torch.Tensor, fps: float = 30.0, band: tuple[float, float] = (0.2, 6.0),
                   n_fft: int = 256) -> torch.Tensor:
    """(B, L, J, 3) joint positions -> (B, F) power spectrum of the mean joint speed in `band`, summing to 1.

    The envelope of metrics.md's tempo lock (mean joint speed, Gaussian-smoothed, mean removed, Hann window; the
    smoothing is one frame wide, 1/30 s at the training rate), so a loss on it rewards motion whose rhythm has the
    real dance's periods, whatever its phase.
    """
    speed = (joints[:, 1:] - joints[:, :-1]).norm(dim=-1).mean(-1)  # (B, L-1)
    k = torch.exp(-0.5 * torch.arange(-3, 4, device=joints.device, dtype=joints.dtype) ** 2)
    speed = F.conv1d(F.pad(speed[:, None], (3, 3), mode="replicate"), (k / k.sum())[None, None])[:, 0]
    speed = speed - speed.mean(-1, keepdim=True)
    win = torch.hann_window(speed.shape[-1], periodic=False, device=joints.device, dtype=joints.dtype)
    power = torch.fft.rfft(speed * win, n=max(n_fft, speed.shape[-1])).abs().pow(2)
    freqs = torch.fft.rfftfreq(max(n_fft, speed.shape[-1]), d=1.0 / fps).to(joints.device)
    power = power[:, (freqs > band[0]) & (freqs < band[1])]
    return power / power.sum(-1, keepdim=True).clamp(min=1e-12)


class MotionLosses:
    """Reconstruction, velocity, joint-position (FK) and foot-skate losses on denormalised x0."""

    def __init__(self, motion_mean: torch.Tensor, motion_std: torch.Tensor, weights: LossWeights):
        self.mean, self.std = motion_mean, motion_std
        self.w = weights
        sk = smpl_skeleton()
        self.offsets = torch.tensor(sk.offsets, dtype=torch.float32)
        self.parents = sk.parents
        self.feet = [sk.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]

    def joints(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, 151) denormalised features -> (B, L, 24, 3) joint positions."""
        B, L, _ = x.shape
        mats = rot.rotation_6d_to_matrix(x[..., ROT6D].reshape(B, L, 24, 6))
        return joint_positions(mats, x[..., ROOT], self.offsets.to(x.device), self.parents)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor,
                 weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The losses of a batch; `weight` (B,) scales each sample's share (mean over the batch either way)."""
        w = torch.ones(pred.shape[0], device=pred.device) if weight is None else weight.to(pred.device)

        def mean(per_element: torch.Tensor) -> torch.Tensor:  # weighted over samples, plain mean within one
            return (per_element.reshape(per_element.shape[0], -1).mean(dim=1) * w).mean()

        simple = mean((pred - target) ** 2)
        vel = mean(((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])) ** 2)
        p = pred * self.std + self.mean
        q = target * self.std + self.mean
        jp, jq = self.joints(p), self.joints(q)
        fk = mean((jp - jq) ** 2)
        # Predicted contacts should mean still feet: penalise foot speed where the model says "contact".
        foot_vel = jp[:, 1:, self.feet] - jp[:, :-1, self.feet]
        contact = p[:, :-1, CONTACTS].clamp(0, 1).detach()
        foot = mean(foot_vel.pow(2).sum(-1) * contact)
        total = simple + self.w.velocity * vel + self.w.fk * fk + self.w.foot * foot
        parts = {"simple": simple.detach(), "vel": vel.detach(), "fk": fk.detach(), "foot": foot.detach()}
        if self.w.rhythm > 0:
            # Hellinger distance between the speed spectra: scale-free, so a quiet passage counts like a lively one
            sp, sq = speed_spectrum(jp), speed_spectrum(jq)
            rhythm = mean(((sp + 1e-8).sqrt() - (sq + 1e-8).sqrt()).pow(2).sum(-1))
            total = total + self.w.rhythm * rhythm
            parts["rhythm"] = rhythm.detach()
        return {"loss": total, **parts}


def gft_prediction(model: Denoiser, x_t: torch.Tensor, t: torch.Tensor, music: torch.Tensor, p_uncond: float,
                   generator: torch.Generator | None = None,
                   style: torch.Tensor | None = None,
                   p_style_alone: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The guidance-free training prediction beta*f(c, beta) + (1-beta)*sg(f(none, 1)); returns it and beta.

    The condition c is the music and, for models with one, the style (B,) indices; "none" drops both.
    `p_style_alone`: share of the conditioned samples whose music is dropped but whose style is kept.
    """
    B = x_t.shape[0]
    dev = x_t.device
    drop = torch.rand(B, generator=generator, device=dev) < p_uncond
    beta = torch.where(drop, torch.ones(B, device=dev), torch.rand(B, generator=generator, device=dev))
    music_drop = drop
    if style is not None:
        style = torch.where(drop, torch.zeros_like(style), style)  # "none" is no music and no style
        if p_style_alone > 0:
            alone = torch.rand(B, generator=generator, device=dev) < p_style_alone
            music_drop = drop | (alone & (style != 0))
    pred_c = model(x_t, t, beta, model.encode_music(music, music_drop, style), style)
    with torch.no_grad():
        everyone = torch.ones(B, dtype=torch.bool, device=dev)
        pred_u = model(x_t, t, torch.ones(B, device=dev), model.encode_music(music, everyone))
    b = beta[:, None, None]
    return b * pred_c + (1 - b) * pred_u, beta
