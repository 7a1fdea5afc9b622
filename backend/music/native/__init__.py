"""The downbeat tracker's two loops (the networks' LSTM recurrence, the HMMs' Viterbi) compiled from C, loaded with
ctypes: the same numbers as their numba versions (backend.music.numba_kernels), without numba in the process.

Why: a cold run's analysis paid ~0.3 s of CPU to import numba and load its cached machine code, a tenth of the
analysis and the part that grew most when another program held a core (issue 34). A shared library loads in ~1 ms.
`scripts/bootstrap.sh` builds it (`python -m backend.music.native`) with the system's C compiler into the
environment's share/mace-dance folder, named by a digest of the sources and flags, so a library from other sources
is never loaded. Without a compiler, or with MACE_DANCE_KERNELS=numba, the numba kernels run instead. ctypes
releases the GIL around each call, so the tracker's threads run side by side as with numba's `nogil`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COMMON_FLAGS = ("-O3", "-fPIC", "-std=gnu99")
X86 = platform.machine().lower() in ("x86_64", "amd64")


def units(avx2: bool = X86) -> list[tuple[str, str, tuple[str, ...]]]:
    """(source, object name, flags) of each compile unit. The LSTM takes fast-math (vectorised gates, as numba's
    fastmath=True), on x86-64 a second time for AVX2 + FMA; the Viterbi keeps IEEE arithmetic, so its sums and
    comparisons are madmom's to the bit."""
    fast = ("-ffast-math",)
    found = [("lstm.c", "lstm_base", fast), ("viterbi.c", "viterbi", ())]
    if avx2:
        found += [("lstm.c", "lstm_avx2", fast + ("-mavx2", "-mfma", "-DMACE_BILSTM=mace_bilstm_avx2")),
                  ("dispatch.c", "dispatch", ("-DMACE_X86",))]
    else:
        found += [("dispatch.c", "dispatch", ())]
    return found
ENV_KERNELS = "MACE_DANCE_KERNELS"  # "numba": skip the C library


class BuildError(RuntimeError):
    """The C kernels could not be compiled (no compiler, or it refused the sources)."""


def _digest() -> str:
    """A digest of the sources, their flags and the platform: the library's name."""
    h = hashlib.sha256()
    for name, obj, flags in units():
        h.update((HERE / name).read_bytes())
        h.update(" ".join((obj,) + flags + COMMON_FLAGS).encode())
    h.update(f"{sys.platform} {platform.machine()}".encode())
    return h.hexdigest()[:16]


def library_path(folder: Path | None = None) -> Path:
    """Where the library for these sources lies (in the Python environment unless `folder` is given)."""
    folder = Path(sys.prefix) / "share" / "mace-dance" if folder is None else Path(folder)
    suffix = ".dll" if sys.platform == "win32" else ".so"
    return folder / f"kernels-{_digest()}{suffix}"


def compiler() -> str | None:
    """The C compiler to use ($CC, else cc, gcc or clang on the PATH), None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name.split()[0]):
            return name
    return None


def build(folder: Path | None = None) -> Path:
    """Compile the kernels into `library_path(folder)` (kept when already there); raises BuildError."""
    target = library_path(folder)
    if target.exists():
        return target
    cc = compiler()
    if cc is None:
        raise BuildError("no C compiler found (set CC, or install cc, gcc or clang)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        try:
            built = _compile(cc, Path(tmp), target.name, units())
        except BuildError:
            if not X86:
                raise
            built = _compile(cc, Path(tmp), target.name, units(avx2=False))  # a compiler without -mavx2 / -mfma
        _load(built)  # one that builds but does not load here (another architecture, a noexec folder) is no library
        os.replace(built, target)  # atomic: a process loading it meanwhile finds the whole file or none
    for old in target.parent.glob(f"kernels-*{target.suffix}"):  # builds of earlier sources (a process that has
        if old != target:  # one loaded keeps its mapping)
            old.unlink(missing_ok=True)
    return target


def _compile(cc: str, tmp: Path, name: str, parts: list[tuple[str, str, tuple[str, ...]]]) -> Path:
    """Compile and link `parts` into tmp/name."""
    objects = []
    for source, stem, flags in parts:
        obj = tmp / f"{stem}.o"
        _run([*cc.split(), *COMMON_FLAGS, *flags, "-c", str(HERE / source), "-o", str(obj)])
        objects.append(str(obj))
    built = tmp / name
    _run([*cc.split(), "-shared", "-o", str(built), *objects, "-lm"])
    return built


def _load(path: Path):
    """The library at `path` with its functions' signatures declared; BuildError when it cannot be loaded."""
    try:
        lib = ctypes.CDLL(str(path))
        ptr, ssize, i32 = ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int
        lib.mace_bilstm.argtypes = [ptr, ssize, ssize, ptr, ptr, ptr, ptr, i32, i32, i32]
        lib.mace_bilstm.restype = None
        lib.mace_viterbi.argtypes = [ptr, ptr, ptr, ptr, ptr, ssize, ptr, ptr, ssize, ssize, ssize, ptr, ptr, ptr]
        lib.mace_viterbi.restype = ctypes.c_double
        lib.mace_bilstm_variant.argtypes = []
        lib.mace_bilstm_variant.restype = i32
    except (OSError, AttributeError) as exc:
        raise BuildError(f"{path} does not load: {exc}") from exc
    return lib


def _run(cmd: list[str]) -> None:
    """Run a compiler command; BuildError with its message when it fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{cmd[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")


@lru_cache(maxsize=None)
def library(folder: Path | None = None):
    """The loaded kernels (ctypes.CDLL), None when they are not built, do not load (said once, as a warning) or
    MACE_DANCE_KERNELS=numba."""
    if os.environ.get(ENV_KERNELS, "").strip().lower() == "numba":
        return None
    path = library_path(folder)
    if not path.exists():
        return None
    try:
        return _load(path)
    except BuildError as exc:
        warnings.warn(f"{exc}; the numba kernels run instead (delete it and rerun scripts/bootstrap.sh)",
                      RuntimeWarning, stacklevel=2)
        return None


def _need(a: np.ndarray, dtype, name: str) -> None:
    """Refuse an array the C code would misread (a programming error, not a user's)."""
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise TypeError(f"{name}: C-contiguous {np.dtype(dtype)} expected, got {a.dtype} "
                        f"(contiguous: {a.flags.c_contiguous})")


def bilstm(lib, proj: np.ndarray, bias: np.ndarray, w_rec: np.ndarray, peep: np.ndarray, out: np.ndarray) -> None:
    """numba_kernels.bilstm through the C library `lib`: proj (M, T, 2, 4H) float32 whose last two axes are
    contiguous (a strided view over networks and frames is read in place), out (M, T, 2H) written."""
    M, T, two, G = proj.shape
    H = G // 4
    if proj.dtype != np.float32 or two != 2 or G % 4 or proj.strides[3] != 4 or proj.strides[2] != 4 * G:
        raise TypeError(f"proj: float32 (M, T, 2, 4H) with contiguous last axes expected, got {proj.dtype} "
                        f"{proj.shape} strides {proj.strides}")
    for a, name, shape in ((bias, "bias", (M, 2, G)), (w_rec, "w_rec", (M, 2, H, G)), (peep, "peep", (M, 2, 3, H)),
                           (out, "out", (M, T, 2 * H))):
        _need(a, np.float32, name)
        if a.shape != shape:
            raise TypeError(f"{name}: shape {shape} expected, got {a.shape}")
    if M == 0 or T == 0:
        return
    lib.mace_bilstm(proj.ctypes.data, proj.strides[0] // 4, proj.strides[1] // 4, bias.ctypes.data,
                    w_rec.ctypes.data, peep.ctypes.data, out.ctypes.data, M, T, H)


def viterbi(lib, states: np.ndarray, pointers: np.ndarray, log_probs: np.ndarray, om_pointers: np.ndarray,
            densities: np.ndarray, log_init: np.ndarray) -> tuple[np.ndarray, float]:
    """numba_kernels.viterbi through the C library `lib` (same arguments, same path and log probability)."""
    for a, dtype, name in ((states, np.uint32, "states"), (pointers, np.uint32, "pointers"),
                           (log_probs, np.float64, "log_probs"), (om_pointers, np.uint32, "om_pointers"),
                           (densities, np.float64, "densities"), (log_init, np.float64, "log_init")):
        _need(a, dtype, name)
    n_states, n_frames = len(pointers) - 1, len(densities)
    counts = np.diff(pointers.astype(np.int64))
    # what the C loop would read out of bounds, or a back-pointer byte could not hold: refused here
    if densities.ndim != 2 or n_states < 0 or len(log_init) != n_states or len(om_pointers) != n_states:
        raise ValueError(f"viterbi: {n_states} states, {len(log_init)} initial and {len(om_pointers)} observation "
                         f"pointers, densities {densities.shape}")
    if n_states and (counts.min() < 0 or pointers[-1] > len(states) or pointers[-1] > len(log_probs)
                     or (len(states) and states.max() >= n_states) or om_pointers.max() >= densities.shape[1]
                     or counts.max() > 256):
        raise ValueError("viterbi: transition or observation pointers out of range, or a state with over 256 "
                         "predecessors")
    multi = counts > 1
    slot = np.full(n_states, -1, dtype=np.int64)  # back-pointer column of each state with several predecessors
    slot[multi] = np.arange(int(multi.sum()))
    back = np.zeros((n_frames, max(int(multi.sum()), 1)), dtype=np.uint8)
    prev, cur = log_init.copy(), np.empty(n_states, dtype=np.float64)
    path = np.empty(n_frames, dtype=np.uint32)
    log_p = lib.mace_viterbi(states.ctypes.data, pointers.ctypes.data, log_probs.ctypes.data, om_pointers.ctypes.data,
                             densities.ctypes.data, densities.shape[1], slot.ctypes.data,
                             back.ctypes.data, back.shape[1], n_states, n_frames, prev.ctypes.data, cur.ctypes.data,
                             path.ctypes.data)
    return (path if log_p > -np.inf else path[:0]), log_p
