"""Metric tables: the ground-truth row (real test split scored against the real train split)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.metrics.beats import beat_align_score, motion_beats
from backend.metrics.contact import clips_of, pfc
from backend.metrics.fid import diversity, fid
from backend.metrics.geometric import geometric_features
from backend.metrics.kinetic import kinetic_features
from rigs.motion import Motion

FID_FPS = 60.0
FID_FRAMES = 1200  # 20 s at 60 fps, as Bailando crops generated dances


def fid_joints(motion: Motion, crop: bool | str) -> np.ndarray:
    """Joints for the FID/Div features: 60 fps, zero start, cropped to the first 20 s (crop=True), the last 20 s
    (crop="end", zero start at that window's first frame) or not at all."""
    joints = motion.resample(FID_FPS).joint_positions()
    if crop == "end":
        joints = joints[-FID_FRAMES:]
    elif crop:
        joints = joints[:FID_FRAMES]
    return joints - joints[:1, :1]


@dataclass
class MetricRow:
    """One row of the metric table."""

    name: str
    n: int
    fid_k: float
    fid_g: float
    fid_g_varying: float  # FID_g over features that vary in the reference pool (our variant, see fid.fid)
    div_k: float
    div_g: float
    bas: float
    pfc: float


def score(name: str, reference: list[Motion], generated: list[Motion], music_beats: list[np.ndarray],
          crop: bool | str = True) -> MetricRow:
    """Score `generated` dances (30 fps) against the `reference` pool; music beats at 30 fps, one array per dance."""
    ref_k = np.stack([kinetic_features(fid_joints(m, crop=False)) for m in reference])
    ref_g = np.stack([geometric_features(fid_joints(m, crop=False)) for m in reference])
    gen_joints = [fid_joints(m, crop=crop) for m in generated]
    gen_k = np.stack([kinetic_features(j) for j in gen_joints])
    gen_g = np.stack([geometric_features(j) for j in gen_joints])
    joints30 = [m.resample(30.0).joint_positions() for m in generated]
    bas = float(np.nanmean([beat_align_score(b, motion_beats(j)) for b, j in zip(music_beats, joints30)]))
    clips = [c for j in joints30 for c in clips_of(j)]
    return MetricRow(name, len(generated), fid(ref_k, gen_k), fid(ref_g, gen_g), fid(ref_g, gen_g, varying_only=True),
                     diversity(ref_k, gen_k),
                     diversity(ref_g, gen_g), bas, pfc(clips))


def ground_truth_row(dataset) -> MetricRow:
    """The real test split scored as if generated, against the real train split as the reference pool."""
    train = [c.motion for c in dataset.split("train")]
    test = dataset.split("test")
    return score("ground truth (test vs train)", train, [c.motion for c in test], [c.music.beat_frames for c in test])


def format_table(rows: list[MetricRow]):
    """A rich Table of metric rows."""
    from rich.table import Table

    table = Table(title="FID lower is better; Div closer to GT; BAS higher; PFC lower. FID_g* drops features "
                        "that never vary in the reference pool (not in the reference protocol)")
    for col in ("model", "N", "FID_k", "FID_g", "FID_g*", "Div_k", "Div_g", "BAS", "PFC"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r.name, str(r.n), f"{r.fid_k:.2f}", f"{r.fid_g:.4g}", f"{r.fid_g_varying:.2f}", f"{r.div_k:.2f}",
                      f"{r.div_g:.4g}", f"{r.bas:.4f}", f"{r.pfc:.3f}")
    return table


def ground_truth_table(dataset):
    """The ground-truth metric table for `mace-dance eval --gt`."""
    return format_table([ground_truth_row(dataset)])
