"""The Motion Expert's denoiser: a BiMamba-Transformer conditioned on music, diffusion time t and beta.

Per block: (i) BiMamba over time, (ii) FiLM from the embedding of (t, beta), (iii) cross-attention from motion to
the BiMamba music encoding, restricted to a window of frames around each motion frame (music and motion share the
30 fps clock, so a dance step only needs the music near it; memory stays linear in song length), (iv) FiLM again,
then an MLP. Pre-norm residual branches. The baseline (`arch="transformer"`) swaps BiMamba for full self-attention
over time, as EDGE does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backend.motion.mamba import BiMamba, MambaConfig
from backend.motion.schedule import Schedule
from backend.motion.smoothing import smooth_in_time

SKIP_SIGMA = 1.0  # frames: the noisy skip's low-pass (about 5 Hz at 30 fps)
MOTION_DIM = 4 + 3 + 24 * 6  # contacts, root translation, 6D rotations (EDGE's layout)
MUSIC_DIM = 35


@dataclass
class DenoiserConfig:
    """Sizes of the denoiser; saved beside the weights as JSON."""

    arch: str = "mamba"  # "mamba" (the ME) or "transformer" (the EDGE-style baseline)
    d_model: int = 128
    n_blocks: int = 4
    n_music_layers: int = 2
    n_heads: int = 4
    d_state: int = 32
    headdim: int = 32
    chunk_size: int = 75  # exact for any value; 75 splits the 150-frame training windows without padding
    attn_window: int = 32  # music frames on each side a motion frame attends to (about 1 s at 30 fps)
    mlp_ratio: int = 2
    dropout: float = 0.1
    motion_dim: int = MOTION_DIM
    music_dim: int = MUSIC_DIM
    rhythm: bool = False  # music inputs carry the dense rhythm columns (backend.music.rhythm) after the 35
    music_skip: bool = False  # the music encoding is also added to the motion stream frame by frame
    n_styles: int = 0  # > 0: a style condition (backend.motion.conditioning.STYLES; index 0 = auto)
    style_film: bool = False  # the style also joins t and beta in every block's FiLM (a global, direct path)
    prediction: str = "x0"  # what the network's last layer says: "x0" (EDGE) or "v" (forward still returns x0)
    noisy_skip: bool = False  # an x0 head also passes on what it missed of the noisy input, gated per noise level

    def mamba(self) -> MambaConfig:
        return MambaConfig(d_model=self.d_model, d_state=self.d_state, headdim=self.headdim,
                           chunk_size=self.chunk_size)

    def to_dict(self) -> dict:
        return asdict(self)


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) scalars -> (B, dim) sinusoidal embedding."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device, dtype=torch.float32) / half)
    args = x.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class FiLM(nn.Module):
    """Feature-wise affine modulation from a conditioning vector; starts as the identity."""

    def __init__(self, d_cond: int, d: int):
        super().__init__()
        self.proj = nn.Linear(d_cond, 2 * d)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(cond)[:, None].chunk(2, dim=-1)
        return x * (1 + scale) + shift


class WindowedCrossAttention(nn.Module):
    """Each query frame attends to key frames within +-window of it (blocked, so memory is O(L * window))."""

    def __init__(self, d: int, n_heads: int, window: int, dropout: float):
        super().__init__()
        self.n_heads, self.window = n_heads, window
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.dropout = dropout
        self._mask: tuple[tuple, torch.Tensor] | None = None
        self._kv: dict[int, tuple] = {}

    def _band(self, L: int, n: int, blk: int, like: torch.Tensor) -> torch.Tensor:
        """(n, 1, blk, 3 blk) additive mask: 0 where query block i's frame may see the frame in blocks i-1..i+1
        (within +-window, inside [0, L)), -inf elsewhere; kept for the next call (every step and block of a
        sampling run asks for the same one)."""
        key = (L, blk, self.window, like.device, like.dtype)
        if self._mask is None or self._mask[0] != key:
            qpos = torch.arange(blk, device=like.device)[:, None] + blk
            kpos = torch.arange(3 * blk, device=like.device)[None]
            key_frame = torch.arange(n, device=like.device)[:, None] * blk + kpos - blk  # (n, 3blk)
            allowed = ((kpos - qpos).abs() <= self.window)[None] & ((key_frame >= 0) & (key_frame < L))[:, None]
            mask = torch.zeros(allowed.shape, dtype=like.dtype, device=like.device).masked_fill_(~allowed, -math.inf)
            self._mask = (key, mask[:, None])
        return self._mask[1]

    def _keys(self, ctx: torch.Tensor, blk: int, pad: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of `ctx` as (B, n + 2, H, blk, dh); without gradients, kept for the next calls on the same
        tensor (a sampling run's music encodings, at most two, are the same tensors at every step) until
        forget_music()."""
        key = (ctx._version, blk, self.kv.weight._version)
        held = self._kv.get(id(ctx))
        if held is not None and held[0] is ctx and held[1] == key:
            return held[2]
        B, _, D = ctx.shape
        H = self.n_heads
        kv = tuple(F.pad(t, (0, 0, blk, blk + pad)).view(B, n + 2, blk, H, D // H).transpose(2, 3).contiguous()
                   for t in self.kv(ctx).chunk(2, dim=-1))
        if not torch.is_grad_enabled():
            if len(self._kv) >= 2:
                self._kv.clear()
            self._kv[id(ctx)] = (ctx, key, kv)  # the tensor itself is held, so its id cannot be reused meanwhile
        return kv

    def forget_music(self) -> None:
        """Drop the kept keys and values (and the tensors they came from) and the band mask (28 MB for 10 min)."""
        self._kv.clear()
        self._mask = None

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D) queries; ctx: (B, L, D) keys/values on the same time axis."""
        B, L, D = x.shape
        H, blk = self.n_heads, max(self.window, 1)
        dh = D // H
        pad = (-L) % blk
        n = (L + pad) // blk
        # (B, n, H, blk, dh) queries; keys and values padded by a block each side, (B, n + 2, H, blk, dh), so the
        # three blocks query block i sees are the slices [i, i + n) shifted by 0, 1, 2 (views, no gather)
        q = F.pad(self.q(x), (0, 0, 0, pad)).view(B, n, blk, H, dh).transpose(2, 3) * dh ** -0.5
        k, v = self._keys(ctx, blk, pad, n)
        scores = torch.cat([q @ k[:, j:j + n].transpose(-1, -2) for j in range(3)], dim=-1)  # (B, n, H, blk, 3blk)
        weights = torch.softmax(scores + self._band(L, n, blk, scores), dim=-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = sum(weights[..., j * blk:(j + 1) * blk] @ v[:, j:j + n] for j in range(3))  # (B, n, H, blk, dh)
        out = out.transpose(2, 3).reshape(B, n * blk, D)[:, :L]
        return self.out(out)


class SelfAttention(nn.Module):
    """Full self-attention over time (the baseline's temporal mixer)."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, n_heads, dropout=dropout, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


class DenoiserBlock(nn.Module):
    """BiMamba (or self-attention) -> FiLM -> windowed cross-attention to music -> FiLM -> MLP."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d)
        self.mixer = BiMamba(cfg.mamba()) if cfg.arch == "mamba" else SelfAttention(d, cfg.n_heads, cfg.dropout)
        self.film1 = FiLM(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.cross = WindowedCrossAttention(d, cfg.n_heads, cfg.attn_window, cfg.dropout)
        self.film2 = FiLM(d, d)
        self.norm3 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.mlp_ratio * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, music: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.mixer(self.norm1(x)))
        x = self.film1(x, cond)
        x = x + self.drop(self.cross(self.norm2(x), music))
        x = self.film2(x, cond)
        return x + self.drop(self.mlp(self.norm3(x)))


class MusicEncoder(nn.Module):
    """Librosa features -> a stack of BiMamba layers (self-attention for the baseline)."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        d = cfg.d_model
        self.inp = nn.Linear(cfg.music_dim, d)
        mk = (lambda: BiMamba(cfg.mamba())) if cfg.arch == "mamba" else (lambda: SelfAttention(d, cfg.n_heads, cfg.dropout))
        self.layers = nn.ModuleList(mk() for _ in range(cfg.n_music_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(cfg.n_music_layers))
        self.null = nn.Parameter(torch.zeros(d))  # the "no music" condition of guidance-free training
        # style 0 is "auto" (no style asked for); the style enters before the BiMamba layers so the whole encoding
        # is read in its light
        self.style = nn.Embedding(cfg.n_styles + 1, d) if cfg.n_styles else None

    def forward(self, music: torch.Tensor, drop: torch.Tensor | None = None,
                style: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L, music_dim) -> (B, L, D); rows where `drop` is True get the learned null condition.

        `style`: (B,) style indices (0 = auto), for models with a style condition.
        """
        if self.style is not None and style is None:
            style = torch.zeros(music.shape[0], dtype=torch.long, device=music.device)
        asked = None if self.style is None else (style != 0)
        if drop is not None and bool(drop.all()) and (asked is None or not bool(asked.any())):
            return self.null.expand(music.shape[0], music.shape[1], -1)  # nothing to encode: skip the layers
        h = self.inp(music)
        if self.style is not None:
            h = h + self.style(style)[:, None]
        for norm, layer in zip(self.norms, self.layers):
            h = h + layer(norm(h))
        if drop is not None:
            null = self.null.expand_as(h)
            if asked is not None:
                # a dropped song keeps an asked-for style: "this style, any music" is a condition of its own, and
                # training on it teaches the style embedding to carry the style without the song's help
                null = null + (self.style(style) * asked[:, None].to(h.dtype))[:, None]
            h = torch.where(drop[:, None, None], null, h)
        return h


class Denoiser(nn.Module):
    """Predicts the clean motion x0 from noisy motion x_t, music, diffusion step t and diversity beta (its last layer
    says x0 or v, per `cfg.prediction`; forward returns x0 either way)."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        if cfg.arch not in ("mamba", "transformer"):
            raise ValueError(f"unknown arch {cfg.arch!r} (mamba or transformer)")
        if cfg.prediction not in ("x0", "v"):
            raise ValueError(f"unknown prediction {cfg.prediction!r} (x0 or v)")
        if cfg.noisy_skip and cfg.prediction != "x0":
            raise ValueError("the noisy skip is for an x0 head (a v head passes the noisy input on by itself)")
        self.cfg = cfg
        d = cfg.d_model
        self.music = MusicEncoder(cfg)
        self.inp = nn.Linear(cfg.motion_dim, d)
        self.cond = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(DenoiserBlock(cfg) for _ in range(cfg.n_blocks))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.motion_dim)
        # Gate of the noisy skip, from (t, beta): zero at first, so a fine-tune starts from the source model exactly
        self.skip = nn.Linear(d, cfg.motion_dim) if cfg.noisy_skip else None
        if self.skip is not None:
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)
        # not saved: the schedule is fixed, and model folders from before v-prediction must load unchanged
        self.register_buffer("alphas_cumprod", Schedule().alphas_cumprod, persistent=False)
        # a frame-aligned path from the music to the motion stream: the beat under a frame reaches that frame
        # without having to be found by attention first
        self.music_in = nn.Linear(d, d) if cfg.music_skip else None
        # through the music encoder alone a style is one more input beside a song that already implies one, and a
        # fine-tune barely used it (val: the asked style recognised in 19-25 % of dances, its embedding's norm 0.03);
        # in FiLM it modulates every block, as class labels do in diffusion transformers
        self.style_film = nn.Embedding(cfg.n_styles + 1, d) if cfg.n_styles and cfg.style_film else None
        if cfg.arch == "transformer":
            self.pos = PositionalEncoding(d)

    def encode_music(self, music: torch.Tensor, drop: torch.Tensor | None = None,
                     style: torch.Tensor | None = None) -> torch.Tensor:
        """Music encoding (with the style, for models that have one), computed once per sampling run."""
        return self.music(music, drop, style)

    def forget_music(self) -> None:
        """Let go of what the blocks kept of the last sampling run's music encodings (memory after a long song)."""
        for block in self.blocks:
            block.cross.forget_music()

    def forward(self, x: torch.Tensor, t: torch.Tensor, beta: torch.Tensor, music_enc: torch.Tensor,
                style: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, motion_dim) noisy motion; t: (B,) steps; beta: (B,) in [0, 1]; music_enc: (B, L, D);
        style: (B,) style indices (0 or None = auto) for models whose style joins the FiLM conditioning."""
        d = self.cfg.d_model
        cond = self.cond(torch.cat([sinusoidal(t, d), sinusoidal(beta * 1000.0, d)], dim=-1))
        if self.style_film is not None and style is not None:
            cond = cond + self.style_film(style)
        h = self.inp(x)
        if self.music_in is not None:
            h = h + self.music_in(music_enc)
        if self.cfg.arch == "transformer":
            h = self.pos(h)
            music_enc = self.pos(music_enc)
        for block in self.blocks:
            h = block(h, music_enc, cond)
        out = self.out(self.norm(h))
        if self.cfg.prediction == "x0" and self.skip is None:
            return out
        ab = self.alphas_cumprod.to(x.device)[t.clamp(min=0)].to(x.dtype)[:, None, None]
        if self.cfg.prediction == "v":
            # v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022), so x0 = sqrt(ab) x_t - sqrt(1 - ab) v: the
            # noisy input reaches the output directly, scaled by how much signal it holds. An x0 head has to redraw
            # every frame through the d_model-wide stream and smooths what it cannot redraw (given a clean val
            # cha-cha at t = 0 it kept 0.66x its hands' vertical energy); here a nearly clean input comes back intact.
            return ab.sqrt() * x - (1 - ab).sqrt() * out
        # x_t - sqrt(ab) x0_hat = sqrt(ab) (x0 - x0_hat) + sqrt(1 - ab) eps: the detail the head missed, plus
        # noise. A learned gain per channel and noise level adds back as much of it as pays (a Wiener gain: near
        # 1 where the input is nearly clean, near 0 where it is mostly noise), EDM's c_skip learned per channel.
        # The missed part is low-passed in time first (Gaussian, SKIP_SIGMA frames): dancers move below ~5 Hz, so
        # faster wiggles in it are noise, and a gate fed them passes them on; every step keeps what the last passed
        # and the dance comes out shaking (unfiltered: rms joint acceleration 5-20x the real dances').
        out = out + self.skip(cond)[:, None, :] * smooth_in_time(x - ab.sqrt() * out, SKIP_SIGMA)
        return out


class PositionalEncoding(nn.Module):
    """Sinusoidal positions for the attention-only baseline (Mamba needs none)."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device)
        return x + sinusoidal(pos, self.d)[None].to(x.dtype)

