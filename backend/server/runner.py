"""What a job does: decode the submitted audio, run the Motion Expert, return the motion as protocol arrays."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from backend.server.jobs import Job
from bridge.protocol import motion_arrays


class MotionRunner:
    """Runs `motion` jobs with one Motion Expert loaded lazily and kept for later jobs."""

    def __init__(self, model_dir: Path | None = None):
        self.model_dir = model_dir
        self._expert = None

    def expert(self):
        if self._expert is None:
            from backend.motion.generate import MotionExpert

            self._expert = MotionExpert.load(self.model_dir)
        return self._expert

    def __call__(self, job: Job, inputs: dict[str, np.ndarray], progress: Callable[[str, int, int], None],
                 cancelled: Callable[[], bool]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from backend.motion.sampling import SampleOptions
        from backend.music.features import FPS, analyse_file

        if job.kind != "motion":
            raise ValueError(f"this server runs 'motion' jobs, not {job.kind!r}")
        audio = inputs.get("audio")
        if audio is None or audio.dtype != np.uint8 or audio.ndim != 1 or audio.size == 0:
            raise ValueError("a motion job needs the audio file's bytes as a uint8 array named 'audio'")
        opts = job.options
        suffix = Path(str(opts.get("audio_name", "song.wav"))).suffix[:8] or ".wav"
        progress("music", 0, 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"song{suffix}"
            path.write_bytes(audio.tobytes())
            music = analyse_file(path)
        start = float(opts.get("start", 0.0))
        end = opts.get("end")
        first = int(round(start * FPS))
        last = music.num_frames if end is None else min(music.num_frames, int(round(float(end) * FPS)))
        if not 0 <= first < last - 1:
            raise ValueError(f"the section {start}..{end} s is empty for a {music.duration:.1f} s song")
        music = music.slice(first, last)
        options = SampleOptions(steps=int(opts.get("steps", 20)), beta=float(opts.get("beta", 0.5)),
                                seed=int(opts.get("seed", 0)))
        options.validate()
        progress("music", 1, 1)
        motion = self.expert().generate(music, options, callback=lambda i, n: progress("denoise", i, n) and None,
                                        lock_feet=bool(opts.get("lock_feet", True)))
        fields, arrays = motion_arrays(motion)
        fields["beat_frames"] = music.beat_frames.tolist()
        fields["tempo"] = music.tempo
        return fields, arrays
