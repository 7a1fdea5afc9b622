"""The clean-up passes after the sampler, as one listed order: which run, with which settings, and what each changed.

A dance leaves the sampler as normalised features. A dance held to the figure library (novelty 0) first gets its
joins' pelvis flips repaired and its joins bent into the phrases on both sides (a joint the bend overturns keeps the
library's eased join). Edits first get their free frames' pelvis flips repaired and their seams blended, joint
rotations as rotations so a blend cannot make a new flip (kept values stay exact), loops their seam; then the
features become a Motion, and the motion passes run: pelvis flips faster than any real turn re-interpolated, the
head's turn from the chest limited, beat sync (motion beats retimed onto the music's), foot lock and skim lift, feet
kept above the floor, and last the speed limit (the passes before it can speed a limb up again). Passes that change
sampled values are skipped for edits, whose kept parts must come back exactly; beat sync is also skipped for loops,
whose seam it would bend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import time

import numpy as np

from backend.motion.beatsync import BeatSyncConfig, beat_sync as retime_to_beats
from backend.motion.cleanup import (LEGS, foot_lock, foot_lock_free, grow_stances, keep_above_floor, lift_skims,
                                    planted_feet, repair_root_flips)
from backend.motion.neck_limit import HEAD, KNEE_DEG, LIMIT_DEG, NECK, head_turn, limit_head_turn
from backend.motion.pelvis_flips import PELVIS, PelvisFlipRepair
from backend.motion.representation import ROT6D, Normalizer, features_to_motion
from backend.motion.retrieval import JOIN_HALF
from backend.motion.sampling import ROOT_XZ, Constraint, SampleOptions
from backend.motion.seams import overturned, smooth_feature_seams, smooth_loop_seam
from backend.motion.speed_limit import limit_motion_speed, max_joint_speed
from backend.music.features import FPS, MusicFeatures


LEG_JOINTS = [j for leg in LEGS.values() for j in leg[:3]]  # hips, knees, ankles


@dataclass
class Cleanup:
    """What the passes read: one dance's settings."""

    normalizer: Normalizer
    music: MusicFeatures
    options: SampleOptions
    constraint: Constraint | None = None
    lock_feet: bool = False
    sync: BeatSyncConfig | None = None


@dataclass(frozen=True)
class StageNote:
    """What one stage did: its name, one line for the user ('' when there is nothing to tell) and its figures."""

    name: str
    note: str = ""
    detail: Any = None
    seconds: float = 0.0  # wall time the stage took


@dataclass(frozen=True)
class Pass:
    """A named clean-up pass on features ('features') or on the Motion ('motion'), and when it runs."""

    name: str
    space: str
    when: Callable[[Cleanup], bool]
    apply: Callable[[Cleanup, Any], tuple[Any, Any, str]]  # (data, detail, note)


def _free_flips(c: Cleanup, x: np.ndarray):
    # a comp's transition flipped at 9.5 m/s mean joint speed; the kept pelvis frames are not touched
    x, flips = PelvisFlipRepair(c.normalizer).repair(x, c.constraint.mask[:, PELVIS].any(axis=1))
    return x, flips, f"pelvis flips re-interpolated in the free frames: {flips}" if flips else ""


def _held_mask(c: Cleanup, x: np.ndarray) -> np.ndarray:
    """(L, C) the values the sampler kept to the end: a retrieved dance's held frames and an edit's kept values."""
    frames = np.asarray(c.options.init_frames, dtype=bool)
    held = frames if frames.ndim == 2 else np.broadcast_to(frames[:, None], x.shape)
    return held | c.constraint.mask if c.constraint is not None else held.copy()


def _init_flips(c: Cleanup, x: np.ndarray):
    x, flips = PelvisFlipRepair(c.normalizer).repair(x, _held_mask(c, x)[:, PELVIS].any(axis=1))
    return x, flips, f"pelvis flips re-interpolated at the retrieved dance's joins: {flips}" if flips else ""


def _init_seams(c: Cleanup, x: np.ndarray):
    # the joins' frames bent into C2-smooth joins with the library phrases (kept exactly) on both sides; a joint the
    # bend overturned at a join keeps the library's eased join there instead (continuous with both phrases)
    held = _held_mask(c, x)
    out = smooth_feature_seams(x, held, c.normalizer, window=2 * JOIN_HALF)
    init = np.asarray(c.options.init, dtype=out.dtype)
    eased = overturned(x, out, init, ~held[:, ROT6D.start], c.normalizer)
    if c.constraint is not None:  # a run beside an edit's kept values bridges to those, not to the library's join
        kept = c.constraint.mask[:, ROT6D].any(axis=1)  # a followed path keeps only the floor track
        eased = [(j, a, b) for j, a, b in eased if not kept[max(a - 1, 0):b + 1].any()]
    for joint, a, b in eased:
        cols = slice(ROT6D.start + 6 * joint, ROT6D.start + 6 * joint + 6)
        out[a:b, cols] = init[a:b, cols]
    joins = len({(a, b) for _, a, b in eased})
    return out, len(eased), (f"joins: {len(eased)} joint(s) at {joins} join(s), overturned by the seam's bend, keep "
                             "the library's eased join" if eased else "")


def _held_to_end(c: Cleanup) -> bool:
    return c.options.init is not None and c.options.novelty <= 0.0


def _seams(c: Cleanup, x: np.ndarray):
    return smooth_feature_seams(x, c.constraint.mask, c.normalizer, window=c.constraint.seam_window), None, ""


def _loop_seam(c: Cleanup, x: np.ndarray):
    return smooth_loop_seam(x, list(ROOT_XZ)), None, ""


def _root_flips(c: Cleanup, motion):
    motion, flips = repair_root_flips(motion)
    return motion, flips, f"pelvis flips re-interpolated: {flips}" if flips else ""


def _head_note(before, frames: int, where: np.ndarray | None = None) -> str:
    """The head pass's line: how many frames were eased and how many of them had the head turned back past 90 deg."""
    if not frames:
        return ""
    turn = head_turn(before) if where is None else head_turn(before)[where]
    back = int((turn > 90.0).sum())
    return (f"head: turns past {KNEE_DEG:g} deg from the chest eased in {frames} "
            f"{'danced-anew ' if where is not None else ''}frames, {back} of them turned back past 90 deg brought "
            f"within {LIMIT_DEG:g} (the recordings' swapped head markers)")


def _head_turn(c: Cleanup, motion):
    out, frames = limit_head_turn(motion)
    return out, frames, _head_note(motion, frames)


def _beat_sync(c: Cleanup, motion):
    motion, r = retime_to_beats(motion, c.music.beat_frames, c.sync)
    return motion, r, (f"beat sync: {r.anchors} of {r.motion_beats} motion beats moved onto music beats "
                       f"(playback rate within x{r.max_rate:.2f})")


def _foot_lock(c: Cleanup, motion):
    stances = planted_feet(motion)
    motion, r = foot_lock(motion, planted=grow_stances(motion, stances), anchors=stances)
    return motion, r, (f"foot lock: planted-ankle slide {r.slide_before:.2f} m -> {r.slide_after:.2f} m "
                       f"over {r.planted_frames} planted frames")


def _kept(c: Cleanup, joints: list[int]) -> np.ndarray:
    """(T,) bool: the frames where an edit keeps any of these joints' rotations."""
    channels = (ROT6D.start + 6 * np.array(joints)[:, None] + np.arange(6)).ravel()
    return c.constraint.mask[:, channels].any(axis=1)


def _kept_legs(c: Cleanup) -> np.ndarray:
    """(T,) bool: the frames whose leg rotations an edit keeps."""
    return _kept(c, LEG_JOINTS)


def _free_head_turn(c: Cleanup, motion):
    # an edit's danced-anew frames come from the same network that turns heads backwards (a val waltz's keyed
    # windows: 135-145 deg from the chest); the kept frames come back exactly
    free = ~_kept(c, [NECK, HEAD])
    out, frames = limit_head_turn(motion, free)
    return out, frames, _head_note(motion, frames, free)


def _locks_free_feet(c: Cleanup) -> bool:
    # only where a kept dance's feet lie beside the free frames (comps, repeats, regenerated ranges, whole-body keys):
    # a followed path or arm-only keys keep no leg anywhere, and their feet stay the model's, as before
    return c.constraint is not None and c.lock_feet and bool(_kept_legs(c).any())


def _free_foot_lock(c: Cleanup, motion):
    # an edit's free frames only (where the legs are danced anew): its kept frames must come back exactly
    motion, r = foot_lock_free(motion, ~_kept_legs(c))
    return motion, r, (f"foot lock in the danced-anew frames: planted-ankle slide {r.slide_before:.2f} m -> "
                       f"{r.slide_after:.2f} m over {r.planted_frames} planted frames" if r.planted_frames else "")


def _skim_lift(c: Cleanup, motion):
    motion, lifted = lift_skims(motion)
    return motion, lifted, ""


def _floor(c: Cleanup, motion):
    motion, lift = keep_above_floor(motion)
    return motion, lift, f"floor: the dance raised {lift:.3f} m so no foot sinks under it" if lift > 1e-3 else ""


def _speed_limit(c: Cleanup, motion):
    kept = None if c.constraint is None else c.constraint.mask.any(axis=1)  # an edit's kept frames stay
    cap = c.options.speed_limit
    motion, slowed = limit_motion_speed(motion, cap, kept)
    note = f"speed limit: {slowed} stretch(es) over {cap:g} m/s played more slowly" if slowed else ""
    top = max_joint_speed(motion)
    if top > cap * 1.02:  # no calm time left to give (fast throughout) or the fast stretch is kept by an edit
        note = (f"{note}; " if note else "speed limit: ") + (f"a joint still reaches {top:.1f} m/s, over {cap:g} "
                                                             f"m/s (too little calm time around it to slow it)")
    return motion, slowed, note


def _free(c: Cleanup) -> bool:
    return c.constraint is None


PASSES: tuple[Pass, ...] = (
    Pass("init_flips", "features", _held_to_end, _init_flips),  # novelty 0: the retrieved dance's joins
    Pass("init_seams", "features", _held_to_end, _init_seams),
    Pass("free_flips", "features", lambda c: c.constraint is not None, _free_flips),  # before the seams blend them
    Pass("seams", "features", lambda c: c.constraint is not None, _seams),
    Pass("loop_seam", "features", lambda c: c.options.loop > 0, _loop_seam),
    Pass("root_flips", "motion", _free, _root_flips),
    Pass("head_turn", "motion", _free, _head_turn),
    Pass("free_head_turn", "motion", lambda c: c.constraint is not None, _free_head_turn),
    Pass("beat_sync", "motion", lambda c: _free(c) and not c.options.loop and c.sync is not None, _beat_sync),
    Pass("foot_lock", "motion", lambda c: _free(c) and c.lock_feet, _foot_lock),
    Pass("free_foot_lock", "motion", _locks_free_feet, _free_foot_lock),
    Pass("skim_lift", "motion", lambda c: _free(c) and c.lock_feet, _skim_lift),
    Pass("floor", "motion", _free, _floor),
    Pass("speed_limit", "motion", lambda c: c.options.speed_limit > 0, _speed_limit),  # last
)


def clean_up(c: Cleanup, x: np.ndarray, notes: list[StageNote]):
    """The sampled features `x` through the listed passes into a Motion; each pass that ran appends its note."""
    decoded = False
    data: Any = x
    for p in PASSES:
        if p.space == "motion" and not decoded:
            data = features_to_motion(c.normalizer.denorm_motion(np.asarray(data, dtype=np.float32)), fps=FPS)
            decoded = True
        if p.when(c):
            t = time.perf_counter()
            data, detail, note = p.apply(c, data)
            notes.append(StageNote(p.name, note, detail, time.perf_counter() - t))
    return data
