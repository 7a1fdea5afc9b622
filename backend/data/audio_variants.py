"""Other recordings of the train songs: each song's audio re-pitched and re-equalised, its features analysed anew.

Why (issue 12): the Motion Expert learned its Latin train dances' arm styling as belonging to their recordings. Played
a train cha-cha or rumba 1.5 semitones higher or lower, the shipped model drops most of the arms it dances to the
original (hands' vertical energy as a share of the real dance's: DANCE_C_2 0.41 -> 0.08, DANCE_R_4 0.84 -> 0.39 and
0.34; scripts/probe_recordings.py, weights/me/README.md), which is what a new song of the style gets too. The
feature-level disguise (backend.motion.windows.disguise_music) cannot emulate this: a real pitch shift moves the
harmonics across the mel bands, which is no constant offset of the MFCCs, and the network reads its songs off exactly
those. So the audio itself is changed and analysed with the product's own feature extraction; a share of the training
windows (AugmentConfig.p_variant) hears one of these variants instead of the original.

A variant is a pitch shift of a few semitones (librosa's phase vocoder; tempo and timing unchanged, so the dance stays
aligned), a smooth equaliser (level, tilt and two bumps over log frequency) and a sub-frame delay (the analysis
frames fall elsewhere in the audio, as they do for any new recording). Variants are cached beside the converted
dances, keyed by the song and the variant's parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from backend.music.features import HOP, SR, MusicFeatures, extract_features

VARIANTS_VERSION = 1  # bump when the rendering below changes
SEMITONES = (-3, -2, -1, 1, 2, 3)
EQ_DB = 6.0  # std of the equaliser's level (dB); tilt and bumps at half of it, as the feature-level disguise


@dataclass(frozen=True)
class AudioVariant:
    """How one variant of a song is rendered."""

    semitones: float  # whole semitones in training (SEMITONES); probes use others
    eq: tuple[float, float, float, float]  # dB weights of cos(pi j u), j = 0..3, u = log-frequency position in [0, 1]
    delay: int  # samples of silence put in front (less than a hop), trimmed again at the end

    @property
    def key(self) -> str:
        """A short stable name for the cache."""
        text = json.dumps(asdict(self), sort_keys=True) + f"v{VARIANTS_VERSION}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def draw_variants(count: int, seed: int) -> list[AudioVariant]:
    """`count` variants with distinct pitch shifts where possible (seeded: the same song gets the same variants)."""
    rng = np.random.default_rng(seed)
    shifts = rng.permutation(SEMITONES)
    out = []
    for i in range(count):
        eq = rng.normal(0.0, EQ_DB, 4) * np.array([1.0, 0.5, 0.5, 0.5])
        out.append(AudioVariant(int(shifts[i % len(shifts)]), tuple(float(round(e, 3)) for e in eq),
                                int(rng.integers(0, HOP))))
    return out


def equalise(y: np.ndarray, sr: int, eq: tuple[float, float, float, float]) -> np.ndarray:
    """`y` through a smooth gain curve over log frequency (50 Hz .. Nyquist); zero-phase, applied in one long FFT."""
    spec = np.fft.rfft(y.astype(np.float64))
    freq = np.fft.rfftfreq(len(y), 1.0 / sr)
    u = np.clip(np.log(np.maximum(freq, 50.0) / 50.0) / np.log((sr / 2) / 50.0), 0.0, 1.0)
    gain_db = sum(w * np.cos(np.pi * j * u) for j, w in enumerate(eq))
    return np.fft.irfft(spec * 10.0 ** (gain_db / 20.0), n=len(y)).astype(np.float32)


def render(y: np.ndarray, variant: AudioVariant, sr: int = SR) -> np.ndarray:
    """The variant of mono `y` at `sr`: same length and timing (up to `delay` samples), other pitch and sound."""
    import librosa

    out = np.asarray(y, dtype=np.float32)
    if variant.semitones:
        out = librosa.effects.pitch_shift(out, sr=sr, n_steps=float(variant.semitones))
    out = equalise(out, sr, variant.eq)
    out = np.concatenate([np.zeros(variant.delay, dtype=np.float32), out])[: len(y)]
    peak = float(np.abs(out).max()) if len(out) else 0.0
    return out / peak * 0.99 if peak > 0.99 else out  # no clipping after a boost


def variant_features(segment: np.ndarray, frames: int, variant: AudioVariant) -> MusicFeatures:
    """Music features of a dance's audio `segment` (at SR) as the variant sounds, cut to the dance's `frames`."""
    music = extract_features(render(segment, variant), SR)
    if music.num_frames < frames:
        raise ValueError(f"a variant gave {music.num_frames} frames for a {frames}-frame dance")
    return music.slice(0, frames)


def _save(music: MusicFeatures, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")  # torchrun ranks may render the same variant at once
    with open(tmp, "wb") as fh:
        np.savez(fh, features=music.features, beat_frames=music.beat_frames, onset_frames=music.onset_frames,
                 tempo=np.float64(music.tempo), duration=np.float64(music.duration))
    tmp.replace(path)


def _load(path: Path) -> MusicFeatures:
    with np.load(path) as d:
        return MusicFeatures(d["features"], d["beat_frames"], d["onset_frames"], float(d["tempo"]),
                             float(d["duration"]))


def clip_variants(dataset, clip, count: int) -> list[MusicFeatures]:
    """`count` variants of a dataset clip's music, rendered on first use and cached (backend.data.dataset)."""
    from backend.data import tang2018
    from backend.music.audio import load_audio

    if count <= 0:
        return []
    folder = dataset.root / clip.name
    seed = int(hashlib.sha256(clip.name.encode()).hexdigest()[:8], 16)
    out, segment = [], None
    for variant in draw_variants(count, seed):
        path = dataset.cache.parent / "audio_variants" / f"{clip.name}-{variant.key}.npz"
        if path.is_file():
            music = _load(path)
        else:
            if segment is None:  # the same stretch of the song the dance's own features were made from
                path_audio, start_s = tang2018.audio_span(folder)
                audio = load_audio(path_audio, SR)
                start = int(round(start_s * SR))
                segment = audio[start: start + (clip.motion.num_frames + 1) * HOP]
            music = variant_features(segment, clip.music.num_frames, variant)
            _save(music, path)
        out.append(music)
    return out
