"""The analysis job behind `mace-dance analyse`: features to .npz and a beat plot to .png."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend.music.demo import write_demo_wav
from backend.music.features import ENVELOPE, MusicFeatures, analyse_file


@dataclass
class AnalysisResult:
    """What an analysis wrote."""

    source: str
    features: MusicFeatures
    files: list[Path] = field(default_factory=list)


WINDOW_BARS = 8  # bars the beat plot shows: enough to see the metre, few enough that every beat line stands apart
MAX_WINDOW_BARS = 16
TEMPO_SMOOTH_BEATS = 9  # the smoothed tempo: the mean beat interval over this many, strays left out


@dataclass
class BeatPlotData:
    """What the beat plot draws, in seconds of the analysed audio (tests read it; the PNG is drawn from it)."""

    window: tuple[float, float]  # the close-up's span: from a bar's first beat to the first beat after its last bar
    bars: int  # whole bars in the window
    first_bar: int  # the window's first bar's number (bar 1: the first full bar of the music)
    beats: np.ndarray  # beat times inside the window
    downbeats: np.ndarray  # first beats of bars inside the window (the bar starts drawn bold and numbered)
    bar_numbers: np.ndarray  # the number of each of those bars
    tempo_times: np.ndarray  # (N,) the middle of each beat interval
    local_bpm: np.ndarray  # (N,) 60 / the interval: the tempo beat by beat
    smoothed_bpm: np.ndarray  # (N,) 60 / the mean interval over TEMPO_SMOOTH_BEATS (see tempo_curve)
    tempo: float  # the overall BPM the tracker reports
    meter: int  # beats a bar (0: unknown; bars then counted in fours)
    sections: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, label), e.g. A, B, A'


def _bar_starts(features: MusicFeatures) -> tuple[np.ndarray, int]:
    """First beats of bars (seconds) and beats a bar; without the tracker's downbeats, every 4th beat from the first."""
    beats = features.beat_times
    if len(features.downbeat_frames):
        return np.asarray(features.downbeat_frames) / features.fps, int(features.meter or 4)
    meter = int(features.meter or 4)
    return beats[::meter], meter


def beat_window(features: MusicFeatures, bars: int = WINDOW_BARS, start: float | None = None
                ) -> tuple[tuple[float, float], int, int]:
    """The close-up's span (s), its whole bars and its first bar's number: `bars` bars from the first bar start at or
    after `start` (by default the first full bar of the music, a pickup skipped), moved back to end at the last bar
    when the music is shorter; the whole audio when it has no bars."""
    bars = int(np.clip(bars, 1, MAX_WINDOW_BARS))
    starts, meter = _bar_starts(features)
    beats = features.beat_times
    if len(starts) == 0:
        return (0.0, max(features.duration, 1e-3)), 0, 0
    # a bar's end is the next bar's start; the last bar ends a bar's worth of beats after its start (or the audio)
    period = float(np.median(np.diff(beats))) if len(beats) > 1 else 60.0 / max(features.tempo, 1.0)
    ends = np.append(starts[1:], min(starts[-1] + meter * period, max(features.duration, starts[-1])))
    first = 0 if start is None else int(np.searchsorted(starts, start - 0.5 / features.fps))
    first = int(np.clip(min(first, len(starts) - bars), 0, len(starts) - 1))
    last = min(first + bars, len(starts)) - 1
    return (float(starts[first]), float(ends[last])), last - first + 1, first + 1


def tempo_curve(features: MusicFeatures, smooth_beats: int = TEMPO_SMOOTH_BEATS
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (middles of beat intervals), the local BPM of each interval and the smoothed BPM (60 / the mean of the
    `smooth_beats` intervals around it, intervals off their median by 1.5x or more left out)."""
    beats = features.beat_times
    if len(beats) < 2:
        empty = np.zeros(0)
        return empty, empty, empty
    intervals = np.diff(beats)
    times = beats[:-1] + intervals / 2
    local = 60.0 / np.maximum(intervals, 1e-3)
    half = max(int(smooth_beats) // 2, 0)
    smoothed = np.empty(len(intervals))
    for i in range(len(intervals)):
        near = intervals[max(0, i - half): i + half + 1]
        # beats sit on whole frames, so single intervals alternate (e.g. 12 and 13 frames: 150 and 138 BPM); their
        # mean is the tempo. A missed or doubled beat (an interval near 2x or 0.5x) is left out so it shows no dip.
        typical = np.median(near)
        kept = near[(near > typical / 1.5) & (near < typical * 1.5)]
        smoothed[i] = 60.0 / max(float(kept.mean()), 1e-3)
    return times, local, smoothed


def beat_plot_data(features: MusicFeatures, bars: int = WINDOW_BARS, start: float | None = None,
                   sections: bool = True) -> BeatPlotData:
    """What the beat plot shows: a close-up of `bars` bars (see beat_window) and the tempo over the whole audio."""
    (t0, t1), n_bars, first_bar = beat_window(features, bars, start)
    starts, meter = _bar_starts(features)
    eps = 0.5 / features.fps
    inside = lambda x: x[(x >= t0 - eps) & (x < t1 - eps)]  # noqa: E731 - the window's end is the next bar's start
    downbeats = inside(starts)
    numbers = np.searchsorted(starts, downbeats - eps) + 1
    times, local, smoothed = tempo_curve(features)
    spans: list[tuple[float, float, str]] = []
    if sections and not features.silent and features.num_frames:
        from backend.music.structure import song_sections

        fps = features.fps
        spans = [(s.start / fps, s.end / fps, s.label) for s in song_sections(features)]
    return BeatPlotData((t0, t1), n_bars, first_bar, inside(features.beat_times), downbeats, numbers, times, local,
                        smoothed, float(features.tempo), int(features.meter), spans)


def _meter_words(data: BeatPlotData) -> str:
    """'4 beats a bar' (or nothing when the tracker did not say)."""
    return f", {data.meter} beats a bar" if data.meter else ""


def plot_beats(features: MusicFeatures, path: Path, title: str, true_beats: np.ndarray | None = None,
               bars: int = WINDOW_BARS, start: float | None = None, speed: np.ndarray | None = None,
               motion_beats: np.ndarray | None = None, note: str = "") -> BeatPlotData:
    """The beat plot as a PNG: a close-up of `bars` bars (onset strength, beats, bar starts bold and numbered; with
    `speed` a dance's mean joint speed and its `motion_beats` frames too) above the tempo over the whole audio;
    `note` ends the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = beat_plot_data(features, bars, start)
    fig, (ax, at) = plt.subplots(2, 1, figsize=(12, 6.6), dpi=100, gridspec_kw={"height_ratios": [3, 2]})
    _close_up(ax, features, data, true_beats, speed, motion_beats)
    t0, t1 = data.window
    span = f"bars {data.first_bar}-{data.first_bar + data.bars - 1}" if data.bars else "no bars found"
    ax.set_title(f"{title}: {data.tempo:.1f} BPM{_meter_words(data)}; {span} ({t0:.1f}-{t1:.1f} s){note}", pad=16)
    _tempo_panel(at, features, data)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return data


def _close_up(ax, features: MusicFeatures, data: BeatPlotData, true_beats: np.ndarray | None,
              speed: np.ndarray | None, motion_beats: np.ndarray | None) -> None:
    """The close-up panel: bars fill the width, so a beat line is ~1/35 of it apart."""
    t0, t1 = data.window
    fps = features.fps
    lo, hi = int(np.floor(t0 * fps)), int(np.ceil(t1 * fps)) + 1
    env = features.features[lo:hi, ENVELOPE][:, 0]
    t = np.arange(lo, lo + len(env)) / fps
    ax.fill_between(t, 0, env, color="#bbbbbb", lw=0, label="onset strength (music)")
    for i, bt in enumerate(data.beats):
        ax.axvline(bt, color="#d62728", lw=0.8, alpha=0.55, label="beat" if i == 0 else None)
    top = float(env.max()) if len(env) else 1.0
    for i, (bt, number) in enumerate(zip(data.downbeats, data.bar_numbers)):
        ax.axvline(bt, color="#8b0000", lw=2.4, label="bar start (number above)" if i == 0 else None)
        ax.text(bt, 1.02, f"{number}", transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=9,
                color="#8b0000", fontweight="bold")
    if true_beats is not None:
        shown = true_beats[(true_beats >= t0) & (true_beats <= t1)]
        ax.scatter(shown, np.full(len(shown), 0.05 * top), marker="^", color="#1f77b4", s=28, zorder=3,
                   label="true beat")
    ax.set_ylabel("onset strength")
    ax.set_ylim(0, max(top, 1e-6) * 1.05)
    handles = ax.get_legend_handles_labels()
    if speed is not None:
        a2 = ax.twinx()
        ts = np.arange(len(speed)) / fps
        keep = (ts >= t0) & (ts <= t1)
        a2.plot(ts[keep], speed[keep], color="#222222", lw=1.2, label="dance: mean joint speed")
        if motion_beats is not None:
            mb = np.asarray(motion_beats, dtype=int)
            mb = mb[(mb / fps >= t0) & (mb / fps <= t1) & (mb < len(speed))]
            a2.scatter(mb / fps, speed[mb], color="#1f77b4", zorder=4, s=18, label="dance's beat (speed minimum)")
        a2.set_ylabel("joint speed (m/s)")
        a2.set_ylim(0, max(float(speed[keep].max()) if keep.any() else 1.0, 1e-3) * 1.1)
        more = a2.get_legend_handles_labels()
        handles = (handles[0] + more[0], handles[1] + more[1])
    # below the axis, in one row: inside it would hide the beats it explains
    ax.legend(*handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(handles[0]), fontsize=8,
              frameon=False)
    margin = 0.015 * (t1 - t0)  # so the first bar's line and number are not cut by the frame
    ax.set_xlim(t0 - margin, t1 + margin)
    ax.set_xlabel("time (s)")


def _tempo_panel(at, features: MusicFeatures, data: BeatPlotData) -> None:
    """The whole audio: where the tempo drifts, the song's sections, and where the close-up lies."""
    t0, t1 = data.window
    duration = max(features.duration, 1e-3)
    for i, (s0, s1, label) in enumerate(data.sections):
        at.axvspan(s0, s1, color="#1f77b4" if i % 2 else "#ff7f0e", alpha=0.08, lw=0)
        at.text((s0 + s1) / 2, 0.97, label, transform=at.get_xaxis_transform(), ha="center", va="top", fontsize=9,
                color="#555555")
    if len(data.tempo_times):
        at.scatter(data.tempo_times, data.local_bpm, s=4, color="#d62728", alpha=0.35, lw=0,
                   label="beat by beat (60 / interval)")
        at.plot(data.tempo_times, data.smoothed_bpm, color="#d62728", lw=1.6,
                label=f"smoothed (over {TEMPO_SMOOTH_BEATS} beats)")
    if data.tempo > 0:
        at.axhline(data.tempo, color="#333333", lw=1, ls="--", label=f"overall {data.tempo:.1f} BPM")
        # the smoothed curve decides the range: a stray interval (a dropped beat: half the BPM) must not squash it
        values = np.append(data.smoothed_bpm, data.tempo)
        at.set_ylim(min(values.min(), data.tempo) * 0.9, max(values.max(), data.tempo) * 1.1)
    at.axvspan(t0, t1, ymin=0, ymax=0.04, color="#8b0000", alpha=0.8, lw=0, label="close-up above")
    at.set_xlim(0, duration)
    at.set_xlabel("time (s)")
    at.set_ylabel("tempo (BPM)")
    at.set_title("tempo from start to end" + (", with the music's sections" if data.sections else ""), fontsize=10)
    at.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=8, frameon=False)


def analyse_to_folder(audio: Path | None, out: Path, bars: int = WINDOW_BARS, plot_start: float | None = None
                      ) -> AnalysisResult:
    """Analyse `audio` (or the built-in demo song) and write features.npz and beats.png (`bars` bars from
    `plot_start` s, see beat_window) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    true_beats = None
    files: list[Path] = []
    if audio is None:
        audio = out / "demo_song.wav"
        song = write_demo_wav(audio)
        true_beats = song.beat_times
        files.append(audio)
        title = f"built-in demo song ({song.bpm:g} BPM)"
    else:
        title = Path(audio).name
    feats = analyse_file(audio)
    npz = out / "music_features.npz"
    np.savez(npz, features=feats.features, beat_frames=feats.beat_frames, onset_frames=feats.onset_frames,
             tempo=np.float64(feats.tempo), fps=np.int32(feats.fps), downbeat_frames=feats.downbeat_frames,
             meter=np.int32(feats.meter))
    files.append(npz)
    plot_beats(feats, out / "beats.png", title, true_beats, bars=bars, start=plot_start)
    files.append(out / "beats.png")
    return AnalysisResult(str(audio), feats, files)
