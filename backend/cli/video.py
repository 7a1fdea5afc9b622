"""Commands of the Appearance Expert: video and poses (train-ae: train_ae.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from backend.cli.common import DEFAULT_OUT, CliError, console


def video(
    dance: Path = typer.Argument(..., metavar="DANCE.NPZ", help="A dance from `mace-dance generate` (.npz)."),
    reference: Path = typer.Argument(..., metavar="IMAGE",
                                     help="A picture of the performer to show dancing (png/jpg)."),
    out: Path = typer.Option(DEFAULT_OUT / "video", "--out", "-o", metavar="FOLDER",
                             help="Folder for the frames (PNG) and video.mp4."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", metavar="FOLDER",
                                             help="The video model: a Wan2.2-Animate folder on disk (diffusers "
                                                  "format)."),
    tiny: bool = typer.Option(False, metavar="", help="A dry run without the video model: tiny random weights, so "
                                                      "the frames are noise; checks the whole path in seconds."),
    audio: Optional[Path] = typer.Option(None, metavar="SONG", help="The song to put under the video (MP4 sound)."),
    audio_start: Optional[float] = typer.Option(None, "--audio-start", metavar="SECONDS",
                                                help="Where in the song the video's sound starts; by default where "
                                                     "the dance's section starts, as `generate` recorded it in the "
                                                     "dance file (0 for older files)."),
    width: int = typer.Option(480, metavar="PIXELS", help="Video width (a multiple of 16)."),
    height: int = typer.Option(832, metavar="PIXELS", help="Video height (a multiple of 16)."),
    steps: int = typer.Option(20, metavar="N", help="How many passes the model takes to refine each piece of "
                                                    "video: fewer are faster and rougher (denoising steps)."),
    segment: int = typer.Option(77, metavar="FRAMES",
                                help="The video is made in pieces of this many frames: a multiple of 4 plus 1 "
                                     "(73, 77, 81, ...); longer pieces need more GPU memory."),
    dtype: str = typer.Option("bf16", metavar="PRECISION", help="Number precision of the model: bf16 or fp16 (half "
                                                                "the memory) or fp32."),
    cpu_offload: bool = typer.Option(False, metavar="", help="Keep the model's idle parts in main memory, not on "
                                                             "the GPU: fits a smaller GPU, runs slower."),
    smpl_model: Optional[Path] = typer.Option(None, "--smpl-model", metavar="SMPL.NPZ",
                                              help="Your SMPL body model file: joints the body hides are left out "
                                                   "of the pose frames, and shaded body renders go to body/."),
) -> None:
    """Render a dance as a video of the person in a picture (Wan2.2-Animate; needs the ae extra and a GPU)."""
    from PIL import Image
    from rich.progress import Progress

    from backend.appearance.pipeline import VideoOptions
    from backend.appearance.video_io import write_frames, write_mp4
    from rigs.motion import Motion

    options = VideoOptions(width=width, height=height, steps=steps, segment_frames=segment)
    if dtype not in DTYPES:
        raise CliError(f"--dtype must be {', '.join(DTYPES[:-1])} or {DTYPES[-1]}, got {dtype!r}")
    if steps < 1:
        raise CliError(f"--steps must be at least 1, got {steps}")
    motion = Motion.load_npz(dance)
    audio_start = _checked_audio(audio, audio_start, dance)
    _check_frame_memory(motion.num_frames, width, height, 2 if smpl_model is not None else 1)
    if not reference.is_file():
        raise CliError(f"{reference}: reference image not found")
    check_video_request(options, model_dir, tiny)
    try:
        ref = Image.open(reference)
        ref.load()
    except OSError as exc:
        raise CliError(f"{reference}: not a readable image ({exc})") from None
    expert, render_options = _expert(options, model_dir, tiny, dtype, cpu_offload)
    body = _load_body(smpl_model, motion) if smpl_model is not None else None
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("rendering", total=steps)
        result = expert.render(motion, ref, options=render_options,
                               callback=lambda i, n: bar.update(task, completed=i), body=body)
    if render_options is not options:
        result.frames = _scale_frames(result.frames, width, height)
        if result.body is not None:
            result.body = _scale_frames(result.body, width, height)
    frames = write_frames(result.frames, out / "frames")
    mp4 = write_mp4(result.frames, out / "video.mp4", motion.fps, audio, audio_start)
    if result.body is not None:
        write_frames(result.body, out / "body")
        print(out / "body")
    console.print(f"[green]rendered[/green] {len(frames)} frames; seam colour step {result.seam_drift_before:.1f} -> "
                  f"{result.seam_drift_after:.1f}")
    print(out / "frames")
    print(mp4)


def _expert(options, model_dir: Optional[Path], tiny: bool, dtype: str, cpu_offload: bool):
    """(the video model, the options it renders with): the folder's weights, or the tiny dry run's at a size a CPU
    renders (the frames scaled to the asked size after)."""
    from backend.appearance.pipeline import AppearanceExpert

    if not tiny:
        return AppearanceExpert.from_folder(model_dir, dtype=dtype, cpu_offload=cpu_offload), options
    render_options = _tiny_render_size(options)
    if render_options is not options:
        console.print(f"tiny dry run: rendering at {render_options.width}x{render_options.height} and scaling the "
                      f"frames to {options.width}x{options.height} (random weights: this checks the path, not the "
                      "look)")
    return AppearanceExpert.tiny(options=render_options), render_options


DTYPES = ("bf16", "fp16", "fp32")
MAX_FRAME_BYTES = 8e9  # the rendered frames are held in memory (and scaled there): beyond this, refuse the size


def _checked_audio(audio: Optional[Path], start: Optional[float], dance: Path) -> float:
    """Where the MP4's sound starts in the song (s): `start`, or the dance's own section start as its file records
    it; the song checked readable and long enough first (one line before any rendering)."""
    from backend.music.audio import audio_duration
    from rigs.motion import Motion

    if audio is None:
        if start is not None:
            raise CliError("--audio-start needs --audio (the song to put under the video)")
        return 0.0
    seconds = audio_duration(audio)[0]
    if start is None:
        start = float(Motion.read_meta(dance).get("start", 0.0))
    if not 0.0 <= start < seconds:
        raise CliError(f"--audio-start {start:g} s lies outside {audio} (it lasts {seconds:.1f} s)")
    return start


def _check_frame_memory(frames: int, width: int, height: int, sets: int = 1) -> None:
    """Refuse a video whose frames (held in memory: frames x width x height x 3 bytes, per set) pass MAX_FRAME_BYTES."""
    need = frames * width * height * 3 * sets
    if width > 0 and height > 0 and need > MAX_FRAME_BYTES:
        raise CliError(f"{frames} frames at {width}x{height} need {need / 1e9:.1f} GB of memory ({frames} x {width} x "
                       f"{height} x 3 bytes{' x 2 with body renders' if sets > 1 else ''}), over the "
                       f"{MAX_FRAME_BYTES / 1e9:g} GB limit: render a smaller size or a shorter dance")


TINY_MAX_PIXELS = 128 * 224  # the dry run's render size cap: the full path at a size a CPU renders in minutes


def _tiny_render_size(options):
    """The request scaled down (keeping its aspect, multiples of 16) to what the tiny dry run renders, or itself."""
    from dataclasses import replace

    if options.width * options.height <= TINY_MAX_PIXELS:
        return options
    scale = (TINY_MAX_PIXELS / (options.width * options.height)) ** 0.5
    snap = lambda v: max(16, int(v * scale) // 16 * 16)  # noqa: E731
    return replace(options, width=snap(options.width), height=snap(options.height))


def _scale_frames(frames, width: int, height: int):
    """(T, h, w, 3) uint8 frames resized to width x height."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


def check_video_request(options, model_dir: Optional[Path], tiny: bool) -> None:
    """Refuse, in one line and before anything is loaded, a size or folder the pipeline cannot take."""
    from backend.appearance.pipeline import AppearanceModelError, check_model_folder
    from backend.appearance.sizes import PipelineLimits, VideoSizeError, check_video_size

    try:
        if tiny:  # the dry run's tiny model is built with a position table that covers the request
            need = PipelineLimits().positions_needed(options.width, options.height, options.segment_frames)
            limits = PipelineLimits(positions=max(need, 1))
        elif model_dir is None:
            raise CliError("give --model-dir (a local Wan2.2-Animate folder) or --tiny for a dry run")
        else:
            check_model_folder(model_dir)
            limits = PipelineLimits.from_folder(model_dir)
        check_video_size(options.width, options.height, options.segment_frames, options.prev_frames, limits)
    except (VideoSizeError, AppearanceModelError) as exc:
        raise CliError(str(exc)) from None


def _load_body(path: Path, motion):
    """The user's SMPL model shaped by the dance's betas, or a one-line error."""
    from rigs.smpl_body import SMPLModelError, load_smpl_body

    try:
        return load_smpl_body(path, motion.betas)
    except SMPLModelError as exc:
        raise CliError(str(exc)) from None


def poses(
    dance: Path = typer.Argument(..., metavar="DANCE.NPZ", help="A dance from `mace-dance generate` (.npz)."),
    out: Path = typer.Option(DEFAULT_OUT / "poses", "--out", "-o", metavar="FOLDER",
                             help="Folder for the pose frames and sheets."),
    width: int = typer.Option(480, metavar="PIXELS", help="Frame width (the video's 480x832 portrait by default)."),
    height: int = typer.Option(832, metavar="PIXELS", help="Frame height."),
    every: int = typer.Option(15, metavar="N", help="Contact sheet: one frame in this many (15 = two a second)."),
    columns: int = typer.Option(8, metavar="N", help="Contact sheet: pictures a row."),
    smpl_model: Optional[Path] = typer.Option(None, "--smpl-model", metavar="SMPL.NPZ",
                                              help="Your SMPL body model file: hide joints the body covers and add a "
                                                   "sheet of body renders."),
    frames: bool = typer.Option(False, "--frames", metavar="", help="Also write every pose frame as a PNG."),
) -> None:
    """Draw the pose frames the video model is given for a dance, as a contact sheet: check them before `video`."""
    from PIL import Image

    from backend.appearance.body_render import BodyRenderError, body_keypoints, contact_sheet
    from backend.appearance.projector import Camera, draw_pose_frames, project_motion
    from backend.appearance.video_io import write_frames
    from rigs.motion import Motion

    for flag, value in (("--columns", columns), ("--every", every), ("--width", width), ("--height", height)):
        if value < 1:
            raise CliError(f"{flag} must be a whole number of 1 or more, got {value}")
    motion = Motion.load_npz(dance)
    _check_frame_memory(motion.num_frames, width, height, 2 if smpl_model is not None else 1)
    camera = Camera.frontal(width, height)
    body_frames = None
    if smpl_model is not None:
        try:
            uv, visible, rendered = body_keypoints(motion, camera, _load_body(smpl_model, motion))
        except BodyRenderError as exc:
            raise CliError(str(exc)) from None
        body_frames = rendered.color
    else:
        uv, visible = project_motion(motion, camera)
    pose_frames = draw_pose_frames(uv, visible, width, height)
    out.mkdir(parents=True, exist_ok=True)
    sheets = [("pose_sheet.png", pose_frames)] + ([("body_sheet.png", body_frames)] if body_frames is not None else [])
    for name, images in sheets:
        Image.fromarray(contact_sheet(images, columns=columns, every=every)).save(out / name)
        print(out / name)
    if frames:
        print(write_frames(pose_frames, out / "frames")[0].parent)
    hidden = int((~visible).sum())
    console.print(f"{motion.num_frames} pose frames at {width}x{height}; {hidden} keypoints hidden "
                  f"({hidden / visible.size:.1%})")
