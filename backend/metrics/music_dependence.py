"""Does a dance follow its own song? Tempo lock and own-vs-other-song scoring (spec, metrics.md section 10).

A generator that ignores its music still scores a fair BAS (beats are frequent). Scoring every dance against its own
song and against another song of the set (dance i vs song i+1) and taking the ratio of the means shows whether it
listens. Tempo lock asks how much of the motion's rhythm sits at the song's beat period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from backend.metrics.beats import beat_align_score, motion_beats

LOCK_FPS = 60.0
BAND = (0.2, 6.0)  # Hz
MULTIPLES = (1 / 3, 1 / 2, 1.0, 2.0)
TOLERANCE = 0.04


def song_tempo(y: np.ndarray, sr: int) -> float:
    """Tempo (bpm) of an audio span as the spec asks: librosa.beat.beat_track at 22050 Hz."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if sr != 22050:
        y = librosa.resample(y, orig_sr=sr, target_sr=22050)
    tempo, _ = librosa.beat.beat_track(y=y, sr=22050)
    return float(np.atleast_1d(tempo)[0])


def _speed_spectrum(joints60: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(power, frequency) of the mean joint speed within BAND, as section 10 step 1-2; None when it has none."""
    P = np.asarray(joints60, dtype=np.float64)
    if len(P) < 8:
        return None
    s = np.linalg.norm(P[1:] - P[:-1], axis=-1).mean(axis=1)
    s = gaussian_filter1d(s, 2.0)
    s = s - s.mean()
    power = np.abs(np.fft.rfft(s * np.hanning(len(s)))) ** 2
    f = np.fft.rfftfreq(len(s), d=1.0 / LOCK_FPS)
    band = (f > BAND[0]) & (f < BAND[1])
    if power[band].sum() <= 0:
        return None
    return power[band], f[band]


def _near(f: np.ndarray, tempo: float, m: float) -> np.ndarray:
    """Frequencies within TOLERANCE of m beats per beat period at `tempo` bpm (section 10 step 4)."""
    return np.abs(f - m * tempo / 60.0) <= TOLERANCE * m * tempo / 60.0


def tempo_lock(joints60: np.ndarray, tempo: float) -> float:
    """Share of the (0.2, 6) Hz power of the mean joint speed within 4 % of m / T, m in {1/3, 1/2, 1, 2}."""
    spec = _speed_spectrum(joints60) if tempo > 0 else None
    if spec is None:
        return float("nan")
    power, f = spec
    near = np.any([_near(f, tempo, m) for m in MULTIPLES], axis=0)
    return float(power[near].sum() / power.sum())


def lock_shares(joints60: np.ndarray, tempo: float) -> np.ndarray:
    """(4,) the tempo lock split by multiple: share of the band's power within 4 % of m / T for each m of MULTIPLES.

    Where a dance keeps its rhythm: real dancers in the two-beat step cycle (1/2) or the three-beat bar (1/3),
    hardly ever on every beat.
    """
    spec = _speed_spectrum(joints60) if tempo > 0 else None
    if spec is None:
        return np.full(len(MULTIPLES), np.nan)
    power, f = spec
    return np.array([power[_near(f, tempo, m)].sum() / power.sum() for m in MULTIPLES])


@dataclass
class SongRef:
    """What a dance is scored against: a song's beat frames (30 fps, from the dance's first frame) and tempo."""

    beat_frames: np.ndarray
    tempo: float


@dataclass
class DependenceRow:
    """Mean BAS and tempo lock of dances against their own songs and against other songs, and the ratios."""

    name: str
    n: int
    bas_own: float
    bas_other: float
    lock_own: float
    lock_other: float

    @property
    def bas_ratio(self) -> float:
        return self.bas_own / self.bas_other if self.bas_other > 0 else float("nan")

    @property
    def lock_ratio(self) -> float:
        return self.lock_own / self.lock_other if self.lock_other > 0 else float("nan")


def dependence(name: str, motions, songs: list[SongRef], seeds: int = 1) -> DependenceRow:
    """Score `motions` (clip-major: `seeds` dances per song, in the order of `songs`) against their own song and
    against the next song in the list (the last against the first)."""
    if len(motions) != len(songs) * seeds:
        raise ValueError(f"{len(motions)} dances for {len(songs)} songs x {seeds} seeds")
    bas_own, bas_other, lock_own, lock_other = [], [], [], []
    for i, motion in enumerate(motions):
        song, other = songs[i // seeds], songs[(i // seeds + 1) % len(songs)]
        j30 = motion.resample(30.0).joint_positions()
        j60 = motion.resample(LOCK_FPS).joint_positions()
        beats = motion_beats(j30)
        n = len(j30)
        bas_own.append(beat_align_score(song.beat_frames[song.beat_frames < n], beats))
        bas_other.append(beat_align_score(other.beat_frames[other.beat_frames < n], beats))
        lock_own.append(tempo_lock(j60, song.tempo))
        lock_other.append(tempo_lock(j60, other.tempo))
    m = lambda v: float(np.nanmean(v))  # noqa: E731
    return DependenceRow(name, len(motions), m(bas_own), m(bas_other), m(lock_own), m(lock_other))


def format_lock_shares(names: list[str], songs: list[SongRef], real, generated, seeds: int = 1):
    """A rich table: per song, the real dance's and the generated dances' (mean over seeds) lock_shares."""
    from rich.table import Table

    if len(generated) != len(songs) * seeds or len(real) != len(songs):
        raise ValueError(f"{len(real)} real and {len(generated)} generated dances for {len(songs)} songs x {seeds} "
                         f"seeds")
    table = Table(title="where the rhythm sits: share of speed power at 1/3, 1/2, 1, 2 cycles per beat (own song)")
    table.add_column("song (tempo)")
    for who in ("real", "generated"):
        for m in ("1/3", "1/2", "1", "2"):
            table.add_column(f"{who} {m}", justify="right")
    for i, (name, song) in enumerate(zip(names, songs)):
        r = lock_shares(real[i].resample(LOCK_FPS).joint_positions(), song.tempo)
        g = np.nanmean([lock_shares(m.resample(LOCK_FPS).joint_positions(), song.tempo)
                     for m in generated[i * seeds:(i + 1) * seeds]], axis=0)
        table.add_row(f"{name} ({song.tempo:.0f})", *(f"{v:.3f}" for v in (*r, *g)))
    return table


def format_dependence(rows: list[DependenceRow]):
    """A rich table of own/other BAS and tempo lock."""
    from rich.table import Table

    table = Table(title="music dependence: each dance against its own song and against the next song (section 10)")
    for col in ("row", "N", "BAS own", "BAS other", "BAS own/other", "tempo lock own", "other", "lock own/other"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r.name, str(r.n), f"{r.bas_own:.4f}", f"{r.bas_other:.4f}", f"{r.bas_ratio:.2f}x",
                      f"{r.lock_own:.4f}", f"{r.lock_other:.4f}", f"{r.lock_ratio:.2f}x")
    return table
