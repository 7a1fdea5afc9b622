"""librosa music features at exactly the motion frame rate (EDGE's 35-dim baseline set), plus beats and tempo.

Sample rate and hop are chosen so that one hop is one motion frame: 15360 Hz / 512 = 30 frames per second, and
feature frame i describes the audio around time i / 30 s (librosa's centred frames), the time of motion frame i.
Beats, downbeats, meter and tempo come from madmom's downbeat tracker (backend.music.downbeats), which hears the
audio at 44.1 kHz; without madmom, or with MACE_DANCE_BEAT_TRACKER=librosa, from librosa's tempo estimate and DP
tracker as before (no downbeats, meter 0). The features are librosa's, computed by backend.music.librosa_features
(the same numbers, without importing librosa: its import was 1 s of a cold CLI run's critical path).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.music.audio import AudioError, audio_duration, load_audio, resample_mono
from backend.music.beat_tracking import track_beats

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
# Audio decoded beyond each end of a requested section: chroma_cens' lowest CQT filters span ~1.6 s and its
# smoothing 41 frames, so 3 s keeps the section's own frames as the whole song's analysis gives them.
SECTION_MARGIN = 3.0
# bump when this module's output changes: keys the dataset cache (backend.data.dataset) and the analyses the CLI keeps
# (backend.music.analysis_cache). 3: madmom beats, downbeats, meter
FEATURES_VERSION = 3


@dataclass
class MusicFeatures:
    """Per-frame music features at `fps` and the beat grid found in them."""

    features: np.ndarray  # (T, 35) float32: envelope, 20 MFCC, 12 chroma, onset-peak one-hot, beat one-hot
    beat_frames: np.ndarray  # (B,) int frame indices of beats
    onset_frames: np.ndarray  # (O,) int frame indices of onset peaks
    tempo: float  # beats per minute (fractional: over the tracked beats' span); 0 when no beat was found
    duration: float  # seconds of audio analysed
    silent: bool = False
    fps: int = FPS
    downbeat_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # (D,) first beats of bars
    meter: int = 0  # beats per bar from the tracker (3 or 4); 0 when unknown (no beats, or the librosa fallback)
    beat_evidence: Any = None  # downbeats.BeatEvidence: what the tracker heard (for overrides); None without it

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
        evidence = None if self.beat_evidence is None else self.beat_evidence.shifted(start / self.fps)
        return MusicFeatures(self.features[start:stop], keep(self.beat_frames), keep(self.onset_frames), self.tempo,
                             (stop - start) / self.fps, self.silent, self.fps, keep(self.downbeat_frames), self.meter,
                             evidence)


def _librosa_beats(envelope: np.ndarray) -> tuple[np.ndarray, float]:
    """Beat frames and tempo from librosa's tempo estimate and DP tracker (the fallback without madmom)."""
    import librosa

    tempo_est = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=SR, hop_length=HOP))[0])
    # librosa.beat.beat_track's steps: its tempo estimate from start_bpm, then the DP tracker (ported to numpy:
    # importing librosa.beat compiles numba kernels on every run)
    tempo = librosa.feature.tempo(onset_envelope=envelope, sr=SR, hop_length=HOP,
                                  start_bpm=tempo_est if tempo_est > 0 else 120.0)
    tempo = float(np.atleast_1d(tempo)[0])
    return np.asarray(track_beats(envelope, tempo, SR / HOP, tightness=100.0), dtype=int), tempo


def _tracker_wanted() -> bool:
    """Whether the downbeat tracker hears the music (installed, and not turned off for librosa's)."""
    from backend.music import downbeats

    return downbeats.available() and os.environ.get("MACE_DANCE_BEAT_TRACKER", "madmom") != "librosa"


class _Hearing:
    """The downbeat tracker's evidence, heard in a thread beside librosa's features when a second core is free
    (its spectra, network products and numba recurrence release the GIL: 0.8 of the 1.1 s a minute of music took
    one after the other); else heard when asked for."""

    def __init__(self, y: np.ndarray, sr: int):
        import threading

        from backend.cpu_threads import policy

        self._args, self._result, self._error = (y, sr), None, None
        self._thread = None
        if policy().decide() >= 2:
            self._thread = threading.Thread(target=self._run, name="mace-dance-beats", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        from backend.music import downbeats

        try:
            self._result = downbeats.evidence(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._error = exc

    def get(self):
        """The evidence (raises what hearing raised)."""
        if self._thread is None:
            self._run()
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _beats(y: np.ndarray, sr: int, envelope: np.ndarray, mfcc: np.ndarray, n_frames: int,
           hearing: _Hearing | None = None):
    """(beat frames, downbeat frames, meter, bpm, evidence): the downbeat tracker's where madmom is installed (with
    what it heard, for overrides; `hearing` when it has started already), else librosa's (meter 0, no evidence)."""
    from backend.music import downbeats

    if not _tracker_wanted():
        beats, tempo = _librosa_beats(envelope)
        return beats, np.zeros(0, dtype=int), 0, tempo, None
    heard = (hearing or _Hearing(y, sr)).get()
    grid = downbeats.decode(heard.activations, heard.sounding)
    if grid.confidence < downbeats.UNSURE:  # the downbeats barely favour a meter: ask the timbre
        from backend.music.bar_cycle import timbre_meter

        other = timbre_meter(grid_frames(grid.times, grid.positions, n_frames)[0], mfcc, n_frames)
        if other is not None and other != grid.meter:
            grid = downbeats.decode(heard.activations, heard.sounding, meter=other)
    beats, places = grid_frames(grid.times, grid.positions, n_frames)
    found = len(beats) > 0
    return beats, beats[places == 1], grid.meter if found else 0, grid.bpm if found else 0.0, heard


def grid_frames(times: np.ndarray, positions: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames at FPS, places in the bar) of beats at `times` (s) inside [0, n_frames), one beat per frame."""
    frames = np.round(np.asarray(times, dtype=np.float64) * FPS).astype(int)
    keep = (frames >= 0) & (frames < n_frames) & np.r_[True, np.diff(frames) > 0]
    return frames[keep], np.asarray(positions, dtype=int)[keep]


def extract_features(y: np.ndarray, sr: int = SR) -> MusicFeatures:
    """Features of mono samples `y` at `sr` Hz (resampled to 15360 Hz for librosa; the beat tracker hears `y` at
    44.1 kHz, so pass the file's own rate to keep its treble)."""
    from backend.music import librosa_features as lf

    heard, heard_sr = np.asarray(y, dtype=np.float32), sr
    # resample_mono also refuses NaN or infinite samples, at any rate: librosa's STFT refused them, and its port
    # would carry NaN into every feature
    y = resample_mono(heard, sr, SR)
    n_frames = len(y) // HOP
    if n_frames < FPS:
        raise AudioError(f"the audio is {len(y) / SR:.2f} s long; at least 1 s is needed")
    silent = float(np.sqrt(np.mean(y.astype(np.float64) ** 2))) < _SILENCE_RMS
    hearing = _Hearing(heard, heard_sr) if not silent and _tracker_wanted() else None
    # one log-mel spectrogram for the onset envelope and the MFCCs: both take librosa's defaults (n_fft 2048,
    # 128 mels, power 2, power_to_db), so this is what each would compute on its own
    # one STFT (librosa's defaults: n_fft 2048, hop 512, centred) for the mel bands and for chroma_cens' tuning
    # estimate, whose pitch tracker takes exactly this magnitude spectrogram when given none
    magnitude = np.abs(lf.stft(y, 2048, HOP))
    log_mel = lf.power_to_db(lf.melspectrogram(magnitude ** 2, SR))
    envelope = lf.onset_strength(log_mel, HOP)
    # librosa's centred onset envelope lands one frame late: a click at frame 150 peaks at 151 (measured on click
    # tracks, tests/test_music.py). Shift it back so beats sit on the motion frames they belong to.
    envelope = np.concatenate([envelope[LATENCY_FRAMES:], np.zeros(LATENCY_FRAMES, dtype=envelope.dtype)])
    mfcc = lf.mfcc(log_mel, N_MFCC).T
    if silent:
        # chroma normalisation divides by zero energy; silence has no pitch class
        chroma = np.zeros((n_frames, N_CHROMA), dtype=np.float32)
        onsets = np.zeros(0, dtype=int)
        beats = downbeats = np.zeros(0, dtype=int)
        tempo, meter, evidence = 0.0, 0, None
    else:
        tuning = lf.estimate_tuning(magnitude, SR, 2048, 3 * N_CHROMA)
        chroma = lf.chroma_cens(y, SR, HOP, N_CHROMA, tuning).T
        onsets = lf.onset_detect(envelope, SR, HOP)
        beats, downbeats, meter, tempo, evidence = _beats(heard, heard_sr, envelope, mfcc[:n_frames], n_frames,
                                                          hearing)
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
    return MusicFeatures(feats, beats, onsets, tempo if len(beats) else 0.0, n_frames / FPS, silent,
                         downbeat_frames=np.asarray(downbeats, dtype=int), meter=meter, beat_evidence=evidence)


def analyse_file(path: str | Path) -> MusicFeatures:
    """Load an audio file and extract its features."""
    _, file_sr = audio_duration(path)
    return extract_features(load_audio(path, file_sr), file_sr)


def analyse_section(path: str | Path, start: float = 0.0, end: float | None = None,
                    margin: float = SECTION_MARGIN) -> MusicFeatures:
    """Features of [start, end) s of a file (the whole song by default), decoding only the section and `margin`.

    Frame 0 of the result is the section's first frame; beats and tempo come from the decoded stretch, as they came
    from each dance's stretch of its song in training. Memory and time follow the section, not the file.
    """
    from bridge.request import SONG_END_SLACK

    seconds, file_sr = audio_duration(path)
    asked = "the end" if end is None else f"{float(end):g}"
    if end is not None and start < seconds and float(end) > seconds + SONG_END_SLACK:
        raise AudioError(f"{path}: the section ends at {float(end):g} s but the song lasts only {seconds:.1f} s")
    asked_end = end is not None
    end = seconds if end is None else min(float(end), seconds)
    if not 0.0 <= start < end - 1.0 / FPS:
        raise AudioError(f"{path}: the section {start:g}..{asked} s is empty for a {seconds:.1f} s song")
    lo = max(0.0, start - margin)
    hi = min(seconds, end + margin)
    y = load_audio(path, file_sr, start=lo, end=hi)
    heard = lo + len(y) / file_sr
    # a cut-off file whose header still gives the whole song's length: a section asked past what decodes is refused
    # (the whole song, asked without an end, dances what is there)
    if asked_end and heard < end - SONG_END_SLACK - 1.0 / FPS:
        raise AudioError(f"{path}: the section ends at {end:g} s but the file could be decoded only to {heard:.1f} s "
                         f"(its header says {seconds:.1f} s: truncated or damaged); pick a section before that")
    music = extract_features(y, file_sr)
    first = int(round((start - lo) * FPS))
    last = min(music.num_frames, first + int(round((end - start) * FPS)))
    if last - first < 2:
        raise AudioError(f"{path}: the section {start:g}..{end:g} s is too short to dance to")
    return music.slice(first, last)
