"""The downbeat tracker's loops in C (backend.music.native): built from the sources on demand, the numba kernels'
numbers, and a cold analysis that never imports numba (issue 34: numba's start-up was a tenth of the analysis)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.music import native, numba_kernels

needs_cc = pytest.mark.skipif(native.compiler() is None, reason="no C compiler (cc, gcc or clang) on this machine")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The kernels built afresh into a folder of this test's own, loaded."""
    if native.compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) on this machine")
    folder = tmp_path_factory.mktemp("kernels")
    path = native.build(folder)
    assert path == native.library_path(folder) and path.exists()
    return native.library(folder)


def _layer(rng, m: int, t: int, h: int = 25):
    """Random weights of one bidirectional layer of m networks and a strided (m, t, 2, 4h) projection view, as the
    first layer's product gives it."""
    g = 4 * h
    proj = rng.standard_normal((t, m, 2, g)).astype(np.float32).transpose(1, 0, 2, 3)
    bias = (0.1 * rng.standard_normal((m, 2, g))).astype(np.float32)
    w_rec = (0.3 * rng.standard_normal((m, 2, h, g))).astype(np.float32)
    peep = (0.3 * rng.standard_normal((m, 2, 3, h))).astype(np.float32)
    return proj, bias, w_rec, peep


def test_the_c_recurrence_gives_numbas_numbers_in_both_builds(built):
    """Both compiled variants (plain, and AVX2 + FMA where the CPU has them) match numba's kernel, on a strided and
    on a contiguous projection, forward and backward halves alike."""
    rng = np.random.default_rng(0)
    proj, bias, w_rec, peep = _layer(rng, 3, 400)
    want = np.empty((3, 400, 50), np.float32)
    numba_kernels.bilstm(proj, bias, w_rec, peep, want)
    got = np.full_like(want, np.nan)
    native.bilstm(built, proj, bias, w_rec, peep, got)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
    contiguous = np.full_like(want, np.nan)
    native.bilstm(built, np.ascontiguousarray(proj), bias, w_rec, peep, contiguous)
    np.testing.assert_array_equal(contiguous, got)
    base = np.full_like(want, np.nan)  # the plain build, whatever this CPU would pick
    fn = built.mace_bilstm_base
    fn.argtypes = built.mace_bilstm.argtypes
    fn(proj.ctypes.data, proj.strides[0] // 4, proj.strides[1] // 4, bias.ctypes.data, w_rec.ctypes.data,
       peep.ctypes.data, base.ctypes.data, 3, 400, 25)
    np.testing.assert_allclose(base, want, rtol=0, atol=2e-5)
    assert built.mace_bilstm_variant() in (0, 1)
    assert np.abs(want[:, :, :25]).max() > 0.1 and np.abs(want[:, :, 25:]).max() > 0.1  # both directions ran


def test_arrays_the_c_code_would_misread_are_refused(built):
    rng = np.random.default_rng(1)
    proj, bias, w_rec, peep = _layer(rng, 2, 10)
    out = np.empty((2, 10, 50), np.float32)
    with pytest.raises(TypeError, match="proj"):
        native.bilstm(built, proj.astype(np.float64), bias, w_rec, peep, out)
    with pytest.raises(TypeError, match="proj"):
        native.bilstm(built, proj[:, :, :, ::2], bias, w_rec[:, :, :, ::2], peep, out)
    with pytest.raises(TypeError, match="out"):
        native.bilstm(built, proj, bias, w_rec, peep, np.empty((2, 10, 50), np.float64))
    with pytest.raises(TypeError, match="peep"):
        native.bilstm(built, proj, bias, w_rec, peep[:, :, :2], out)


def test_the_library_is_named_by_its_sources_and_kept(tmp_path, monkeypatch):
    """A build is reused while the sources stay; another source gives another name, so an old library is never
    loaded for new code; MACE_DANCE_KERNELS=numba leaves it unloaded."""
    if native.compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) on this machine")
    stale = tmp_path / "kernels-0123456789abcdef.so"  # a build of other sources
    stale.write_bytes(b"old")
    first = native.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no object files, temporaries or stale builds
    source = tmp_path / "src"
    source.mkdir()
    for name in ("lstm.c", "viterbi.c", "dispatch.c"):
        text = (native.HERE / name).read_text()
        (source / name).write_text(text + ("\n/* changed */\n" if name == "viterbi.c" else ""))
    monkeypatch.setattr(native, "HERE", source)
    assert native.library_path(tmp_path) != first
    monkeypatch.setattr(native, "HERE", native.HERE)
    monkeypatch.setenv(native.ENV_KERNELS, "numba")
    native.library.cache_clear()
    try:
        assert native.library(tmp_path) is None
    finally:
        native.library.cache_clear()


def test_no_compiler_is_said_plainly_and_the_numba_kernels_stay(tmp_path, monkeypatch):
    env = {**os.environ, "CC": "false"}
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(native.BuildError, match="no C compiler"):
        native.build(tmp_path)
    assert not any(tmp_path.iterdir())
    # a compiler that fails (`false`): the command says so and still succeeds, so that bootstrap goes on
    folder = tmp_path / "kernels"
    done = subprocess.run([sys.executable, "-m", "backend.music.native", str(folder)], env=env, capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and "numba ones will run" in done.stderr and "failed" in done.stderr
    assert not folder.exists() or not any(folder.iterdir())  # no half-built library left to load


@needs_cc
def test_a_cold_analysis_never_imports_numba():
    """With the C kernels built, a fresh process analyses a song (beats, downbeats, meter) without loading numba."""
    if native.library() is None:
        pytest.skip(f"the C kernels are not built at {native.library_path()} (scripts/bootstrap.sh builds them)")
    code = ("import sys; from backend.music.demo import synthesize_demo; from backend.music.features import "
            "extract_features; s = synthesize_demo(seconds=8.0); m = extract_features(s.samples, s.sr); "
            "print(m.meter, len(m.beat_frames), 'numba' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != native.ENV_KERNELS}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    meter, beats, numba_loaded = done.stdout.split()
    assert int(meter) == 4 and int(beats) >= 12
    assert numba_loaded == "False"
