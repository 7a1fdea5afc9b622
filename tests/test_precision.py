"""The sampler's precision: bf16 autocast on CPUs with native bf16, float32 elsewhere or when asked, and a bf16
dance that stays the float32 one's to within a few per cent, the same for the same seed."""

import logging
from pathlib import Path

import pytest
import torch

from backend.motion import precision
from backend.motion.model import Denoiser, DenoiserConfig
from backend.motion.sampling import Constraint, SampleOptions, sample

TINY = DenoiserConfig(d_model=32, n_blocks=2, n_music_layers=1, n_heads=2, d_state=8, headdim=16, chunk_size=16,
                      attn_window=4, dropout=0.0)


@pytest.fixture
def cpu_flags(monkeypatch):
    """Pretend /proc/cpuinfo lists the given flags (native_bf16's cache cleared around the test)."""
    def use(flags: str) -> None:
        precision.native_bf16.cache_clear()
        monkeypatch.setattr(Path, "read_text", lambda self, **kw: f"processor : 0\nflags : {flags}\n")
    yield use
    precision.native_bf16.cache_clear()


def test_bf16_only_where_the_cpu_has_it_or_where_asked(cpu_flags, monkeypatch, caplog):
    monkeypatch.delenv(precision.ENV, raising=False)
    cpu_flags("fpu sse2 avx2 avx512f avx512bw")  # AVX-512 without bf16 dot products: emulated, slower than float32
    assert not precision.native_bf16() and precision.sampler_dtype("cpu") is None
    cpu_flags("fpu sse2 avx2 avx512f avx512_bf16")
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)  # the flags decide here
    assert precision.native_bf16() and precision.sampler_dtype("cpu") is torch.bfloat16
    monkeypatch.setenv(precision.ENV, "fp32")
    assert precision.sampler_dtype("cpu") is None
    monkeypatch.setenv(precision.ENV, "bf16")
    assert precision.sampler_dtype("cpu") is torch.bfloat16 and precision.sampler_dtype("cuda") is None
    monkeypatch.setenv(precision.ENV, "half-ish")
    cpu_flags("fpu sse2")
    with caplog.at_level(logging.WARNING):
        assert precision.sampler_dtype("cpu") is None  # auto, said in a line
    assert "MACE_DANCE_PRECISION='half-ish' is not auto, bf16 or fp32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        precision.sampler_dtype("cpu")
    assert caplog.text == ""  # said once, not at every dance


def test_a_bf16_dance_stays_the_float32_one_and_repeats_for_its_seed(monkeypatch):
    """(The suite runs in float32, conftest: its tolerances hold on every CPU; this test asks for bf16.)"""
    torch.manual_seed(0)
    model = Denoiser(TINY).eval()
    music = torch.randn(90, TINY.music_dim)
    options = lambda: SampleOptions(steps=3, seed=4, cutoff=0.0)  # noqa: E731

    def run(choice: str) -> torch.Tensor:
        monkeypatch.setenv(precision.ENV, choice)
        return sample(model, music, options())

    full, half, again = run("fp32"), run("bf16"), run("bf16")
    monkeypatch.setenv(precision.ENV, "bf16")
    known = torch.zeros(90, TINY.motion_dim)
    mask = torch.zeros(90, TINY.motion_dim, dtype=torch.bool)
    mask[:30] = True
    edited = sample(model, music, SampleOptions(steps=3, seed=4, cutoff=0.0),
                    Constraint(known.numpy(), mask.numpy()))
    monkeypatch.setenv(precision.ENV, "fp32")
    edited_full = sample(model, music, SampleOptions(steps=3, seed=4, cutoff=0.0),
                         Constraint(known.numpy(), mask.numpy()))
    assert torch.equal(edited, edited_full)  # an edit's reconstruction guidance differentiates: float32 always
    assert torch.equal(half, again)  # the same seed, the same dance
    assert half.dtype == torch.float32 and not torch.allclose(half, full, atol=1e-4)  # the passes did run in bf16
    assert float((half - full).norm() / full.norm()) < 0.05
