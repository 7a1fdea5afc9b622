"""The sampler's arithmetic: the network's matrix products in bfloat16 on CPUs that do them natively, float32 elsewhere.

Why: on this project's 2-core AMD EPYC (avx512_bf16) one pass of the shipped ME over a 60-s song takes 277 ms in
float32 on one thread and 173 ms under bf16 autocast (128 / 107 ms on two threads), and the relative error of its
output is 1 %. On the val songs (4 seed sets) and the test songs the quality table stays within its seed noise
(weights/me/README.md). Under CPU autocast most of a pass runs in bf16 (its products, norms, softmax and residual
sums; the Mamba decays stay float32, promoted by their float32 bias), its output is rounded to bf16 and taken back to
float32, and the sampler's own arithmetic between passes stays float32. An edit's reconstruction guidance, which
differentiates through the passes, stays float32 throughout (sampling.py). A CPU without native bf16 emulates it,
slower than float32, so it is only chosen where the CPU reports avx512_bf16 or amx_bf16.
`MACE_DANCE_PRECISION=fp32|bf16` overrides the choice.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import torch

ENV = "MACE_DANCE_PRECISION"
NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of x86 CPUs with bf16 dot products in hardware

log = logging.getLogger(__name__)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (and torch's oneDNN can use them)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:  # not Linux: float32, the safe choice
        return False
    if not any(f in flags for f in NATIVE_FLAGS):
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def sampler_dtype(device: torch.device | str) -> torch.dtype | None:
    """torch.bfloat16 when the network's passes run under bf16 autocast on `device`, None for float32."""
    if torch.device(device).type != "cpu":
        return None  # GPUs: float32 as trained (a GPU's pass is fast already)
    choice = os.environ.get(ENV, "auto").strip().lower()
    if choice in ("fp32", "float32"):
        return None
    if choice in ("bf16", "bfloat16"):
        return torch.bfloat16
    if choice != "auto":
        _warn_once(choice)
    return torch.bfloat16 if native_bf16() else None


@functools.cache
def _warn_once(choice: str) -> None:
    log.warning("%s=%r is not auto, bf16 or fp32: using auto", ENV, choice)


def network_pass(dtype: torch.dtype | None):
    """The context a network pass runs in: bf16 autocast on the CPU for `dtype` bf16, nothing for None."""
    return torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
