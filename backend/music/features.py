"""librosa music features at exactly the motion frame rate (EDGE's 35-dim baseline set), plus beats and tempo.

Sample rate and hop are chosen so that one hop is one motion frame: 15360 Hz / 512 = 30 frames per second, and
feature frame i describes the audio around time i / 30 s (librosa's centred frames), the time of motion frame i.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.music.audio import AudioError, load_audio, resample_mono

FPS = 30
HOP = 512
SR = FPS * HOP  # 15360 Hz
N_MFCC = 20
N_CHROMA = 12
FEATURE_DIM = 1 + N_MFCC + N_CHROMA + 1 + 1  # 35

# Column layout of MusicFeatures.features.
ENVELOPE = slice(0, 1)
MFCC = slice(1, 1 + N_MFCC)
CHROMA = slice(1 + N_MFCC, 1 + N_MFCC + N_CHROMA)
ONSET_PEAKS = 1 + N_MFCC + N_CHROMA
BEATS = ONSET_PEAKS + 1
_SILENCE_RMS = 1e-4
LATENCY_FRAMES = 1


@dataclass
class MusicFeatures:
    """Per-frame music features at `fps` and the beat grid found in them."""

    features: np.ndarray  # (T, 35) float32: envelope, 20 MFCC, 12 chroma, onset-peak one-hot, beat one-hot
    beat_frames: np.ndarray  # (B,) int frame indices of beats
    onset_frames: np.ndarray  # (O,) int frame indices of onset peaks
    tempo: float  # beats per minute; 0 when no beat was found
    duration: float  # seconds of audio analysed
    silent: bool = False
    fps: int = FPS

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def beat_times(self) -> np.ndarray:
        """Beat times in seconds."""
        return self.beat_frames / self.fps

    def slice(self, start: int, stop: int) -> "MusicFeatures":
        """Frames [start, stop) with beat and onset indices re-based."""
        keep = lambda f: f[(f >= start) & (f < stop)] - start  # noqa: E731
        return MusicFeatures(self.features[start:stop], keep(self.beat_frames), keep(self.onset_frames), self.tempo,
                             (stop - start) / self.fps, self.silent, self.fps)


def extract_features(y: np.ndarray, sr: int = SR) -> MusicFeatures:
    """Features of mono samples `y` at `sr` Hz (resampled to 15360 Hz when needed)."""
    import librosa

    if sr != SR:
        y = resample_mono(np.asarray(y, dtype=np.float32), sr, SR)
    y = np.asarray(y, dtype=np.float32)
    n_frames = len(y) // HOP
    if n_frames < FPS:
        raise AudioError(f"the audio is {len(y) / SR:.2f} s long; at least 1 s is needed")
    silent = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) < _SILENCE_RMS
    envelope = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)
    # librosa's centred onset envelope lands one frame late: a click at frame 150 peaks at 151 (measured on click
    # tracks, tests/test_music.py). Shift it back so beats sit on the motion frames they belong to.
    envelope = np.concatenate([envelope[LATENCY_FRAMES:], np.zeros(LATENCY_FRAMES, dtype=envelope.dtype)])
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=N_MFCC, hop_length=HOP).T
    if silent:
        # chroma normalisation divides by zero energy; silence has no pitch class
        chroma = np.zeros((n_frames, N_CHROMA), dtype=np.float32)
        onsets = np.zeros(0, dtype=int)
        beats = np.zeros(0, dtype=int)
        tempo = 0.0
    else:
        chroma = librosa.feature.chroma_cens(y=y, sr=SR, hop_length=HOP, n_chroma=N_CHROMA).T
        onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=SR, hop_length=HOP)
        tempo_est = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=SR, hop_length=HOP))[0])
        tempo, beats = librosa.beat.beat_track(
            onset_envelope=envelope, sr=SR, hop_length=HOP, start_bpm=tempo_est if tempo_est > 0 else 120.0,
            tightness=100,
        )
        tempo = float(np.atleast_1d(tempo)[0])
    envelope = envelope[:n_frames]
    feats = np.zeros((n_frames, FEATURE_DIM), dtype=np.float32)
    feats[:, ENVELOPE] = envelope[:, None]
    feats[:, MFCC] = mfcc[:n_frames]
    feats[:, CHROMA] = chroma[:n_frames]
    onsets = np.asarray(onsets, dtype=int)
    beats = np.asarray(beats, dtype=int)
    onsets, beats = onsets[onsets < n_frames], beats[beats < n_frames]
    feats[onsets, ONSET_PEAKS] = 1.0
    feats[beats, BEATS] = 1.0
    feats = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)
    return MusicFeatures(feats, beats, onsets, tempo if len(beats) else 0.0, n_frames / FPS, silent)


def analyse_file(path: str | Path) -> MusicFeatures:
    """Load an audio file and extract its features."""
    return extract_features(load_audio(path, SR), SR)
