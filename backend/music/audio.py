"""Audio loading with clear errors for files a user might hand us."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import soundfile as sf

MIN_SECONDS = 1.0
MAX_SECONDS = 40 * 60.0  # a 30-minute mix still loads; beyond this the user most likely picked the wrong file


class AudioError(ValueError):
    """Audio that cannot be used; the message names the file and the problem."""


_STDERR_LOCK = threading.Lock()
# Held back only where a person reads the terminal (the CLI sets it): a server's or worker's fd 2 is its log, which
# must keep every line as it comes (and a native crash's report) rather than hold them while a song decodes.
HOLD_DECODER_NOISE = False
# what libsndfile's mp3 decoder (libmpg123) writes to the process's stderr itself: "[src/libmpg123/id3.c:...]
# warning: ...", "Note: Illegal Audio-MPEG-Header ...", "Note: Trying to resync...", and for a cut-off file whose header
# still gives the whole song's length "Warning: Xing stream size off by more than 1%, ..." (once a read)
_DECODER_NOISE = re.compile(r"^(\[src/libmpg123/|Note: (Illegal|Trying to resync|Hit end)|\[.*mpg123|"
                            r"Warning: Xing stream size off)")


@contextlib.contextmanager
def _decoder_quiet():
    """Hold back what the native decoder prints on fd 2 while it runs: a damaged mp3 made the CLI print raw
    libmpg123 lines before our one sentence. Other lines written meanwhile (another thread's) are passed on."""
    if not HOLD_DECODER_NOISE:
        yield
        return
    with _STDERR_LOCK:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (a daemon with it closed): nothing to hold
            yield
            return
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True)
                        if not _DECODER_NOISE.match(line)]
                data = "".join(kept).encode()
                while data:  # os.write may take part of it
                    data = data[os.write(2, data):]


def audio_duration(path: str | Path, max_seconds: float = MAX_SECONDS) -> tuple[float, int]:
    """(seconds, sample rate) of a file from its header, with the checks every load makes."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        with _decoder_quiet():
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        # libsndfile says "File does not exist or is not a regular file" for a damaged mp3 that does exist
        detail = "" if "does not exist" in str(exc) else f": {exc}"
        raise AudioError(f"{path}: not a readable audio file (corrupt or unsupported format{detail})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: the audio is empty")
    seconds = info.frames / info.samplerate
    if seconds < MIN_SECONDS:
        raise AudioError(f"{path}: the audio is {seconds:.2f} s long; at least {MIN_SECONDS:g} s is needed")
    if seconds > max_seconds:
        raise AudioError(f"{path}: the audio is {seconds / 60:.1f} min long; the limit is {max_seconds / 60:.0f} min")
    return seconds, int(info.samplerate)


def audio_identity(path: str | Path) -> str:
    """A content hash of the file (sha256, hex): the same song under any name, another song under the same one."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def song_meta(path: str | Path, start: float, end: float) -> dict:
    """What a dance file records of the music it was danced to: the song's name and content hash, the section (s)."""
    return {"song": Path(path).name, "song_sha256": audio_identity(path), "start": float(start), "end": float(end)}


def load_audio(path: str | Path, sr: int, max_seconds: float = MAX_SECONDS, start: float = 0.0,
               end: float | None = None) -> np.ndarray:
    """Decode wav/flac/ogg/mp3 (anything libsndfile reads), mix to mono and resample to `sr` Hz (float32).

    With `start`/`end` (seconds) only that span is decoded (libsndfile seeks, sample-exact for mp3 too), so memory
    follows the span, not the file.
    """
    path = Path(path)
    seconds, file_sr = audio_duration(path, max_seconds)
    first = max(0, int(round(start * file_sr)))
    stop = None if end is None else min(int(round(end * file_sr)), int(round(seconds * file_sr)))
    last = int(round(seconds * file_sr)) if stop is None else stop
    try:
        with _decoder_quiet():
            data = _read_halves(path, first, last, stop) if last - first >= SPLIT_DECODE_S * file_sr else None
            if data is None:
                data, file_sr = sf.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"{path}: decoding failed part-way (truncated or corrupt file: {exc})") from None
    whole = first == 0 and end is None
    if whole and data.shape[0] < MIN_SECONDS * file_sr:
        raise AudioError(f"{path}: only {data.shape[0] / file_sr:.2f} s could be decoded; the file looks truncated")
    if not whole and data.shape[0] == 0:
        raise AudioError(f"{path}: nothing could be decoded from {start:.1f} s on (the file is {seconds:.1f} s long)")
    return resample_mono(data, file_sr, sr, source=str(path))


SPLIT_DECODE_S = 30.0  # spans at least this long decode as two halves, side by side when a second core is free


def _read_halves(path: Path, first: int, last: int, stop: int | None) -> np.ndarray | None:
    """Samples first..stop (None: to the end, which the header puts at `last`) of `path`, (N, channels) float32,
    decoded as two halves: in two threads when a second core is free (libsndfile seeks sample-exactly and releases
    the GIL; 0.6 s instead of 1.0-1.6 s for a 10-min mp3), else one after the other. Always the same two halves,
    whatever the load: an mp3 decoder restarted mid-stream may round the rest of the stream differently in the last
    bit (1e-7), and a song must analyse to the same numbers on a busy machine as on an idle one. None when the
    halves do not fit together (a damaged file: the caller decodes it in one go, with one read's errors)."""
    from backend.cpu_threads import side_by_side

    mid = (first + last) // 2

    def part(span: tuple[int, int | None]) -> np.ndarray | None:
        try:
            return sf.read(str(path), start=span[0], stop=span[1], dtype="float32", always_2d=True)[0]
        except (sf.LibsndfileError, RuntimeError):
            return None

    head, tail = side_by_side(part, [(first, mid), (mid, stop)], "mace-dance-decode")
    if head is None or tail is None or len(head) != mid - first or head.shape[1:] != tail.shape[1:]:
        return None
    return np.concatenate([head, tail])


def resample_mono(data: np.ndarray, file_sr: int, sr: int, source: str = "audio") -> np.ndarray:
    """Mix (N, channels) or (N,) samples to mono float32 at `sr` Hz.

    soxr at its high quality, called directly: exactly librosa.resample(res_type="soxr_hq") (length fixed to
    ceil(N * sr / file_sr)), without importing librosa's resampling module.
    """
    import soxr

    mono = data.mean(axis=1) if data.ndim == 2 else data
    mono = np.asarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{source}: the audio contains NaN or infinite samples")
    if file_sr != sr:
        n = int(np.ceil(len(mono) * float(sr) / file_sr))
        out = soxr.resample(mono, file_sr, sr, quality="soxr_hq")
        mono = out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))
    return np.ascontiguousarray(mono, dtype=np.float32)
