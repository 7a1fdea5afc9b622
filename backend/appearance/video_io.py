"""Writing rendered frames: numbered PNGs and an MP4 with the song muxed in (imageio-ffmpeg's bundled ffmpeg)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np


def write_frames(frames: np.ndarray, folder: Path, prefix: str = "frame") -> list[Path]:
    """frame_00001.png, ... (1-based, as Blender image sequences expect)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames, start=1):
        p = folder / f"{prefix}_{i:05d}.png"
        Image.fromarray(f).save(p)
        paths.append(p)
    return paths


def write_mp4(frames: np.ndarray, path: Path, fps: float, audio: Path | None = None, audio_start: float = 0.0) -> Path:
    """H.264 MP4 of the frames; with `audio`, the song from `audio_start` s is muxed in and cut to the video."""
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    silent = path.with_name(path.stem + ".video.mp4") if audio else path
    writer = imageio_ffmpeg.write_frames(str(silent), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, output_params=["-loglevel", "error"])
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    if audio:
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        done = subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(silent), "-ss", f"{audio_start:.3f}",
                               "-i", str(audio), "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
                               "-shortest", str(path)], capture_output=True, text=True)
        if done.returncode != 0:  # one line, naming the song; the silent video stays for the user
            said = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise OSError(f"{audio}: ffmpeg could not put the song under the video ({said}); the video without "
                          f"sound is {silent}")
        silent.unlink()
    return path
