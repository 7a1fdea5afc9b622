"""Music in, Motion out: the Motion Expert's generation job (used by the CLI, the server and the add-on backend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.motion.checkpoint import SHIPPED_ME, load_model
from backend.motion.cleanup import foot_lock
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
    last_foot_lock: object = None  # the FootLockReport of the latest generate(lock_feet=True)

    @classmethod
    def load(cls, folder: Path | None = None) -> "MotionExpert":
        """Load a model folder (the shipped weights/me by default)."""
        model, normalizer, record = load_model(Path(folder) if folder else SHIPPED_ME)
        return cls(model, normalizer, record)

    def generate(self, music: MusicFeatures, options: SampleOptions | None = None, constraint: Constraint | None = None,
                 callback: StepCallback | None = None, lock_feet: bool = False) -> Motion:
        """A dance for the whole of `music` in one pass (any length), with optional edit constraints.

        `lock_feet` pins the feet the model marks as planted (see backend.motion.cleanup); edits keep their exact
        values only without it, since it moves the legs.
        """
        options = options or SampleOptions()
        options.guidance = self.record.get("guidance", "gft")  # sampling follows how the model was trained
        if music.num_frames < 2:
            raise ValueError("the music is too short to dance to")
        cond = torch.from_numpy(self.normalizer.norm_music(music.features).astype(np.float32))
        x = sample(self.model, cond, options, constraint, callback)
        feats = self.normalizer.denorm_motion(x.cpu().numpy())
        motion = features_to_motion(feats, fps=FPS)
        if lock_feet:
            motion, self.last_foot_lock = foot_lock(motion)
        return motion
