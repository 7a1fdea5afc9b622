"""Music in, Motion out: the Motion Expert's generation job (used by the CLI, the server and the add-on backend)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.motion.beatsync import BeatSyncConfig, BeatSyncReport, beat_sync as retime_to_beats
from backend.motion.checkpoint import SHIPPED_ME, load_model
from backend.motion.conditioning import music_inputs
from backend.motion.cleanup import (FootLockReport, foot_lock, grow_stances, keep_above_floor, lift_skims, planted_feet,
                                    repair_root_flips)
from backend.motion.model import Denoiser
from backend.motion.pelvis_flips import PELVIS, PelvisFlipRepair
from backend.motion.representation import Normalizer, features_to_motion
from backend.motion.sampling import ROOT_XZ, Constraint, SampleOptions, StepCallback, sample
from backend.motion.seams import smooth_loop_seam, smooth_seams
from backend.motion.speed_limit import limit_motion_speed
from backend.music.features import FPS, MusicFeatures
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

    @classmethod
    def load(cls, folder: Path | None = None) -> "MotionExpert":
        """Load a model folder (the shipped weights/me by default)."""
        model, normalizer, record = load_model(Path(folder) if folder else SHIPPED_ME)
        return cls(model, normalizer, record)

    def _repair_free_flips(self, x: np.ndarray, constraint: Constraint) -> tuple[np.ndarray, int]:
        """Normalised features with pelvis flips in an edit's free frames re-interpolated (a comp's transition
        flipped at 9.5 m/s mean joint speed); kept values are not touched. The sampler's last step did the same
        unless its flip repair was turned off."""
        return PelvisFlipRepair(self.normalizer).repair(x, constraint.mask[:, PELVIS].any(axis=1))

    def generate(self, music: MusicFeatures, options: SampleOptions | None = None, constraint: Constraint | None = None,
                 callback: StepCallback | None = None, lock_feet: bool = False,
                 beat_sync: bool | BeatSyncConfig | None = False) -> Motion:
        """A dance for the whole of `music` in one pass (any length); see `run` for the options."""
        return self.run(music, options, constraint, callback, lock_feet, beat_sync).motion

    def run(self, music: MusicFeatures, options: SampleOptions | None = None, constraint: Constraint | None = None,
            callback: StepCallback | None = None, lock_feet: bool = False,
            beat_sync: bool | BeatSyncConfig | None = False) -> Generation:
        """A dance for the whole of `music` in one pass, with optional edit constraints, and the clean-up reports.

        Pelvis flips faster than any real turn are re-interpolated (cleanup.repair_root_flips; in an edit only where
        the pelvis is not kept); `beat_sync` retimes the dance so its motion beats meet the music beats
        (backend.motion.beatsync), then `lock_feet` pins the planted feet and raises feet that skim the floor too fast
        to stand, and the root is raised wherever a foot would sink under the floor (backend.motion.cleanup). These
        change the sampled values, so they are skipped for edits (whose kept parts must come back exactly); beat sync
        is also skipped for loops, whose seam it would bend. Last, stretches faster than `options.speed_limit` are
        played more slowly (backend.motion.speed_limit); in an edit only between kept frames, which come back exactly.
        """
        options = options or SampleOptions()
        options.guidance = self.record.get("guidance", "gft")  # sampling follows how the model was trained
        if music.num_frames < 2:
            raise ValueError("the music is too short to dance to")
        inputs = music_inputs(music, self.model.cfg.rhythm)
        cond = torch.from_numpy(self.normalizer.norm_music(inputs).astype(np.float32))
        guide = None
        if options.beat_guidance > 0:
            from backend.motion.beat_guidance import BeatGuide, triple_weight

            guide = BeatGuide(self.normalizer, music.beat_frames, music.num_frames, triple_weight(options.style, music))
            guide = guide if guide.active else None  # too few beats to follow: the model's own timing
        x = sample(self.model, cond, options, constraint, callback, beat_guide=guide,
                   flip_repair=PelvisFlipRepair(self.normalizer)).cpu().numpy()
        flips = 0
        if constraint is not None:  # kept values stay exact; the generated frames beside them join smoothly
            x, flips = self._repair_free_flips(x, constraint)  # first, so the seams blend the repaired frames in
            x = smooth_seams(x, constraint.mask, window=constraint.seam_window)
        if options.loop:
            x = smooth_loop_seam(x, list(ROOT_XZ))
        feats = self.normalizer.denorm_motion(x.astype(np.float32))
        motion = features_to_motion(feats, fps=FPS)
        sync_report = lock_report = None
        if constraint is None:
            motion, flips = repair_root_flips(motion)
        if beat_sync and constraint is None and not options.loop:
            config = beat_sync if isinstance(beat_sync, BeatSyncConfig) else BeatSyncConfig()
            motion, sync_report = retime_to_beats(motion, music.beat_frames, config)
        if lock_feet and constraint is None:
            stances = planted_feet(motion)
            motion, lock_report = foot_lock(motion, planted=grow_stances(motion, stances), anchors=stances)
            motion, _ = lift_skims(motion)
        lift = 0.0
        if constraint is None:  # feet never under the floor (edits keep their given frames exactly)
            motion, lift = keep_above_floor(motion)
        slowed = 0
        if options.speed_limit > 0:  # last: the clean-ups above can speed a limb up again; an edit's kept frames stay
            kept = None if constraint is None else constraint.mask.any(axis=1)
            motion, slowed = limit_motion_speed(motion, options.speed_limit, kept)
        return Generation(motion, lock_report, sync_report, flips, lift, slowed)
