"""Beat sync: retime a dance so that its motion beats land on the music's beats (poses unchanged, timing only).

A motion beat is a local minimum of the smoothed mean joint speed (the dancer's momentary stops, as Bailando and the
BAS metric define them). Each motion beat that lies close to a music beat becomes an anchor: output time = music beat,
source time = motion beat. A monotone C1 time warp (PCHIP) through the anchors and the two end frames maps every
output frame to a source time, and the dance is resampled there (slerp). This is the classic motion-beat retiming of
Kim, Park and Shin ("Rhythmic-motion synthesis based on motion-beat analysis", SIGGRAPH 2003), applied after
sampling. Limits keep it natural: a beat moves at most `max_shift` of a beat period, and the playback rate stays within
[1/max_rate, max_rate] everywhere; anchors that would break either limit are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from backend.metrics.beats import motion_beats
from backend.motion.pchip import Pchip
from rigs.motion import Motion


@dataclass(frozen=True)
class BeatSyncConfig:
    """How far beat sync may bend time."""

    strength: float = 1.0  # 0: unchanged, 1: matched motion beats land exactly on music beats
    max_shift: float = 0.35  # in music-beat periods: motion beats farther than this from any music beat stay put
    max_rate: float = 1.35  # the playback rate stays within [1/max_rate, max_rate]


@dataclass(frozen=True)
class BeatSyncReport:
    """What beat sync did: anchors used, and how far motion beats were from music beats before and after."""

    anchors: int
    motion_beats: int
    mean_offset_before: float  # frames, motion beat -> nearest music beat, over all motion beats
    mean_offset_after: float
    max_rate: float  # the largest playback-rate deviation actually used (>= 1)


def _nearest_offsets(points: np.ndarray, beats: np.ndarray) -> np.ndarray:
    if points.size == 0 or beats.size == 0:
        return np.zeros(0)
    return np.abs(points[:, None] - beats[None, :]).min(axis=1)


def _anchors(motion_b: np.ndarray, music_b: np.ndarray, frames: int,
             cfg: BeatSyncConfig) -> tuple[np.ndarray, np.ndarray]:
    """(output times, source times) of the anchors, ends included, strictly increasing in both."""
    period = float(np.median(np.diff(music_b))) if music_b.size > 1 else float(frames)
    tol = cfg.max_shift * period
    pairs: dict[int, tuple[float, float]] = {}  # music-beat index -> (|shift|, motion beat); one motion beat per beat
    for m in motion_b:
        j = int(np.argmin(np.abs(music_b - m)))
        shift = abs(float(music_b[j]) - float(m))
        if shift <= tol and (j not in pairs or shift < pairs[j][0]):
            pairs[j] = (shift, float(m))
    src = [0.0] + [pairs[j][1] for j in sorted(pairs)] + [frames - 1.0]
    dst = [0.0] + [float(m + cfg.strength * (music_b[j] - m)) for j, (_, m) in sorted(pairs.items())] + [frames - 1.0]
    src_a, dst_a = np.array(src), np.array(dst)
    # Drop the anchor that breaks the rate limit worst until none does (the ends always stay).
    while len(src_a) > 2:
        ds, dd = np.diff(src_a), np.diff(dst_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(dd > 0, ds / np.maximum(dd, 1e-9), np.inf)
        bad = np.maximum(rate, 1.0 / np.maximum(rate, 1e-9))
        worst = int(np.argmax(bad))
        if bad[worst] <= cfg.max_rate and (ds > 0).all():
            break
        # segment `worst` joins anchors worst and worst+1: drop whichever is not an end, preferring the larger shift
        candidates = [k for k in (worst, worst + 1) if 0 < k < len(src_a) - 1]
        k = max(candidates, key=lambda i: abs(dst_a[i] - src_a[i]))
        src_a, dst_a = np.delete(src_a, k), np.delete(dst_a, k)
    return dst_a, src_a


def _warp(dst: np.ndarray, src: np.ndarray, frames: int, max_rate: float) -> np.ndarray:
    """Source time of every output frame: PCHIP through the anchors, anchors dropped until the rate limit holds.

    PCHIP keeps time monotone but its slope inside a segment can exceed the segment's mean, so the limit is checked
    on the curve itself, not only between anchors.
    """
    t = np.arange(frames, dtype=np.float64)
    fine = np.linspace(0.0, frames - 1.0, 4 * frames)
    while True:
        warp = Pchip(dst, src)
        rate = warp.derivative(fine)
        bad = np.maximum(rate, 1.0 / np.maximum(rate, 1e-9))
        if len(dst) <= 2 or bad.max() <= max_rate + 1e-6:
            return warp(t)
        # the segment [dst[i-1], dst[i]] breaks it
        i = int(np.clip(np.searchsorted(dst, fine[int(np.argmax(bad))]), 1, len(dst) - 1))
        candidates = [k for k in (i - 1, i) if 0 < k < len(dst) - 1]
        k = max(candidates, key=lambda j: abs(dst[j] - src[j]))
        dst, src = np.delete(dst, k), np.delete(src, k)


def time_map(motion_b: np.ndarray, music_b: np.ndarray, frames: int,
             config: BeatSyncConfig | None = None) -> np.ndarray:
    """Source time of each of `frames` output frames so that motion beats near music beats land on them (one pass,
    ends fixed, within the config's shift and rate limits): beat sync's warp for motion beats known beforehand."""
    cfg = config or BeatSyncConfig()
    music_b = np.unique(np.asarray(music_b, dtype=np.float64))
    music_b = music_b[(music_b >= 0) & (music_b <= frames - 1)]
    motion_b = np.asarray(motion_b, dtype=np.float64)
    if music_b.size == 0 or motion_b.size == 0 or frames < 3:
        return np.arange(frames, dtype=np.float64)
    dst, src = _anchors(motion_b, music_b, frames, cfg)
    return _warp(dst, src, frames, cfg.max_rate)


def beat_sync(motion: Motion, music_beat_frames: np.ndarray, config: BeatSyncConfig | None = None,
              passes: int = 2) -> tuple[Motion, BeatSyncReport]:
    """The motion retimed so its beats meet the music beats (same length, same fps, end frames unchanged).

    Retiming changes speeds a little and so moves the speed minima it aimed at; a second pass on the retimed dance
    corrects that. The passes compose into one time map, so the poses are interpolated only once.
    """
    cfg = config or BeatSyncConfig()
    if not 0.0 <= cfg.strength <= 1.0:
        raise ValueError(f"beat-sync strength must be in [0, 1], got {cfg.strength}")
    if cfg.max_rate < 1.0:
        raise ValueError(f"beat-sync max_rate must be at least 1, got {cfg.max_rate}")
    frames = motion.num_frames
    music_b = np.unique(np.asarray(music_beat_frames, dtype=np.float64).reshape(-1))
    music_b = music_b[(music_b >= 0) & (music_b <= frames - 1)]
    before = motion_beats(motion.joint_positions()) if frames > 2 else np.zeros(0, dtype=int)
    off_before = _nearest_offsets(before.astype(np.float64), music_b)
    if music_b.size == 0 or before.size == 0 or frames < 3 or cfg.strength == 0.0:
        m = float(off_before.mean()) if off_before.size else 0.0
        return motion, BeatSyncReport(0, int(before.size), m, m, 1.0)
    # The first pass makes the big moves; later passes only fix the few frames by which retiming moved the speed
    # minima. Their rate budgets multiply to cfg.max_rate, so the composed map keeps the limit.
    fine_rate = 1.08 if passes > 1 else 1.0
    budgets = [cfg.max_rate / fine_rate ** (passes - 1)] + [fine_rate] * (passes - 1)
    times = np.arange(frames, dtype=np.float64)  # source time of each output frame, composed over the passes
    current, beats, anchors = motion, before, 0
    for i, budget in enumerate(budgets):
        shift = cfg.max_shift if i == 0 else min(cfg.max_shift, 0.15)
        dst, src = _anchors(beats.astype(np.float64), music_b, frames, replace(cfg, max_shift=shift, max_rate=budget))
        times = np.interp(_warp(dst, src, frames, budget), np.arange(frames), times)
        anchors = max(anchors, len(dst) - 2)
        current = motion.at_times(times)
        beats = motion_beats(current.joint_positions())
    off_after = _nearest_offsets(beats.astype(np.float64), music_b)
    rate = np.diff(times)
    return current, BeatSyncReport(anchors=anchors, motion_beats=int(before.size),
                                   mean_offset_before=float(off_before.mean()),
                                   mean_offset_after=float(off_after.mean()) if off_after.size else 0.0,
                                   max_rate=float(max(rate.max(), 1.0 / rate.min())))


def beat_sync_config(strength: object) -> BeatSyncConfig | None:
    """The config for a user's strength setting (0..1; 0 or False: off), or a ValueError naming the problem."""
    if isinstance(strength, bool):
        return BeatSyncConfig() if strength else None
    if not isinstance(strength, (int, float)) or not np.isfinite(strength) or not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"beat sync must be a number from 0 (off) to 1 (full), got {strength!r}")
    return BeatSyncConfig(strength=float(strength)) if strength > 0 else None
