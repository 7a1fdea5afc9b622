"""Mamba-2 (state-space duality) in pure PyTorch, with the parameter names of `mamba_ssm.Mamba2`.

The CPU path computes the selective scan in Mamba-2's chunked matrix form (Dao & Gu 2024, "ssd_minimal"): inside a
chunk the scan is a masked matrix product, between chunks a short recurrence over chunk states. That turns the scan's
memory traffic into matrix multiplications, which is what a CPU is good at; no Python loop runs over frames.
When the input is on a CUDA device and `mamba_ssm` is installed (the optional `gpu` extra), the scan runs in its fused
Triton kernel (`mamba_chunk_scan_combined`) instead; the projections, convolution and gated norm stay the same torch
modules, so the parameters are the same tensors under the same names and one checkpoint loads either way.
MACE_DANCE_MAMBA_KERNEL=0 forces the PyTorch scan (for comparisons).

Shapes: B batch, L length, D model width, H heads, P head dim, N state size, G groups (1 here).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _load_kernel():
    """mamba_ssm's fused chunked scan, or None where it is not installed (it needs CUDA to even install)."""
    if os.environ.get("MACE_DANCE_MAMBA_KERNEL", "1") == "0":
        return None
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # noqa: BLE001 - ImportError, or triton failing to initialise without a GPU
        return None
    return mamba_chunk_scan_combined


SCAN_KERNEL = _load_kernel()


def kernel_scan_used(u: torch.Tensor) -> bool:
    """Whether Mamba2.forward on `u` runs mamba_ssm's kernel."""
    return SCAN_KERNEL is not None and u.is_cuda


@dataclass
class MambaConfig:
    """Sizes of one Mamba-2 mixer."""

    d_model: int
    d_state: int = 32
    d_conv: int = 4
    expand: int = 2
    headdim: int = 32
    chunk_size: int = 64

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim


class RMSNormGated(nn.Module):
    """RMSNorm of y * silu(z), as mamba_ssm's gated norm with norm_before_gate=False."""

    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        y = y * F.silu(z)
        return y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


EXP_FLOOR = -80.0  # exp(-80) = 1.8e-35: still a normal float32, and as good as zero beside the decays that matter


def _segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): out[i, j] = sum_{k=j+1..i} x[k] for j <= i, -inf above the diagonal."""
    T = x.size(-1)
    cs = torch.cumsum(x, dim=-1)
    out = cs[..., :, None] - cs[..., None, :]
    mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    return out.masked_fill(~mask, -math.inf)


def ssd_chunked(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, chunk: int) -> torch.Tensor:
    """Selective scan h_t = exp(a_t) h_{t-1} + x_t b_t^T, y_t = h_t c_t, in chunked matrix form.

    x: (B, L, H, P) inputs already multiplied by dt; a: (B, L, H) log decays (dt * A, negative);
    b, c: (B, L, N), shared by all heads (one group). Returns y: (B, L, H, P). L is padded to a multiple of `chunk`.
    """
    Bsz, L, H, P = x.shape
    pad = (-L) % chunk
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        a = F.pad(a, (0, 0, 0, pad))
        b = F.pad(b, (0, 0, 0, pad))
        c = F.pad(c, (0, 0, 0, pad))
    n_chunks = x.shape[1] // chunk
    # head-major layout (B, H, C, l, ...) throughout: every product below is a batched matmul, no einsum copies
    x = x.reshape(Bsz, n_chunks, chunk, H, P).permute(0, 3, 1, 2, 4)  # (B, H, C, l, P)
    b = b.reshape(Bsz, 1, n_chunks, chunk, -1)  # (B, 1, C, l, N): shared by the heads
    c = c.reshape(Bsz, 1, n_chunks, chunk, -1)
    a = a.reshape(Bsz, n_chunks, chunk, H).permute(0, 3, 1, 2)  # (B, H, C, l)
    a_cum = torch.cumsum(a, dim=-1)
    upper = torch.ones(chunk, chunk, dtype=torch.bool, device=a.device).triu(1)
    # 1-2. a few chunks at a time (SCAN_BLOCK): a long song's (l x s) tables for all its chunks at once (43 MB a
    # call for 10 min) left the cache on every pass over them. With the carry below, a 10-min dance's 6 steps
    # sample in 7.8-10.1 s, not 11.7-14.8 (2 threads, idle); a minute's are as before, to the bit
    parts = [slice(lo, lo + SCAN_BLOCK) for lo in range(0, n_chunks, SCAN_BLOCK)]
    within, finals = zip(*(_within_chunks(x[:, :, p], a_cum[:, :, p], b[:, :, p], c[:, :, p], upper) for p in parts))
    # 3. carry states across chunks: the state entering each chunk
    states = _carry(torch.cat(finals, dim=2), a_cum[..., -1])
    # 4. contribution of the carried state to each position, laid out as (B, C, l, H, P)
    y = torch.cat([(y_p + (c[:, :, p] @ states[:, :, p].transpose(-1, -2)) * torch.exp(a_cum[:, :, p])[..., None])
                   .permute(0, 2, 3, 1, 4) for p, y_p in zip(parts, within)], dim=1)
    return y.reshape(Bsz, n_chunks * chunk, H, P)[:, :L]


SCAN_BLOCK = 8  # chunks whose within-chunk tables are made together (8 x 75 x 75 per head: in a core's cache)


def _within_chunks(x: torch.Tensor, a_cum: torch.Tensor, b: torch.Tensor, c: torch.Tensor, upper: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(each position's output from its own chunk's inputs (B, H, C, l, P), each chunk's final state (B, H, C, P, N))
    for chunks of x (B, H, C, l, P), cumulative log decays a_cum (B, H, C, l), b and c (B, 1, C, l, N)."""
    # y = (C B^T * decay) x; decay[l, s] = exp(a_cum[l] - a_cum[s]) for s <= l, else 0
    # (never exp of a positive difference: it could overflow, and inf * 0 in the backward pass would be NaN)
    # Clamped into [EXP_FLOOR, 0] first: CPU exp takes a slow path below about -88 and at -inf (6-50x), and a
    # decay under e^-80 is zero to float32 anyway. Above the diagonal (positive there) it is 1, and the zeros come
    # from C B^T, masked there (a head-count smaller than the decay).
    decay = torch.exp((a_cum[..., :, None] - a_cum[..., None, :]).clamp_(EXP_FLOOR, 0.0))  # (B, H, C, l, s)
    scores = (c @ b.transpose(-1, -2)).masked_fill_(upper, 0.0) * decay
    y = scores @ x  # (B, H, C, l, P)
    # each chunk's final state, from its own inputs: sum_l decay_to_end[l] x[l] b[l]^T -> (B, H, C, P, N)
    decay_states = torch.exp(a_cum[..., -1:] - a_cum)  # (B, H, C, l)
    return y, (x * decay_states[..., None]).transpose(-1, -2) @ b


CARRY_LOOP_ABOVE = 32  # chunks: beyond this the carry runs as a recurrence, not as a (C+1) x (C+1) product


def _carry(states: torch.Tensor, a_end: torch.Tensor) -> torch.Tensor:
    """(B, H, C, P, N) states entering each chunk, from each chunk's own final state `states` and its total log
    decay `a_end` (B, H, C): entering[0] = 0, entering[c] = exp(a_end[c-1]) entering[c-1] + states[c-1].

    A few chunks (training clips, a minute's 24) take the matrix form, one product; a long song's take the
    recurrence: the matrix is quadratic in the chunk count (a 10-min dance has 240 chunks, and 48 scans).
    """
    n = states.shape[2]
    if n <= CARRY_LOOP_ABOVE:
        padded = torch.cat([torch.zeros_like(states[:, :, :1]), states], dim=2)  # (B, H, C+1, P, N)
        chunk_decay = torch.exp(_segsum(F.pad(a_end, (1, 0))))  # (B, H, C+1, C+1)
        return (chunk_decay @ padded.flatten(-2)).reshape(padded.shape)[:, :, :-1]
    decay = torch.exp(a_end)[..., None, None]  # (B, H, C, 1, 1)
    entering = [torch.zeros_like(states[:, :, 0])]
    for k in range(n - 1):
        entering.append(torch.addcmul(states[:, :, k], entering[-1], decay[:, :, k]))
    return torch.stack(entering, dim=2)


def ssd_reference(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The same scan as a plain loop over time: slow, obviously right, kept for the equivalence test."""
    Bsz, L, H, P = x.shape
    h = x.new_zeros(Bsz, H, P, b.shape[-1])  # b, c: (B, L, N)
    ys = []
    for t in range(L):
        h = torch.exp(a[:, t])[:, :, None, None] * h + x[:, t, :, :, None] * b[:, t, None, None, :]
        ys.append(torch.einsum("bhpn,bn->bhp", h, c[:, t]))
    return torch.stack(ys, dim=1)


class Mamba2(nn.Module):
    """One Mamba-2 mixer over (B, L, D) sequences; parameter names match mamba_ssm.Mamba2 (ngroups = 1)."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        d_in, n, h = cfg.d_inner, cfg.d_state, cfg.nheads
        if d_in % cfg.headdim:
            raise ValueError(f"d_inner {d_in} must be a multiple of headdim {cfg.headdim}")
        conv_dim = d_in + 2 * n
        self.in_proj = nn.Linear(cfg.d_model, 2 * d_in + 2 * n + h, bias=False)  # [z, x, B, C, dt]
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, cfg.d_conv, groups=conv_dim, padding=cfg.d_conv - 1)
        # dt initialised log-uniformly in [1e-3, 1e-1] through the inverse softplus, as mamba_ssm does
        dt = torch.exp(torch.rand(h) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(h).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(h))
        self.norm = RMSNormGated(d_in)
        self.out_proj = nn.Linear(d_in, cfg.d_model, bias=False)

    def _causal_conv(self, xbc: torch.Tensor) -> torch.Tensor:
        """conv1d's causal depthwise convolution of (B, L, C) as d_conv shifted multiply-adds in the (B, L, C) layout
        (the same sums; on CPU 3-4x faster than the convolution kernel and its two transposes)."""
        K, L = self.cfg.d_conv, xbc.shape[1]
        padded = F.pad(xbc, (0, 0, K - 1, 0))
        w = self.conv1d.weight[:, 0]  # (C, K): out[t] = bias + sum_k w[:, k] x[t + k - (K - 1)]
        out = torch.addcmul(self.conv1d.bias, padded[:, :L], w[:, 0])
        for k in range(1, K):
            out = torch.addcmul(out, padded[:, k:k + L], w[:, k])
        return out

    def forward(self, u: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); `reference` runs the loop scan instead of the chunked one."""
        cfg = self.cfg
        Bsz, L, _ = u.shape
        d_in, n, h, p = cfg.d_inner, cfg.d_state, cfg.nheads, cfg.headdim
        zxbcdt = self.in_proj(u)
        z, xbc, dt = torch.split(zxbcdt, [d_in, d_in + 2 * n, h], dim=-1)
        xbc = F.silu(self._causal_conv(xbc))
        x, b, c = torch.split(xbc, [d_in, n, n], dim=-1)
        A = -torch.exp(self.A_log.float())
        x = x.reshape(Bsz, L, h, p)
        if not reference and kernel_scan_used(u):
            # the kernel adds dt_bias, applies softplus, scales x by dt and adds D x itself; B and C get a group axis
            y = SCAN_KERNEL(x, dt, A, b[:, :, None, :], c[:, :, None, :], cfg.chunk_size, D=self.D,
                            dt_bias=self.dt_bias, dt_softplus=True)
        else:
            dt = F.softplus(dt + self.dt_bias)  # (B, L, H)
            xdt, adt = x * dt[..., None], dt * A
            y = ssd_reference(xdt, adt, b, c) if reference else ssd_chunked(xdt, adt, b, c, cfg.chunk_size)
            y = y + x * self.D[:, None]
        y = self.norm(y.reshape(Bsz, L, d_in), z)
        return self.out_proj(y)


class BiMamba(nn.Module):
    """Bidirectional Mamba: one mixer over time, one over reversed time, outputs summed (non-causal context)."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.fwd = Mamba2(cfg)
        self.bwd = Mamba2(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D)."""
        return self.fwd(x) + self.bwd(x.flip(1)).flip(1)
