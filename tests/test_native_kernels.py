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
    here = native.HERE
    monkeypatch.setattr(native, "HERE", source)
    assert native.library_path(tmp_path) != first and not native.library_path(tmp_path).exists()
    native.library.cache_clear()
    try:
        assert native.library(tmp_path) is None  # the build of the old sources is not loaded for the new ones
    finally:
        native.library.cache_clear()
    monkeypatch.setattr(native, "HERE", here)
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


def _random_hmm(rng, n: int, frames: int, observations: int = 3):
    """A sparse HMM in madmom's layout: states with 0 to 4 predecessors (some transitions impossible), random
    observation pointers and log densities (some -inf), a log initial distribution with impossible states."""
    counts = rng.integers(0, 5, n)
    counts[rng.integers(0, n)] = 0
    pointers = np.r_[0, np.cumsum(counts)].astype(np.uint32)
    states = rng.integers(0, n, pointers[-1]).astype(np.uint32)
    log_probs = np.log(rng.random(pointers[-1]))
    log_probs[rng.random(pointers[-1]) < 0.1] = -np.inf
    densities = np.log(rng.random((frames, observations)))
    densities[rng.random((frames, observations)) < 0.05] = -np.inf
    log_init = np.log(rng.random(n))
    log_init[rng.random(n) < 0.3] = -np.inf
    om = rng.integers(0, observations, n).astype(np.uint32)
    return states, pointers, log_probs, om, densities, log_init


def test_the_c_viterbi_gives_numbas_path_and_probability(built):
    """On random sparse HMMs (states without predecessors, impossible transitions and observations, no frames at
    all, a path that dies out): the same path and the same log probability, to the bit."""
    rng = np.random.default_rng(5)
    cases = [_random_hmm(rng, n, frames) for n, frames in ((1, 5), (7, 0), (40, 60), (300, 200), (25, 1))]
    dead = list(_random_hmm(rng, 20, 30))
    dead[4] = dead[4].copy()
    dead[4][17] = -np.inf  # no state can be observed at frame 17: no path
    cases.append(tuple(dead))
    died = 0
    for args in cases:
        want_path, want_logp = numba_kernels.viterbi(*args)
        path, logp = native.viterbi(built, *args)
        assert path.dtype == np.uint32 and np.array_equal(path, want_path)
        assert logp == want_logp or (np.isneginf(logp) and np.isneginf(want_logp))
        died += np.isneginf(logp)
    assert died >= 1 and len(native.viterbi(built, *cases[2])[0]) == 60


def test_the_c_viterbi_refuses_what_it_would_read_out_of_bounds(built):
    rng = np.random.default_rng(6)
    states, pointers, log_probs, om, densities, log_init = _random_hmm(rng, 10, 8)
    with pytest.raises(ValueError, match="pointers out of range"):
        native.viterbi(built, np.full_like(states, 10), pointers, log_probs, om, densities, log_init)
    with pytest.raises(ValueError, match="pointers out of range"):
        native.viterbi(built, states, pointers, log_probs, np.full_like(om, 3), densities, log_init)
    with pytest.raises(ValueError, match="10 states"):
        native.viterbi(built, states, pointers, log_probs, om, densities, log_init[:-1])
    with pytest.raises(ValueError, match="densities"):
        native.viterbi(built, states, pointers, log_probs, om, densities[:, 0].copy(), log_init)
    wide = np.r_[0, 300, np.full(9, 300)].astype(np.uint32)  # a state with 300 predecessors: one byte holds 256
    with pytest.raises(ValueError, match="over 256"):
        native.viterbi(built, np.zeros(300, np.uint32), wide, np.zeros(300), om, densities, log_init)


def test_a_library_that_does_not_load_is_set_aside_with_a_warning(tmp_path):
    path = native.library_path(tmp_path)
    path.write_bytes(b"not a shared library")
    native.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="numba kernels run instead"):
            assert native.library(tmp_path) is None
    finally:
        native.library.cache_clear()


@pytest.mark.skipif(not native.X86, reason="the AVX2 build exists on x86-64 only")
def test_a_compiler_without_avx2_still_builds_the_plain_kernels(built, tmp_path, monkeypatch):
    """A compiler that refuses -mavx2 (an old or a foreign one): the library is built without the AVX2 variant and
    gives the same numbers."""
    cc = tmp_path / "cc-no-avx2"
    cc.write_text("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -mavx2 ] && exit 1; done\n"
                  f"exec {native.compiler()} \"$@\"\n")
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    lib = native._load(native.build(tmp_path / "plain"))
    assert lib.mace_bilstm_variant() == 0 and not hasattr_symbol(lib, "mace_bilstm_avx2")
    rng = np.random.default_rng(2)
    proj, bias, w_rec, peep = _layer(rng, 2, 50)
    a, b = np.empty((2, 50, 50), np.float32), np.empty((2, 50, 50), np.float32)
    native.bilstm(lib, proj, bias, w_rec, peep, a)
    native.bilstm(built, proj, bias, w_rec, peep, b)
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


def hasattr_symbol(lib, name: str) -> bool:
    """Whether the loaded library exports `name`."""
    try:
        getattr(lib, name)
    except AttributeError:
        return False
    return True
