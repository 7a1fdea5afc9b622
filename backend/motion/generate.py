"""Music in, Motion out: the Motion Expert's generation job (used by the CLI, the server and the add-on backend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.motion.checkpoint import SHIPPED_ME, load_model
from backend.motion.model import Denoiser
from backend.motion.representation import Normalizer, features_to_motion
from backend.motion.sampling import Constraint, SampleOptions, StepCallback, sample
from backend.music.features import FPS, MusicFeatures
from rigs.motion import Motion


@dataclass
class MotionExpert:
    """A loaded denoiser with its normalisation, ready to generate."""

    model: Denoiser
    normalizer: Normalizer
    record: dict

    @classmethod
    def load(cls, folder: Path | None = None) -> "MotionExpert":
        """Load a model folder (the shipped weights/me by default)."""
        model, normalizer, record = load_model(Path(folder) if folder else SHIPPED_ME)
        return cls(model, normalizer, record)

    def generate(self, music: MusicFeatures, options: SampleOptions | None = None, constraint: Constraint | None = None,
                 callback: StepCallback | None = None) -> Motion:
        """A dance for the whole of `music` in one pass (any length), with optional edit constraints."""
        options = options or SampleOptions()
        if music.num_frames < 2:
            raise ValueError("the music is too short to dance to")
        cond = torch.from_numpy(self.normalizer.norm_music(music.features).astype(np.float32))
        x = sample(self.model, cond, options, constraint, callback)
        feats = self.normalizer.denorm_motion(x.cpu().numpy())
        return features_to_motion(feats, fps=FPS)
