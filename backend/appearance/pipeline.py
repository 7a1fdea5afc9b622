"""The Appearance Expert: SMPL motion + a reference image -> video, on diffusers' WanAnimatePipeline.

Pose frames come from the exact projector (no re-detection). Long videos render in segments inside the pipeline:
each segment is anchored by the global pose sequence, the previous segment's last frames
(`prev_segment_conditioning_frames`) and the fixed reference image. What the pipeline lacks we add after it:
colour drift correction at the seams (a known complaint with long Wan-Animate videos), measured before and after.
The face video is cut from the reference image (its upper-centre square, resized to the transformer's
`motion_encoder_size`): the dancer keeps one identity and expression source, and no face has to be re-rendered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from backend.appearance.projector import Camera, draw_pose_frames, project_motion
from backend.appearance.sizes import PipelineLimits, check_video_size
from rigs.motion import Motion

REQUIRED = ("model_index.json", "transformer", "vae", "text_encoder", "tokenizer", "scheduler", "image_encoder",
            "image_processor")


class AppearanceModelError(FileNotFoundError):
    """The Wan-Animate folder is missing or incomplete; the message says what is absent."""


@dataclass
class VideoOptions:
    """Rendering settings; frame counts are rounded by the pipeline to 4N+1 where it needs them."""

    width: int = 480
    height: int = 832
    segment_frames: int = 77
    prev_frames: int = 1
    steps: int = 20
    guidance: float = 1.0
    seed: int = 0
    prompt: str = "a person dancing, full body shot"
    negative_prompt: str = "blurry"
    colour_correction: bool = True


@dataclass
class VideoResult:
    """Frames and what the seams looked like."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    seams: list[int] = field(default_factory=list)  # first frame index of every segment after the first
    seam_drift_before: float = 0.0  # mean absolute colour step across seams (0-255 scale), before correction
    seam_drift_after: float = 0.0
    body: np.ndarray | None = None  # (T, H, W, 3) shaded body renders, when a body model was given


def check_model_folder(folder: Path) -> None:
    """Raise AppearanceModelError naming what a diffusers-format Wan-Animate folder lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AppearanceModelError(f"{folder}: no such folder (point --model-dir at a local diffusers-format "
                                   "Wan2.2-Animate folder; nothing is downloaded)")
    missing = [name for name in REQUIRED if not (folder / name).exists()]
    if missing:
        raise AppearanceModelError(f"{folder}: incomplete Wan-Animate folder, missing {', '.join(missing)}")
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except ValueError as exc:
        raise AppearanceModelError(f"{folder}/model_index.json is not valid JSON ({exc})") from None
    if index.get("_class_name") != "WanAnimatePipeline":
        raise AppearanceModelError(f"{folder}: model_index.json describes {index.get('_class_name')!r}, "
                                   "not WanAnimatePipeline")


def face_crops(reference: "Image.Image", size: int, frames: int) -> list:  # noqa: F821
    """The reference image's upper-centre square, resized to `size`, repeated for every frame."""
    w, h = reference.size
    side = min(w, h // 2) if h >= 2 * 16 else min(w, h)
    left = (w - side) // 2
    crop = reference.crop((left, 0, left + side, side)).resize((size, size))
    return [crop] * frames


def match_colour(segment: np.ndarray, anchor: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Per-channel gain and offset that carry `first` (the segment's opening frames) onto `anchor`'s statistics."""
    a_mean, a_std = anchor.reshape(-1, 3).mean(0), anchor.reshape(-1, 3).std(0) + 1e-3
    f_mean, f_std = first.reshape(-1, 3).mean(0), first.reshape(-1, 3).std(0) + 1e-3
    out = (segment.astype(np.float32) - f_mean) * (a_std / f_std) + a_mean
    return np.clip(out, 0, 255)


def seam_drift(frames: np.ndarray, seams: list[int]) -> float:
    """Mean absolute colour change from the frame before each seam to the frame after it."""
    if not seams:
        return 0.0
    return float(np.mean([np.abs(frames[s].astype(np.float32) - frames[s - 1].astype(np.float32)).mean()
                          for s in seams]))


class AppearanceExpert:
    """Renders a Motion as video of the person in a reference image."""

    def __init__(self, pipe):
        self.pipe = pipe

    @classmethod
    def from_folder(cls, folder: Path, dtype: str = "bf16", cpu_offload: bool = False,
                    vae_tiling: bool = False) -> "AppearanceExpert":
        """Load Wan2.2-Animate from a local diffusers-format folder (never downloads)."""
        import torch

        from backend.appearance.clip_processor import prefer_pil_processor

        prefer_pil_processor()  # the folder's CLIPImageProcessor loads as the PIL processor (no torchvision needed)
        from diffusers import WanAnimatePipeline

        check_model_folder(folder)
        torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        pipe = WanAnimatePipeline.from_pretrained(str(folder), torch_dtype=torch_dtype, local_files_only=True)
        if cpu_offload:
            pipe.enable_model_cpu_offload()
        elif torch.cuda.is_available():
            pipe.to("cuda")
        if vae_tiling and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        return cls(pipe)

    @classmethod
    def tiny(cls, seed: int = 0, options: "VideoOptions | None" = None) -> "AppearanceExpert":
        """A random tiny pipeline (tests, dry runs) whose position table covers `options`' size and segments."""
        from backend.appearance.tiny import tiny_pipeline

        o = options or VideoOptions(width=16, height=16, segment_frames=5)
        return cls(tiny_pipeline(seed, positions=PipelineLimits().positions_needed(o.width, o.height,
                                                                                    o.segment_frames)))

    def check(self, options: "VideoOptions") -> None:
        """Raise VideoSizeError (one sentence) if this pipeline cannot render `options`' size and segments."""
        check_video_size(options.width, options.height, options.segment_frames, options.prev_frames,
                         PipelineLimits.from_pipe(self.pipe))

    def render(self, motion: Motion, reference: "Image.Image", camera: Camera | None = None,  # noqa: F821
               options: VideoOptions | None = None,
               callback: Callable[[int, int], bool | None] | None = None, body=None) -> VideoResult:
        """Frames of the dancer doing `motion` (one per motion frame), seams colour-corrected.

        With `body` (a rigs.smpl_body.SMPLBody: the user's SMPL model) keypoints the body hides are left out of the
        pose frames, as a 2D detector would drop them, and the body renders come back in the result.
        """
        import torch
        from PIL import Image

        o = options or VideoOptions()
        self.check(o)
        camera = camera or Camera.frontal(o.width, o.height)
        if (camera.width, camera.height) != (o.width, o.height):
            raise ValueError(f"camera is {camera.width}x{camera.height} but the video is {o.width}x{o.height}")
        body_frames = None
        if body is None:
            uv, visible = project_motion(motion, camera)
        else:
            from backend.appearance.body_render import body_keypoints

            uv, visible, rendered = body_keypoints(motion, camera, body)
            body_frames = rendered.color
        poses = [Image.fromarray(f) for f in draw_pose_frames(uv, visible, o.width, o.height)]
        size = int(self.pipe.transformer.config.motion_encoder_size)
        faces = face_crops(reference.convert("RGB"), size, len(poses))
        steps_total = o.steps
        cancelled = []

        def on_step(pipe, i, t, kwargs):
            if callback is not None and callback(i, steps_total):
                pipe._interrupt = True  # diffusers skips the remaining steps
                cancelled.append(i)
            return kwargs

        # a dance shorter than one segment renders in the shortest 4N+1 segment that holds it, not a padded 77
        t = int(getattr(self.pipe, "vae_scale_factor_temporal", 4))
        fit = lambda n: -(-max(n - 1, 1) // t) * t + 1  # noqa: E731  (the smallest 4N+1 >= n, at least t+1)
        segment = min(o.segment_frames, max(fit(len(poses)), fit(o.prev_frames + 1)))
        out = self.pipe(image=reference.convert("RGB").resize((o.width, o.height)), pose_video=poses,
                        face_video=faces, prompt=o.prompt, negative_prompt=o.negative_prompt, height=o.height,
                        width=o.width, segment_frame_length=segment, num_inference_steps=o.steps,
                        mode="animate", prev_segment_conditioning_frames=o.prev_frames, guidance_scale=o.guidance,
                        generator=torch.Generator().manual_seed(o.seed), output_type="np",
                        callback_on_step_end=on_step, max_sequence_length=16)
        if cancelled:
            from backend.motion.sampling import Cancelled

            raise Cancelled(f"video cancelled at step {cancelled[0]}")
        frames = np.asarray(out.frames[0])
        frames = (np.clip(frames, 0, 1) * 255).round().astype(np.uint8) if frames.dtype != np.uint8 else frames
        frames = frames[: motion.num_frames]
        seg, prev = segment, o.prev_frames
        seams = list(range(seg, len(frames), seg - prev))
        before = seam_drift(frames, seams)
        if o.colour_correction and seams:
            fixed = frames.astype(np.float32)
            bounds = seams + [len(frames)]
            for k, s in enumerate(seams):
                anchor = fixed[max(0, s - 2):s]
                first = fixed[s:min(s + 2, bounds[k + 1])]
                fixed[s:bounds[k + 1]] = match_colour(fixed[s:bounds[k + 1]], anchor, first)
            frames = fixed.round().astype(np.uint8)
        return VideoResult(frames, seams, before, seam_drift(frames, seams), body_frames)
