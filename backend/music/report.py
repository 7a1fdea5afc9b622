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


def plot_beats(features: MusicFeatures, path: Path, title: str, true_beats: np.ndarray | None = None) -> Path:
    """Onset envelope with detected beats (and, when known, the true ones) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(features.num_frames) / features.fps
    env = features.features[:, ENVELOPE][:, 0]
    fig, ax = plt.subplots(figsize=(12, 3.2), dpi=100)
    ax.plot(t, env, lw=0.8, color="#333333", label="onset strength")
    for i, bt in enumerate(features.beat_times):
        ax.axvline(bt, color="#d62728", lw=1.0, alpha=0.8, label="detected beat" if i == 0 else None)
    for i, bt in enumerate(np.asarray(features.downbeat_frames) / features.fps):
        ax.axvline(bt, color="#d62728", lw=2.5, alpha=0.9, label="first beat of a bar" if i == 0 else None)
    if true_beats is not None:
        for i, bt in enumerate(true_beats):
            ax.axvline(bt, color="#1f77b4", lw=2.5, alpha=0.3, label="true beat" if i == 0 else None)
    ax.set_xlabel("time (s)")
    meter = f", {features.meter} beats a bar" if features.meter else ""
    ax.set_title(f"{title}: {features.tempo:.1f} BPM{meter}, {len(features.beat_frames)} beats")
    ax.set_xlim(0, max(t[-1], 1e-3))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def analyse_to_folder(audio: Path | None, out: Path) -> AnalysisResult:
    """Analyse `audio` (or the built-in demo song) and write features.npz and beats.png into `out`."""
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
    files.append(plot_beats(feats, out / "beats.png", title, true_beats))
    return AnalysisResult(str(audio), feats, files)
