"""Video sizes a Wan-Animate pipeline can take, checked before any work starts.

What limits a request:
- width and height: multiples of the VAE's spatial downsampling times the transformer's spatial patch (8 x 2 = 16);
- frames per segment: 4N + 1 (the VAE folds 4 frames into one latent frame after the first);
- the transformer's rotary position table (`rope_max_seq_len` rows per axis): height / 16 patch rows, width / 16
  patch columns and the segment's latent frames (+1 for the reference image's latent) must each fit in it. Past it
  diffusers fails deep in the attention with a reshape error, after the VAE has already encoded every frame.
The limits are read from a model folder's config files (no weights loaded) or from a built pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class VideoSizeError(ValueError):
    """A video size the pipeline cannot take; the message says which and what would work."""


@dataclass(frozen=True)
class PipelineLimits:
    """The size rules of one pipeline."""

    vae_spatial: int = 8
    vae_temporal: int = 4
    patch: tuple[int, int] = (2, 2)  # (height, width) of a transformer patch
    positions: int = 1024  # rope_max_seq_len: rows of the position table per axis

    @property
    def spatial(self) -> tuple[int, int]:
        """Pixels per patch along (height, width)."""
        return self.vae_spatial * self.patch[0], self.vae_spatial * self.patch[1]

    @classmethod
    def from_folder(cls, folder: Path) -> "PipelineLimits":
        """Read the limits from a diffusers folder's vae/ and transformer/ config.json."""
        vae = json.loads((Path(folder) / "vae" / "config.json").read_text())
        tr = json.loads((Path(folder) / "transformer" / "config.json").read_text())
        return cls(int(vae.get("scale_factor_spatial", 8)), int(vae.get("scale_factor_temporal", 4)),
                   tuple(int(p) for p in tr.get("patch_size", (1, 2, 2))[-2:]), int(tr.get("rope_max_seq_len", 1024)))

    @classmethod
    def from_pipe(cls, pipe) -> "PipelineLimits":
        """The limits of a built WanAnimatePipeline."""
        tr = pipe.transformer.config
        return cls(int(pipe.vae_scale_factor_spatial), int(pipe.vae_scale_factor_temporal),
                   tuple(int(p) for p in tr.patch_size[-2:]), int(tr.rope_max_seq_len))

    def latent_frames(self, segment: int) -> int:
        """Latent frames the transformer sees per segment: the segment's, plus the reference image's."""
        return (segment - 1) // self.vae_temporal + 1 + 1

    def positions_needed(self, width: int, height: int, segment: int) -> int:
        """The position-table length a request needs (the largest of its three axes)."""
        sh, sw = self.spatial
        return max(height // sh, width // sw, self.latent_frames(segment))


def _nearest(value: int, step: int) -> str:
    lo = max(step, value // step * step)
    return f"{lo} or {lo + step}" if lo != value else str(lo)


def check_video_size(width: int, height: int, segment: int, prev_frames: int, limits: PipelineLimits) -> None:
    """Raise VideoSizeError (one sentence) when the pipeline cannot render this size."""
    sh, sw = limits.spatial
    for name, value, step in (("width", width, sw), ("height", height, sh)):
        if value <= 0:
            raise VideoSizeError(f"video {name} must be positive, got {value}")
        if value % step:
            raise VideoSizeError(f"video {name} {value} is not a multiple of {step} (the VAE's {limits.vae_spatial}x "
                                 f"downsampling times the transformer's patch): use {_nearest(value, step)}")
    t = limits.vae_temporal
    if segment < 1 or segment % t != 1:
        fix = max(1, segment // t * t + 1)
        raise VideoSizeError(f"frames per segment must be {t}N+1 (the VAE folds {t} frames into one latent frame), "
                             f"got {segment}: use {fix} or {fix + t}")
    if not 0 <= prev_frames < segment:
        raise VideoSizeError(f"frames carried over between segments must be in [0, {segment}), got {prev_frames}")
    for name, need in (("height", height // sh), ("width", width // sw)):
        if need > limits.positions:
            raise VideoSizeError(f"video {name} {need * sh} needs {need} patch positions but the model's position "
                                 f"table has {limits.positions}: at most {limits.positions * sh} pixels")
    if limits.latent_frames(segment) > limits.positions:
        most = (limits.positions - 2) * t + 1
        raise VideoSizeError(f"{segment} frames per segment need {limits.latent_frames(segment)} latent positions but "
                             f"the model's position table has {limits.positions}: at most {most} frames")
