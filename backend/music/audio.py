"""Audio loading with clear errors for files a user might hand us."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

MIN_SECONDS = 1.0
MAX_SECONDS = 40 * 60.0  # a 30-minute mix still loads; beyond this the user most likely picked the wrong file


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the problem."""


def load_audio(path: str | Path, sr: int, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Decode wav/flac/ogg/mp3 (anything libsndfile reads), mix to mono and resample to `sr` Hz (float32)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: not a readable audio file (corrupt or unsupported format: {exc})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: the audio is empty")
    seconds = info.frames / info.samplerate
    if seconds < MIN_SECONDS:
        raise AudioError(f"{path}: the audio is {seconds:.2f} s long; at least {MIN_SECONDS:g} s is needed")
    if seconds > max_seconds:
        raise AudioError(f"{path}: the audio is {seconds / 60:.1f} min long; the limit is {max_seconds / 60:.0f} min")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: decoding failed part-way (truncated or corrupt file: {exc})") from None
    if data.shape[0] < MIN_SECONDS * file_sr:
        raise AudioError(f"{path}: only {data.shape[0] / file_sr:.2f} s could be decoded; the file looks truncated")
    return resample_mono(data, file_sr, sr, source=str(path))


def resample_mono(data: np.ndarray, file_sr: int, sr: int, source: str = "audio") -> np.ndarray:
    """Mix (N, channels) or (N,) samples to mono float32 at `sr` Hz."""
    import librosa

    mono = data.mean(axis=1) if data.ndim == 2 else data
    mono = np.asarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{source}: the audio contains NaN or infinite samples")
    if file_sr != sr:
        mono = librosa.resample(mono, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32)
