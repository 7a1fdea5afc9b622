"""What a job does: decode the submitted audio, run the Motion Expert, return the motion as protocol arrays."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from backend.server.analysis_memo import AnalysisMemo, song_key
from backend.server.jobs import Job
from bridge.protocol import motion_arrays

log = logging.getLogger(__name__)


class MotionRunner:
    """Runs `motion` jobs with one Motion Expert loaded lazily and kept for later jobs."""

    def __init__(self, model_dir: Path | None = None):
        from backend.cpu_threads import policy

        self.model_dir = model_dir
        self._experts: dict = {}
        self.memo = AnalysisMemo()  # another take of a song just danced skips its analysis
        policy().watch()  # a long-lived process: each job's threads fit the load of the moment it runs

    def expert(self, style: str = "auto"):
        """The Motion Expert for a job's style (the shipped style model when one is asked of the default)."""
        from backend.motion.checkpoint import model_for
        from backend.motion.generate import MotionExpert

        folder = model_for(style, self.model_dir)
        if folder not in self._experts:
            self._experts[folder] = MotionExpert.load(folder)
        return self._experts[folder]

    def __call__(self, job: Job, inputs: dict[str, np.ndarray], progress: Callable[[str, int, int], None],
                 cancelled: Callable[[], bool]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from backend.motion.pipeline import dance
        from backend.music.overrides import music_for
        from bridge.request_wire import from_wire

        if job.kind != "motion":
            raise ValueError(f"this server runs 'motion' jobs, not {job.kind!r}")
        options = {k: v for k, v in job.options.items() if k != "audio_name"}
        request = from_wire(options, {k: v for k, v in inputs.items() if k != "audio"})
        progress("music", 0, 1)
        music = _music(inputs.get("audio"), str(job.options.get("audio_name", "song.wav")), request.start, request.end,
                       self.memo)
        music = music_for(request, music)  # the beat overrides, so that the markers sent back show them too
        progress("music", 1, 1)
        motion, report = dance(request, music, self.expert(request.style), progress)
        fields, arrays = motion_arrays(motion)
        fields.update(report.wire_fields())
        fields["beat_frames"] = music.beat_frames.tolist()
        fields["tempo"] = music.tempo
        try:  # the sections only label the timeline: never lose a finished dance over them
            from backend.music.structure import song_sections

            fields["sections"] = [[s.start, s.end, s.label] for s in song_sections(music)]  # motion frames
        except Exception as exc:  # noqa: BLE001
            log.warning("song sections failed (%s); the dance is returned without them", exc)
        return fields, arrays


def _music(audio: np.ndarray | None, audio_name: str, start: float, end: float | None, memo: AnalysisMemo):
    """The submitted song's section, analysed (only the section and the features' margin are decoded), or its analysis
    from `memo` when an earlier job danced the same section of the same bytes."""
    from backend.music.audio import AudioError
    from backend.music.features import analyse_section

    name = Path(audio_name).name  # the user's file name, for messages
    if audio is None or audio.dtype != np.uint8 or audio.ndim != 1:
        raise ValueError("a motion job needs the audio file's bytes as a uint8 array named 'audio'")
    if audio.size == 0:
        raise ValueError(f"the song file {name} is empty (0 bytes)")
    suffix = Path(name).suffix[:8] or ".wav"

    def analyse():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"song{suffix}"
            path.write_bytes(audio.tobytes())
            try:
                return analyse_section(path, start, end)
            except AudioError as exc:  # name the user's file, not this server's temporary copy
                raise AudioError(str(exc).replace(str(path), name)) from None

    return memo.analysis(song_key(audio, start, end), analyse)


def _video_motion(inputs: dict[str, np.ndarray], fps: float):
    """The whole dance a video job renders, at 30 fps."""
    from rigs.motion import Motion

    if "ref_rotations" not in inputs or "ref_root_translation" not in inputs:
        raise ValueError("this job needs the dance to edit or render: arrays 'ref_rotations' and "
                         "'ref_root_translation'")
    ref = Motion(inputs["ref_rotations"], inputs["ref_root_translation"], fps=fps)
    return ref.resample(30.0, cover=True) if abs(ref.fps - 30.0) > 1e-6 else ref


class VideoRunner:
    """Runs `video` jobs: a Motion and a reference image through the Appearance Expert (loaded once, lazily)."""

    def __init__(self, model_dir: Path | None = None, tiny: bool = False):
        self.model_dir, self.tiny = model_dir, tiny
        self._expert = None
        self._tiny_positions = 0

    def expert(self, options=None):
        """The loaded expert; a tiny one is rebuilt when a job needs a longer position table than it has."""
        from backend.appearance.pipeline import AppearanceExpert
        from backend.appearance.sizes import PipelineLimits

        if self.tiny and options is not None:
            need = PipelineLimits().positions_needed(options.width, options.height, options.segment_frames)
            if self._expert is None or need > self._tiny_positions:
                self._expert, self._tiny_positions = AppearanceExpert.tiny(options=options), need
        if self._expert is None:
            self._expert = AppearanceExpert.tiny() if self.tiny else AppearanceExpert.from_folder(self.model_dir)
        return self._expert

    def __call__(self, job: Job, inputs: dict[str, np.ndarray], progress: Callable[[str, int, int], None],
                 cancelled: Callable[[], bool]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        import io

        from PIL import Image, UnidentifiedImageError

        from backend.appearance.pipeline import VideoOptions

        opts = job.options
        image = inputs.get("image")
        if image is None or image.dtype != np.uint8 or image.ndim != 1:
            raise ValueError("a video job needs the reference image file's bytes as a uint8 array named 'image'")
        try:
            reference = Image.open(io.BytesIO(image.tobytes()))
            reference.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"the reference image is not a readable picture ({exc})") from None
        motion = _video_motion(inputs, float(opts.get("fps", 30.0)))
        options = VideoOptions(width=int(opts.get("width", 480)), height=int(opts.get("height", 832)),
                               steps=int(opts.get("steps", 20)), segment_frames=int(opts.get("segment", 77)),
                               seed=int(opts.get("seed", 0)))
        expert = self.expert(options)
        expert.check(options)  # an impossible size is refused before the image is projected or encoded
        camera = None
        if opts.get("camera_matrix") is not None:
            from backend.appearance.projector import Camera

            camera = Camera.from_blender(np.asarray(opts["camera_matrix"], dtype=np.float64), float(opts["lens"]),
                                         float(opts["sensor_width"]), options.width, options.height)
        progress("render", 0, options.steps)
        result = expert.render(motion, reference, camera=camera, options=options,
                                      callback=lambda i, n: progress("render", i, n) and None)
        fields = {"kind": "video", "fps": motion.fps, "frames": int(len(result.frames)),
                  "seam_drift_before": result.seam_drift_before, "seam_drift_after": result.seam_drift_after}
        return fields, {"frames": result.frames}


class JobRunner:
    """Routes each job to the runner of its kind."""

    def __init__(self, model_dir: Path | None = None, video_model_dir: Path | None = None, video_tiny: bool = False):
        self.motion = MotionRunner(model_dir)
        self.video = VideoRunner(video_model_dir, video_tiny) if (video_model_dir or video_tiny) else None

    def __call__(self, job: Job, inputs, progress, cancelled):
        if job.kind == "video":
            if self.video is None:
                raise ValueError("this server has no Appearance Expert (start it with --video-model-dir)")
            return self.video(job, inputs, progress, cancelled)
        return self.motion(job, inputs, progress, cancelled)
