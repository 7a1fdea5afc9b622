"""A built-in demo song, synthesised from code so that the repository ships no recorded music.

Drums (kick on every beat, snare on 2 and 4, closed hi-hat on eighths), a bass line and sustained chords over a
I-V-vi-IV progression in C major, at a known tempo. Deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEMO_BPM = 120.0
DEMO_SECONDS = 20.0
DEMO_SR = 22050

# Chord roots (MIDI) and triads of C - G - Am - F, one chord per bar of four beats.
_PROGRESSION = [(48, (60, 64, 67)), (43, (59, 62, 67)), (45, (60, 64, 69)), (41, (60, 65, 69))]


@dataclass
class DemoSong:
    """Samples and the ground truth the song was built with."""

    samples: np.ndarray  # (N,) float32 mono
    sr: int
    bpm: float
    beat_times: np.ndarray  # seconds of every beat (kick hits)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def synthesize_demo(seconds: float = DEMO_SECONDS, bpm: float = DEMO_BPM, sr: int = DEMO_SR, seed: int = 0) -> DemoSong:
    """Render the demo song."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    out = np.zeros(n, dtype=np.float64)
    beat = 60.0 / bpm
    n_beats = int(np.floor(seconds / beat + 1e-9))
    beat_times = np.arange(n_beats) * beat

    def add(at: float, sig: np.ndarray) -> None:
        i = int(round(at * sr))
        j = min(n, i + len(sig))
        if i < n:
            out[i:j] += sig[: j - i]

    t_kick = np.arange(int(0.25 * sr)) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t_kick * 30)) / sr) * np.exp(-t_kick * 12)
    t_snare = np.arange(int(0.18 * sr)) / sr
    snare_noise = rng.standard_normal(len(t_snare))
    snare = (0.6 * snare_noise + 0.5 * np.sin(2 * np.pi * 185 * t_snare)) * np.exp(-t_snare * 25)
    t_hat = np.arange(int(0.05 * sr)) / sr
    hat_noise = np.diff(rng.standard_normal(len(t_hat) + 1))  # differenced noise: mostly high frequencies
    hat = hat_noise * np.exp(-t_hat * 80) * 0.25

    for b, bt in enumerate(beat_times):
        add(bt, kick * 0.9)
        if b % 2 == 1:
            add(bt, snare * 0.5)
        add(bt, hat)
        add(bt + beat / 2, hat * 0.7)

    for bar in range(int(np.ceil(n_beats / 4))):
        root, triad = _PROGRESSION[bar % len(_PROGRESSION)]
        start = bar * 4 * beat
        length = 4 * beat
        t = np.arange(int(length * sr)) / sr
        pad = sum(np.sin(2 * np.pi * _midi_hz(note) * t) for note in triad) / 3
        pad *= np.minimum(1.0, t / 0.05) * np.exp(-t * 0.4) * 0.18
        add(start, pad)
        for eighth in range(8):
            t_b = np.arange(int(beat / 2 * sr)) / sr
            f = _midi_hz(root + (12 if eighth % 4 == 3 else 0))
            phase = 2 * np.pi * f * t_b
            bass = (np.sin(phase) + 0.3 * np.sin(2 * phase)) * np.exp(-t_b * 6) * 0.35
            add(start + eighth * beat / 2, bass)

    out /= max(np.abs(out).max(), 1e-9) / 0.9
    return DemoSong(out.astype(np.float32), sr, bpm, beat_times[beat_times < seconds])


def write_demo_wav(path: str | Path, **kwargs) -> DemoSong:
    """Render the demo song to a 16-bit WAV file."""
    import soundfile as sf

    song = synthesize_demo(**kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), song.samples, song.sr, subtype="PCM_16")
    return song
