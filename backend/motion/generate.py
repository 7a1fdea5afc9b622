"""Music in, Motion out: the Motion Expert's generation job (used by the CLI, the server and the add-on backend)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.motion.beatsync import BeatSyncConfig, BeatSyncReport
from backend.motion.checkpoint import SHIPPED_ME, load_model
from backend.motion.cleanup import FootLockReport
from backend.motion.conditioning import music_inputs
from backend.motion.model import Denoiser
from backend.motion.passes import Cleanup, StageNote, clean_up
from backend.motion.pelvis_flips import PelvisFlipRepair
from backend.motion.representation import Normalizer
from backend.motion.sampling import Constraint, SampleOptions, StepCallback, sample
from backend.music.features import MusicFeatures
from rigs.motion import Motion


@dataclass(frozen=True)
class Generation:
    """A generated dance and what the clean-up passes did to it."""

    motion: Motion
    foot_lock: FootLockReport | None = None
    beat_sync: BeatSyncReport | None = None
    root_flips: int = 0  # pelvis flips faster than any real dance turns, re-interpolated
    floor_lift: float = 0.0  # the deepest an ankle or toe sank under the floor before the root was raised (m)
    slowed: int = 0  # stretches of the finished dance played more slowly to keep every joint under the speed limit


@dataclass
class MotionExpert:
    """A loaded denoiser with its normalisation, ready to generate."""

    model: Denoiser
    normalizer: Normalizer
    record: dict
    folder: Path | None = None  # where it was loaded from (its figure library lies beside the weights)

    @classmethod
    def load(cls, folder: Path | None = None) -> "MotionExpert":
        """Load a model folder (the shipped weights/me by default)."""
        folder = Path(folder) if folder else SHIPPED_ME
        model, normalizer, record = load_model(folder)
        return cls(model, normalizer, record, folder)

    def library(self):
        """The figure library beside these weights (figure_library.FigureLibrary), or None without one."""
        from backend.motion.retrieval import library_for

        return None if self.folder is None else library_for(self.folder)

    def generate(self, music: MusicFeatures, options: SampleOptions | None = None, constraint: Constraint | None = None,
                 callback: StepCallback | None = None, lock_feet: bool = False,
                 beat_sync: bool | BeatSyncConfig | None = False) -> Motion:
        """A dance for the whole of `music` in one pass (any length); see `run` for the options."""
        return self.run(music, options, constraint, callback, lock_feet, beat_sync).motion

    def run(self, music: MusicFeatures, options: SampleOptions | None = None, constraint: Constraint | None = None,
            callback: StepCallback | None = None, lock_feet: bool = False,
            beat_sync: bool | BeatSyncConfig | None = False, notes: list[StageNote] | None = None) -> Generation:
        """A dance for the whole of `music` in one pass, with optional edit constraints, and the clean-up reports.

        The sampler runs once, then the clean-up passes of backend.motion.passes in their listed order (each appends
        what it changed to `notes` when given); edits keep their kept values exactly.
        """
        options = options or SampleOptions()
        options.guidance = self.record.get("guidance", "gft")  # sampling follows how the model was trained
        if music.num_frames < 2:
            raise ValueError("the music is too short to dance to")
        started = time.perf_counter()
        inputs = music_inputs(music, self.model.cfg.rhythm)
        cond = torch.from_numpy(self.normalizer.norm_music(inputs).astype(np.float32))
        guide = None
        if options.beat_guidance > 0:
            from backend.motion.beat_guidance import BeatGuide, triple_weight

            guide = BeatGuide(self.normalizer, music.beat_frames, music.num_frames, triple_weight(options.style, music))
            guide = guide if guide.active else None  # too few beats to follow: the model's own timing
        x = sample(self.model, cond, options, constraint, callback, beat_guide=guide,
                   flip_repair=PelvisFlipRepair(self.normalizer)).cpu().numpy()
        sync = beat_sync if isinstance(beat_sync, BeatSyncConfig) else (BeatSyncConfig() if beat_sync else None)
        ran = [StageNote("sample", "", options, time.perf_counter() - started)]
        motion = clean_up(Cleanup(self.normalizer, music, options, constraint, lock_feet, sync), x, ran)
        if notes is not None:
            notes.extend(ran)
        detail = {n.name: n.detail for n in ran}
        return Generation(motion, detail.get("foot_lock"), detail.get("beat_sync"),
                          int(detail.get("free_flips", detail.get("root_flips", 0)) or 0), float(detail.get("floor", 0.0)),
                          int(detail.get("speed_limit", 0)))
