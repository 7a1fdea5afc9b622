"""librosa 0.11's features as `features.extract_features` asks for them, computed without importing librosa.

Why: importing librosa (librosa.core, scipy.signal, librosa's numba kernels) took 1.0 CPU-s of a cold CLI run, on the
forked analysis' critical path, for nine functions. Each function below follows librosa's computation for the
parameters features.py uses, step for step: the same operations in the same order on the same dtypes, the same
FFT library (scipy.fft), sparse matrix product and BLAS calls; librosa's numba loops (local maxima, parabolic
interpolation, peak picking) as numpy with their arithmetic. tests/test_librosa_features.py compares every one with
librosa's on real music, to the bit.

Ported from librosa (ISC licence, (c) 2013--2023 librosa development team): core/spectrum.py (stft, power_to_db),
filters.py (mel, wavelet, cq_to_chroma), core/constantq.py (cqt), core/pitch.py (piptrack, estimate_tuning),
onset.py (onset_strength, onset_detect), feature/spectral.py (melspectrogram, mfcc, chroma_cqt, chroma_cens),
util/utils.py (normalize, sparsify_rows, localmax, peak_pick).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

HANN_BANDWIDTH = 1.50018310546875  # librosa.filters.WINDOW_BANDWIDTHS["hann"]


# --- windows, frames, STFT ---------------------------------------------------------------------------------------

def hann(n: int, periodic: bool = True) -> np.ndarray:
    """scipy.signal.get_window("hann", n, fftbins=periodic): float64."""
    if n <= 1:
        return np.ones(n)
    m = n + 1 if periodic else n
    w = np.zeros(m)
    fac = np.linspace(-np.pi, np.pi, m)
    for k, a in enumerate((0.5, 0.5)):  # scipy's general cosine sum, term by term
        w += a * np.cos(k * fac)
    return w[:-1] if periodic else w


def _frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(n_fft, frames) view of `y` zero-padded by n_fft // 2 on both sides (librosa.util.frame's layout)."""
    padded = np.pad(y, (n_fft // 2, n_fft // 2), mode="constant")
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop].T


def stft(y: np.ndarray, n_fft: int, hop: int, window: str = "hann") -> np.ndarray:
    """librosa.stft(y, n_fft=n_fft, hop_length=hop, window=window) (centred, zero-padded): (1 + n_fft // 2, frames)
    complex64 for float32 samples."""
    import scipy.fft

    if window not in ("hann", "ones"):
        raise ValueError(f"stft is ported for the 'hann' and 'ones' windows, not {window!r}")
    fft_window = (hann(n_fft) if window == "hann" else np.ones(n_fft))[:, None]
    frames = _frames(y, n_fft, hop)
    out = np.zeros((1 + n_fft // 2, frames.shape[1]), dtype=np.complex64 if y.dtype == np.float32 else np.complex128,
                   order="F")
    block = max(1, int(2 ** 8 * 2 ** 10 // (n_fft * frames.itemsize)))  # librosa's MAX_MEM_BLOCK columns
    for a in range(0, frames.shape[1], block):
        out[:, a:a + block] = scipy.fft.rfft(fft_window * frames[:, a:a + block], axis=-2)
    return out


def power_to_db(S: np.ndarray, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """librosa.power_to_db(S) (ref 1.0)."""
    log_spec = 10.0 * np.log10(np.maximum(amin, S))
    log_spec -= 10.0 * np.log10(np.maximum(amin, 1.0))
    return np.maximum(log_spec, log_spec.max() - top_db)


# --- mel bands, onsets, MFCCs -------------------------------------------------------------------------------------

def _hz_to_mel(frequencies) -> np.ndarray:
    """librosa.hz_to_mel (Slaney)."""
    frequencies = np.asanyarray(frequencies)
    f_min, f_sp = 0.0, 200.0 / 3
    mels = (frequencies - f_min) / f_sp
    min_log_hz = 1000.0
    min_log_mel = (min_log_hz - f_min) / f_sp
    logstep = np.log(6.4) / 27.0
    if frequencies.ndim:
        log_t = frequencies >= min_log_hz
        mels[log_t] = min_log_mel + np.log(frequencies[log_t] / min_log_hz) / logstep
    elif frequencies >= min_log_hz:
        mels = min_log_mel + np.log(frequencies / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """librosa.mel_to_hz (Slaney)."""
    f_min, f_sp = 0.0, 200.0 / 3
    freqs = f_min + f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = (min_log_hz - f_min) / f_sp
    logstep = np.log(6.4) / 27.0
    log_t = mels >= min_log_mel
    freqs[log_t] = min_log_hz * np.exp(logstep * (mels[log_t] - min_log_mel))
    return freqs


@lru_cache(maxsize=4)
def mel_filters(sr: float, n_fft: int, n_mels: int = 128) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft) (Slaney scale and norm, 0 Hz to Nyquist): (n_mels, bins) float32."""
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(float(sr) / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    weights.flags.writeable = False  # shared by every call
    return weights


def melspectrogram(power: np.ndarray, sr: float) -> np.ndarray:
    """librosa.feature.melspectrogram(S=power, sr=sr)."""
    return np.einsum("...ft,mf->...mt", power, mel_filters(sr, 2 * (power.shape[-2] - 1)), optimize=True)


def onset_strength(log_mel: np.ndarray, hop: int, n_fft: int = 2048) -> np.ndarray:
    """librosa.onset.onset_strength(S=log_mel, hop_length=hop) (lag 1, no max filter, mean over bands, centred)."""
    S = np.atleast_2d(log_mel)
    onset_env = np.maximum(0.0, S[..., 1:] - S[..., :-1])
    agg = np.empty((1, onset_env.shape[-1]), dtype=onset_env.dtype)
    agg[0] = np.mean(onset_env, axis=-2)
    agg = np.pad(agg, [(0, 0), (1 + n_fft // (2 * hop), 0)], mode="constant")
    return agg[..., :S.shape[-1]][0]


def mfcc(log_mel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc): (n_mfcc, frames)."""
    import scipy.fft

    return scipy.fft.dct(log_mel, axis=-2, type=2, norm="ortho")[..., :n_mfcc, :]


def onset_detect(envelope: np.ndarray, sr: float, hop: int) -> np.ndarray:
    """librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop): onset frames."""
    env = envelope - np.min(envelope, keepdims=True, axis=-1)
    env /= np.max(env, keepdims=True, axis=-1) + np.finfo(env.dtype).tiny
    if not env.any() or not np.all(np.isfinite(env)):
        return np.array([], dtype=int)
    return peak_pick(env, pre_max=int(np.ceil(0.03 * sr // hop)), post_max=int(np.ceil(0.00 * sr // hop + 1)),
                     pre_avg=int(np.ceil(0.10 * sr // hop)), post_avg=int(np.ceil(0.10 * sr // hop + 1)),
                     delta=0.07, wait=int(np.ceil(0.03 * sr // hop)))


def peak_pick(x: np.ndarray, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float, wait: int
              ) -> np.ndarray:
    """librosa.util.peak_pick of a 1-D float array: peak indices, for the windows onset_detect uses at the analysis
    rate (pre_max 0, post_max 1, wait 0: every frame is its own window's maximum, so a peak is a frame at least
    `delta` above the mean of its frames n - pre_avg .. n + post_avg - 1, and no peak hides the next).

    librosa's numba loop, vectorised with its arithmetic: the window's float32 sum term by term from the left, the
    mean in float64, delta as a float32 (its signature's type). A numba kernel here compiled or loaded on the main
    thread of a cold run for 0.3-0.5 s, beside the beat tracker's own."""
    if (pre_max, post_max, wait) != (0, 1, 0):
        raise NotImplementedError("peak_pick is ported for pre_max 0, post_max 1 and wait 0 only")
    n = len(x)
    frames = np.arange(n)
    lo, hi = np.maximum(0, frames - pre_avg), np.minimum(frames + post_avg, n)
    total = np.zeros(n, dtype=x.dtype)
    for k in range(pre_avg + post_avg):
        j = lo + k
        inside = j < hi
        total = np.where(inside, total + x[np.minimum(j, n - 1)], total)
    mean = total.astype(np.float64) / (hi - lo)
    return np.flatnonzero(x >= mean + np.float64(np.float32(delta)))


# --- tuning -------------------------------------------------------------------------------------------------------

def estimate_tuning(S: np.ndarray, sr: float, n_fft: int, bins_per_octave: int) -> float:
    """librosa.estimate_tuning(S=S, sr=sr, n_fft=n_fft, bins_per_octave=...) for a magnitude spectrogram.

    librosa's pitch tracker (piptrack) computes the gradient, the parabolic shift and the local maxima over the whole
    spectrogram and keeps them at the local maxima of its 150-4000 Hz band; this computes the maxima over the band
    (and the rows beside it) and the rest only where they are kept: the same values, a quarter of the work. The
    shift is its numba stencil's arithmetic (float32 sums, float64 from there on), the gradient numpy's."""
    S = np.abs(S)
    fmin, fmax = np.maximum(150.0, 0), np.minimum(4000.0, float(sr) / 2)
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    band = np.flatnonzero((fmin <= fft_freqs) & (fft_freqs < fmax))  # a run of bins, never the last (Nyquist) one
    if not len(band) or S.shape[-2] < 3:
        return 0.0
    lo, hi = max(int(band[0]), 1), int(band[-1]) + 1  # util.localmax: never the first row
    gated = S[lo - 1:hi + 1]
    gated = gated * (gated > 0.1 * np.max(S, axis=-2))  # librosa's S * (S > ref_value), the band and a row each side
    rows, cols = np.nonzero((gated[1:-1] > gated[:-2]) & (gated[1:-1] >= gated[2:]))
    rows = rows + lo
    left, mid, right = S[rows - 1, cols], S[rows, cols], S[rows + 1, cols]
    a = (right + left).astype(np.float64) - 2 * mid.astype(np.float64)
    b = (right - left).astype(np.float64) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) >= np.abs(a), 0.0, -b / a).astype(S.dtype)
    avg = (right - left) / 2.  # np.gradient along the bins (every row here has both neighbours)
    dskew = 0.5 * avg * shift
    pitch = ((rows + shift) * float(sr) / n_fft).astype(S.dtype)
    mag = S[rows, cols] + dskew
    pitch_mask = pitch > 0
    threshold = np.median(mag[pitch_mask]) if pitch_mask.any() else 0.0
    frequencies = np.atleast_1d(pitch[(mag >= threshold) & pitch_mask])
    frequencies = frequencies[frequencies > 0]
    if not np.any(frequencies):
        return 0.0
    residual = np.mod(bins_per_octave * np.log2(frequencies / (440.0 / 16)), 1.0)  # hz_to_octs, A440 (tuning 0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / 0.01)) + 1)
    counts, tuning = np.histogram(residual, bins)
    return tuning[np.argmax(counts)]


# --- constant-Q chroma --------------------------------------------------------------------------------------------

C1_HZ = 440.0 * (2.0 ** ((24 - 69.0) / 12.0))  # librosa.note_to_hz("C1")


def _normalize(S: np.ndarray, norm: float, axis: int) -> np.ndarray:
    """librosa.util.normalize(S, norm=norm, axis=axis) for a finite norm > 0 (small columns left as they are)."""
    if not np.all(np.isfinite(S)):
        raise ValueError("Input must be finite")
    mag = np.abs(S).astype(float)
    length = np.sum(mag ** norm, axis=axis, keepdims=True) ** (1.0 / norm)
    length[length < np.finfo(S.dtype).tiny] = 1.0
    out = np.empty_like(S)
    out[:] = S / length
    return out


def _relative_bandwidth(freqs: np.ndarray) -> np.ndarray:
    """librosa.filters._relative_bandwidth."""
    bpo = np.empty_like(freqs)
    logf = np.log2(freqs)
    bpo[0] = 1 / (logf[1] - logf[0])
    bpo[-1] = 1 / (logf[-1] - logf[-2])
    bpo[1:-1] = 2 / (logf[2:] - logf[:-2])
    return (2.0 ** (2 / bpo) - 1) / (2.0 ** (2 / bpo) + 1)


def _wavelet_lengths(freqs: np.ndarray, sr: float, alpha: np.ndarray) -> tuple[np.ndarray, float]:
    """librosa.filters.wavelet_lengths for Hann windows, filter scale 1 and gamma 0 (its gamma terms add zeros)."""
    Q = 1.0 / alpha
    return Q * sr / freqs, max(freqs * (1 + 0.5 * HANN_BANDWIDTH / Q))


def _sparsify_rows(x: np.ndarray, quantile: float):
    """librosa.util.sparsify_rows(x, quantile=quantile) (complex64 rows) as the same csr matrix."""
    import scipy.sparse

    mags = np.abs(x)
    norms = np.sum(mags, axis=1, keepdims=True)
    mag_sort = np.sort(mags, axis=1)
    cumulative_mag = np.cumsum(mag_sort / norms, axis=1)
    threshold_idx = np.argmin(cumulative_mag < quantile, axis=1)
    indptr, indices, data = [0], [], []
    for i, j in enumerate(threshold_idx):
        keep = np.flatnonzero(mags[i] >= mag_sort[i, j])
        indices.append(keep)
        data.append(x[i, keep])
        indptr.append(indptr[-1] + len(keep))
    return scipy.sparse.csr_matrix((np.concatenate(data).astype(x.dtype), np.concatenate(indices), np.array(indptr)),
                                   shape=x.shape)


def _filter_fft(sr: float, freqs: np.ndarray, alpha: np.ndarray, sparsity: float = 0.01):
    """librosa's per-octave CQT basis (constantq.__vqt_filter_fft with Hann windows, L1 norm): (csr basis, n_fft)."""
    import scipy.fft

    lengths, _ = _wavelet_lengths(freqs, sr, alpha)
    filters = []
    for ilen, freq in zip(lengths, freqs):
        angles = np.arange(-ilen // 2, ilen // 2, dtype=float) * 2 * np.pi * freq / sr
        sig = np.cos(angles) + 1j * np.sin(angles)
        sig *= hann(len(sig))
        filters.append(_normalize(sig, 1, 0))
    max_len = int(2.0 ** (np.ceil(np.log2(max(lengths)))))
    basis = np.asarray([np.pad(f, (int((max_len - len(f)) // 2), int(max_len - len(f) - (max_len - len(f)) // 2)),
                               mode="constant") for f in filters], dtype=np.complex64)
    n_fft = basis.shape[1]
    basis *= lengths[:, np.newaxis] / float(n_fft)
    fft_basis = scipy.fft.fft(basis, n=n_fft, axis=1)[:, :(n_fft // 2) + 1]
    return _sparsify_rows(fft_basis, sparsity), n_fft


def _resample_half(y: np.ndarray) -> np.ndarray:
    """librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)."""
    import soxr

    ratio = 1.0 / 2
    n_samples = int(np.ceil(y.shape[-1] * ratio))
    y_hat = soxr.resample(y, 2, 1, quality="soxr_hq")
    if y_hat.shape[-1] > n_samples:
        y_hat = y_hat[:n_samples]
    elif y_hat.shape[-1] < n_samples:
        y_hat = np.pad(y_hat, (0, n_samples - y_hat.shape[-1]), mode="constant")
    y_hat /= np.sqrt(ratio)
    return np.asarray(y_hat, dtype=y.dtype)


def cqt_magnitude(y: np.ndarray, sr: float, hop: int, tuning: float, n_octaves: int = 7, bins_per_octave: int = 36
                  ) -> np.ndarray:
    """np.abs(librosa.cqt(y, sr=sr, hop_length=hop, n_bins=n_octaves * bins_per_octave, bins_per_octave=...,
    tuning=tuning)) from C1: (bins, frames) float32."""
    n_bins = n_octaves * bins_per_octave
    bases, lengths = _octave_bases(float(sr), hop, float(tuning), n_octaves, bins_per_octave)
    responses = []
    my_y, my_hop = y, hop
    for fft_basis, n_fft in bases:
        D = stft(my_y, n_fft, my_hop, window="ones")
        responses.append(fft_basis.dot(D))
        if my_hop % 2 == 0:
            my_hop //= 2
            my_y = _resample_half(my_y)
    max_col = min(r.shape[-1] for r in responses)
    V = np.empty((n_bins, max_col), dtype=np.complex64, order="F")
    end = n_bins
    for r in responses:  # librosa's __trim_stack: the top octave first, from the top down
        n_oct = r.shape[-2]
        if end < n_oct:
            V[:end] = r[-end:, :max_col]
        else:
            V[end - n_oct:end] = r[:, :max_col]
        end -= n_oct
    V /= np.sqrt(lengths)[:, None]
    return np.abs(V)


@lru_cache(maxsize=8)
def _octave_bases(sr: float, hop: int, tuning: float, n_octaves: int, bins_per_octave: int):
    """(((csr basis, n_fft) per octave, top octave first), the filters' lengths at `sr`) of librosa's CQT for a
    tuning: its filters, scaled as librosa scales each octave's. Kept per tuning (a 0.01-bin histogram's centre, so
    a server sees few): 30 of a minute's 70 ms."""
    n_bins = n_octaves * bins_per_octave
    fmin = C1_HZ * 2.0 ** (tuning / bins_per_octave)
    ratios = 2.0 ** ((0.0 + np.arange(0, bins_per_octave, dtype=float)) / bins_per_octave)
    freqs = np.sort(np.multiply.outer(2.0 ** np.arange(np.ceil(n_bins / bins_per_octave)), ratios).flatten()[:n_bins])
    freqs = freqs * fmin
    alpha = _relative_bandwidth(freqs)
    lengths, filter_cutoff = _wavelet_lengths(freqs, sr, alpha)
    if filter_cutoff > sr / 2.0:
        raise ValueError(f"the CQT's top filter ({filter_cutoff:.0f} Hz) lies above the Nyquist frequency")
    if _early_downsample_count(sr / 2.0, filter_cutoff, hop, n_octaves) > 0:
        raise NotImplementedError("early downsampling: not needed at the analysis rate")
    bases = []
    my_sr, my_hop = sr, hop
    for i in range(n_octaves):
        sl = slice(-bins_per_octave, None) if i == 0 else slice(-bins_per_octave * (i + 1), -bins_per_octave * i)
        fft_basis, n_fft = _filter_fft(my_sr, freqs[sl], alpha[sl])
        fft_basis[:] *= np.sqrt(sr / my_sr)
        fft_basis.data.flags.writeable = False  # shared by the later songs of this tuning
        bases.append((fft_basis, n_fft))
        if my_hop % 2 == 0:
            my_hop //= 2
            my_sr /= 2.0
    lengths.flags.writeable = False
    return tuple(bases), lengths


def _early_downsample_count(nyquist: float, filter_cutoff: float, hop: int, n_octaves: int) -> int:
    """librosa's count of halvings before the CQT (constantq.__early_downsample_count)."""
    count1 = max(0, int(np.ceil(np.log2(nyquist / filter_cutoff)) - 1) - 1)
    twos, x = 0, hop
    while x > 0 and x % 2 == 0:
        twos, x = twos + 1, x // 2
    return min(count1, max(0, twos - n_octaves + 1))


@lru_cache(maxsize=4)
def _cq_to_chroma(n_input: int, bins_per_octave: int, n_chroma: int) -> np.ndarray:
    """librosa.filters.cq_to_chroma(n_input, bins_per_octave=..., n_chroma=...) from C1: float32."""
    n_merge = float(bins_per_octave) / n_chroma
    cq_to_ch = np.repeat(np.eye(n_chroma), int(n_merge), axis=1)
    cq_to_ch = np.roll(cq_to_ch, -int(n_merge // 2), axis=1)
    n_octaves = np.ceil(float(n_input) / bins_per_octave)
    cq_to_ch = np.tile(cq_to_ch, int(n_octaves))[:, :n_input]
    midi_0 = np.mod(12 * (np.log2(C1_HZ) - np.log2(440.0)) + 69, 12)
    roll = int(np.round(midi_0 * (n_chroma / 12.0)))
    out = np.roll(cq_to_ch, roll, axis=0).astype(np.float32)
    out.flags.writeable = False
    return out


def chroma_cens(y: np.ndarray, sr: float, hop: int, n_chroma: int, tuning: float, bins_per_octave: int = 36,
                n_octaves: int = 7, win_len_smooth: int = 41) -> np.ndarray:
    """librosa.feature.chroma_cens(y=y, sr=sr, hop_length=hop, n_chroma=n_chroma, tuning=tuning): (n_chroma,
    frames)."""
    import scipy.ndimage

    C = cqt_magnitude(y, sr, hop, tuning, n_octaves, bins_per_octave)
    chroma = np.einsum("cf,...ft->...ct", _cq_to_chroma(C.shape[-2], bins_per_octave, n_chroma), C, optimize=True)
    chroma[chroma < 0.0] = 0.0
    chroma = _normalize(chroma, 1, -2)
    chroma_quant = np.zeros_like(chroma)
    for step, weight in zip([0.4, 0.2, 0.1, 0.05], [0.25, 0.25, 0.25, 0.25]):
        chroma_quant += (chroma > step) * weight
    win = hann(win_len_smooth + 2, periodic=False)
    win /= np.sum(win)
    cens = scipy.ndimage.convolve(chroma_quant, win.reshape(1, -1), mode="constant")
    return _normalize(cens, 2, -2)
