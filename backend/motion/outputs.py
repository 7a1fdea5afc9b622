"""What `mace-dance generate` writes: the dance (.npz, .bvh), a skeleton strip and a beat-alignment plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backend.metrics.beats import beat_align_score, motion_beats
from backend.music.features import MusicFeatures
from rigs.bvh import write_bvh
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton


def plot_strip(motion: Motion, path: Path, frames: int = 8) -> Path:
    """Front views of the skeleton at evenly spaced frames, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sk = smpl_skeleton()
    joints = motion.joint_positions()
    picks = np.linspace(0, motion.num_frames - 1, frames).round().astype(int)
    fig, axes = plt.subplots(1, frames, figsize=(2 * frames, 3.4), dpi=100)
    for ax, f in zip(np.atleast_1d(axes), picks):
        p = joints[f]
        for j, parent in enumerate(sk.parents):
            if parent < 0:
                continue
            name = sk.joint_names[j]
            color = "#1f77b4" if name.startswith("left") else "#d62728" if name.startswith("right") else "#444444"
            ax.plot(p[[parent, j], 0], p[[parent, j], 1], color=color, lw=2)
        cx = p[0, 0]
        ax.set_xlim(cx - 0.9, cx + 0.9)
        ax.set_ylim(-0.05, 2.0)
        ax.set_aspect("equal")
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_title(f"{f / motion.fps:.1f} s", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("generated dance (front view; left side blue)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_beat_alignment(motion: Motion, music: MusicFeatures, path: Path) -> tuple[Path, float]:
    """The music's beat plot (8 bars close up, the tempo over the section; backend.music.report.plot_beats) with the
    dance's mean joint speed and motion beats (its minima) in the close-up; returns the path and the BAS."""
    from backend.music.report import plot_beats

    joints = motion.joint_positions()
    speed = np.linalg.norm(joints[1:] - joints[:-1], axis=-1).mean(axis=1) * motion.fps
    mb = motion_beats(joints)
    bas = beat_align_score(music.beat_frames, mb)
    plot_beats(music, path, "the dance on its music", speed=speed, motion_beats=mb, note=f"; BAS {bas:.3f}")
    return path, bas


def write_outputs(motion: Motion, music: MusicFeatures, out: Path, name: str = "dance",
                  plots: bool = True, meta: dict | None = None) -> list[Path]:
    """Write name.npz and name.bvh into `out`, then (with `plots`) name_preview.png and name_beats.png.

    The dance files come first: the plots (matplotlib, ~1.5 s) are previews, never what a caller waits for. `meta`
    (the song and section, backend.music.audio.song_meta) is stored in the .npz: `comp` and `video` read it.
    """
    out.mkdir(parents=True, exist_ok=True)
    files = [motion.save_npz(out / f"{name}.npz", meta=meta), write_bvh(out / f"{name}.bvh", motion)]
    if plots:
        files.append(plot_strip(motion, out / f"{name}_preview.png"))
        files.append(plot_beat_alignment(motion, music, out / f"{name}_beats.png")[0])
    return files
