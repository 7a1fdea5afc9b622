"""What a job does: decode the submitted audio, run the Motion Expert, return the motion as protocol arrays."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from backend.server.jobs import Job
from bridge.protocol import motion_arrays

log = logging.getLogger(__name__)


def _reference_motion(inputs: dict[str, np.ndarray], fps: float, frames: int):
    from rigs.motion import Motion

    if "ref_rotations" not in inputs or "ref_root_translation" not in inputs:
        raise ValueError("this job needs the dance to edit or render: arrays 'ref_rotations' and "
                         "'ref_root_translation'")
    ref = Motion(inputs["ref_rotations"], inputs["ref_root_translation"], fps=fps)
    source_frames, source_fps = ref.num_frames, ref.fps
    ref = ref.resample(30.0, cover=True) if abs(ref.fps - 30.0) > 1e-6 else ref
    frames = frames or ref.num_frames
    # a dance sampled at another rate may stop up to one of its frames before the music ends: hold its last pose
    short = frames - ref.num_frames
    if short > 0 and short / 30.0 <= 1.0 / source_fps + 1e-6:
        ref = ref.at_times(np.minimum(np.arange(frames), ref.num_frames - 1))
    if ref.num_frames < frames:
        raise ValueError(f"the dance to edit lasts {source_frames / source_fps:.2f} s ({source_frames} frames at "
                         f"{source_fps:g} fps); the music needs {frames / 30.0:.2f} s")
    return ref.slice(0, frames)


class MotionRunner:
    """Runs `motion` jobs with one Motion Expert loaded lazily and kept for later jobs."""

    def __init__(self, model_dir: Path | None = None):
        self.model_dir = model_dir
        self._experts: dict = {}

    def expert(self, style: str = "auto"):
        """The Motion Expert for a job's style (the shipped style model when one is asked of the default)."""
        from backend.motion.checkpoint import model_for
        from backend.motion.generate import MotionExpert

        folder = model_for(style, self.model_dir)
        if folder not in self._experts:
            self._experts[folder] = MotionExpert.load(folder)
        return self._experts[folder]

    def _constraint(self, edit: Any, inputs: dict[str, np.ndarray], frames: int, norm):
        """Edit constraints from the request: keep frame ranges and/or joints of a reference, follow a root path."""
        if not edit:
            return None
        from backend.motion.editing import combine, follow_path, keep_frames, keep_joints

        if not isinstance(edit, dict):
            raise ValueError("'edit' must be a map")
        parts = []
        if edit.get("transitions"):  # a comp: everything kept but the frames around its joins
            from backend.motion.choreography import TRANSITION_HALF, transition_constraint

            ref = _reference_motion(inputs, float(edit.get("ref_fps", 30.0)), frames)
            joins = [int(f) for f in edit["transitions"] if 0 < int(f) < frames]
            parts.append(transition_constraint(ref, joins, norm, int(edit.get("transition_frames", TRANSITION_HALF))))
        if edit.get("keep_frames") or edit.get("keep_joints"):
            ref = _reference_motion(inputs, float(edit.get("ref_fps", 30.0)), frames)
            if edit.get("keep_frames"):
                keep = np.zeros(frames, dtype=bool)
                for rng in edit["keep_frames"]:
                    a, b = (int(v) for v in rng)
                    keep[max(0, a):min(frames, b)] = True
                parts.append(keep_frames(ref, np.flatnonzero(keep), norm))
            if edit.get("keep_joints"):
                names = [str(n) for n in edit["keep_joints"]]
                parts.append(keep_joints(ref, names, norm, with_root=bool(edit.get("keep_root", False))))
        if edit.get("path"):
            path = inputs.get("path_xz")
            if path is None or path.ndim != 2 or path.shape[1] != 2:
                raise ValueError("a root path needs an array 'path_xz' of (frames, 2) positions in metres")
            if path.shape[0] < frames:
                raise ValueError(f"the root path has {path.shape[0]} frames; the music needs {frames}")
            parts.append(follow_path(path[:frames].astype(np.float32), norm))
        if not parts:
            raise ValueError("'edit' asks for nothing: give keep_frames, keep_joints, transitions or path")
        return combine(*parts)

    def _keys(self, options: Any, inputs: dict[str, np.ndarray], music):
        """Keyed poses from the request's arrays (moved onto beats when asked), or None."""
        if options is None:
            return None
        from backend.motion.choreography import PoseKeys, snap_to_beats

        names = ("key_frames", "key_rotations", "key_joints", "key_root")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise ValueError(f"keyed poses need the arrays {', '.join(names)}; missing {', '.join(missing)}")
        frames = inputs["key_frames"]
        if frames.dtype.kind not in "iu" or frames.ndim != 1:
            raise ValueError(f"'key_frames' must be whole frame numbers (K,), got {frames.dtype} {frames.shape}")
        keys = PoseKeys(frames, inputs["key_rotations"], inputs["key_joints"], inputs["key_root"])
        keys.check_within(music.num_frames)
        if options.get("snap_to_beats"):
            keys.frames = snap_to_beats(keys.frames, music.beat_frames, music.num_frames)
        return keys

    def __call__(self, job: Job, inputs: dict[str, np.ndarray], progress: Callable[[str, int, int], None],
                 cancelled: Callable[[], bool]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        from backend.motion.beatsync import beat_sync_config
        from backend.motion.beat_guidance import DEFAULT_BEAT_GUIDANCE
        from backend.motion.sampling import DEFAULT_BETA, DEFAULT_STEPS, DEFAULT_STYLE_GUIDANCE, SampleOptions
        from backend.motion.speed_limit import SPEED_CAP
        from backend.music.audio import AudioError
        from backend.music.features import FPS, analyse_section

        if job.kind != "motion":
            raise ValueError(f"this server runs 'motion' jobs, not {job.kind!r}")
        audio = inputs.get("audio")
        opts = job.options
        name = Path(str(opts.get("audio_name", "song.wav"))).name  # the user's file name, for messages
        if audio is None or audio.dtype != np.uint8 or audio.ndim != 1:
            raise ValueError("a motion job needs the audio file's bytes as a uint8 array named 'audio'")
        if audio.size == 0:
            raise ValueError(f"the song file {name} is empty (0 bytes)")
        suffix = Path(name).suffix[:8] or ".wav"
        progress("music", 0, 1)
        start = float(opts.get("start", 0.0))
        end = opts.get("end")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"song{suffix}"
            path.write_bytes(audio.tobytes())
            # only the section (and the features' margin) is decoded and analysed: memory follows the section
            try:
                music = analyse_section(path, start, None if end is None else float(end))
            except AudioError as exc:  # name the user's file, not this server's temporary copy
                raise AudioError(str(exc).replace(str(path), name)) from None
        options = SampleOptions(steps=int(opts.get("steps", DEFAULT_STEPS)),
                                beta=float(opts.get("beta", DEFAULT_BETA)), seed=int(opts.get("seed", 0)),
                                loop=int(round(float(opts.get("loop", 0.0)) * FPS)),
                                style=str(opts.get("style", "auto")),
                                beat_guidance=float(opts.get("beat_guidance", DEFAULT_BEAT_GUIDANCE)),
                                style_guidance=float(opts.get("style_guidance", DEFAULT_STYLE_GUIDANCE)),
                                speed_limit=float(opts.get("speed_limit", SPEED_CAP)))
        options.validate()
        expert = self.expert(options.style)
        constraint = self._constraint(opts.get("edit"), inputs, music.num_frames, expert.normalizer)
        keys = self._keys(opts.get("keys"), inputs, music)
        repeat = opts.get("repeat", "off")
        if keys is not None:
            from backend.motion.choreography import keys_constraint
            from backend.motion.editing import combine

            keyed = keys_constraint(keys, expert.normalizer, music.num_frames)
            constraint = keyed if constraint is None else combine(constraint, keyed)
        if repeat != "off" and constraint is not None:
            raise ValueError("repeat makes a dance's repeated sections alike; it cannot be combined with an edit or "
                             "keyed poses in one job (run it first, then edit the result)")
        progress("music", 1, 1)
        if repeat != "off" and "ref_rotations" in inputs:  # repeat an existing dance's sections
            motion = _reference_motion(inputs, float(opts.get("fps", 30.0)), music.num_frames)
        else:
            motion = expert.generate(music, options, constraint,
                                            callback=lambda i, n: progress("denoise", i, n) and None,
                                            lock_feet=bool(opts.get("lock_feet", True)),
                                            beat_sync=beat_sync_config(opts.get("beat_sync", 1.0)))
        repeats = []
        if repeat != "off":
            from backend.motion.choreography import dance_repeats

            motion, plan = dance_repeats(expert, music, motion, options, repeat == "mirror",
                                         callback=lambda i, n: progress("repeat", i, n) and None)
            repeats = [[p.source, p.target, p.frames, p.label] for p in plan]
        if opts.get("in_place"):
            from backend.motion.gameready import in_place

            motion = in_place(motion)
        fields, arrays = motion_arrays(motion)
        if constraint is not None or repeats:
            fields["edited"] = True
        if keys is not None:
            fields["key_frames"] = keys.frames.tolist()  # where the poses landed (on beats when snapped)
        if repeat != "off":
            fields["repeats"] = repeats  # [source, target, frames, label] per repeated section
        fields["beat_frames"] = music.beat_frames.tolist()
        fields["tempo"] = music.tempo
        try:  # the sections only label the timeline: never lose a finished dance over them
            from backend.music.structure import song_sections

            fields["sections"] = [[s.start, s.end, s.label] for s in song_sections(music)]  # motion frames
        except Exception as exc:  # noqa: BLE001
            log.warning("song sections failed (%s); the dance is returned without them", exc)
        return fields, arrays


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
        motion = _reference_motion(inputs, float(opts.get("fps", 30.0)), 0)  # the whole dance
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
