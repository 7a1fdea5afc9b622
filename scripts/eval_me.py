#!/usr/bin/env python
"""Motion Expert evaluation on the held-out (test) songs: FID_k, FID_g, Div_k, Div_g, BAS, PFC.

Rows: ground truth (the real test dances), the baseline (weights/baseline, when shipped), the ME at beta = 1
(unguided) and at the default beta, and a 3-minute extrapolation row (the ME dancing to a 3-min stretch of each test
song, one pass; FID/Div on its first 20 s like every row, BAS and PFC over the whole length). The reference pool is the
train split. Also prints the foot-lock slide before/after and the joint-speed drift of the 3-min dances.
`--quick` (under a minute: two songs, 20 s each) ends with `fid_k_me=<x> fid_k_baseline=<y> bas_me=<z> bas_gt=<w>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import DanceDataset, default_cache_dir  # noqa: E402
from backend.metrics.report import MetricRow, format_table, score  # noqa: E402
from backend.motion.checkpoint import SHIPPED_BASELINE, SHIPPED_ME, torch_threads  # noqa: E402
from backend.motion.generate import MotionExpert  # noqa: E402
from backend.motion.sampling import SampleOptions  # noqa: E402
from backend.music.features import MusicFeatures  # noqa: E402


def dances(expert: MotionExpert, clips, beta: float, steps: int, seconds: float | None, lock_feet: bool = True):
    out, reports = [], []
    for i, clip in enumerate(clips):
        music = clip.music if seconds is None else clip.music.slice(0, min(clip.music.num_frames, int(seconds * 30)))
        out.append(expert.generate(music, SampleOptions(steps=steps, beta=beta, seed=i), lock_feet=lock_feet))
        reports.append(expert.last_foot_lock)
    return out, reports


def speed_drift(motion) -> float:
    """Relative change of mean joint speed between the first and the last minute."""
    j = motion.joint_positions()
    speed = np.linalg.norm(j[1:] - j[:-1], axis=-1).mean(axis=1)
    first, last = speed[:1800].mean(), speed[-1800:].mean()
    return float(abs(last - first) / max(first, 1e-9))


def back_to_back(clips, seconds: float) -> MusicFeatures:
    """`seconds` of music made of the clips' songs one after another (repeated if they are too short)."""
    import numpy as np

    frames = int(seconds * 30)
    feats = np.concatenate([c.music.features for c in clips])
    feats = np.concatenate([feats] * int(np.ceil(frames / len(feats))))[:frames]
    return MusicFeatures(feats, np.flatnonzero(feats[:, -1] > 0), np.flatnonzero(feats[:, -2] > 0), 0.0,
                         len(feats) / 30)


def long_report(expert: MotionExpert, clips, minutes: float, beta: float, steps: int) -> None:
    """One pass over `minutes` of music: is the dance still alive and in place at the end?"""
    import time

    import numpy as np

    music = back_to_back(clips, minutes * 60)
    t = time.perf_counter()
    motion = expert.generate(music, SampleOptions(steps=steps, beta=beta, seed=0), lock_feet=True)
    wall = time.perf_counter() - t
    j = motion.joint_positions()
    finite = bool(np.isfinite(j).all())
    root = motion.root_translation[:, [0, 2]]
    reach = float(np.linalg.norm(root - root[0], axis=-1).max())
    print(f"{minutes:g}-min dance in one pass: {wall:.1f} s wall, finite={finite}, root stays within {reach:.2f} m "
          f"of its start, height {motion.root_translation[:, 1].min():.2f}-{motion.root_translation[:, 1].max():.2f} m, "
          f"joint-speed change last vs first minute {speed_drift(motion):.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--baseline", type=Path, default=SHIPPED_BASELINE)
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--split", default="test", choices=["test", "val"], help="held-out songs to score (val: for "
                                                                              "choosing between checkpoints)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--long", type=float, default=0.0,
                    help="also dance to MINUTES of held-out music (test and val songs back to back) and report drift")
    args = ap.parse_args()
    torch_threads()

    ds = DanceDataset(args.data, default_cache_dir())
    train = [c.motion for c in ds.split("train")]
    test = ds.split(args.split)
    seconds = None
    if args.quick:
        test, seconds = test[:2], 20.0
    gt = [c.motion if seconds is None else c.motion.slice(0, int(seconds * 30)) for c in test]
    beats = [c.music.beat_frames if seconds is None else c.music.slice(0, int(seconds * 30)).beat_frames for c in test]
    rows: list[MetricRow] = [score("ground truth", train, gt, beats)]

    baseline_row = None
    if (args.baseline / "model.safetensors").is_file():
        base = MotionExpert.load(args.baseline)
        baseline_row = score("baseline (transformer, CFG, two passes)", train,
                             dances(base, test, args.beta, args.steps, seconds)[0], beats)
        rows.append(baseline_row)
    me = MotionExpert.load(args.me)
    rows.append(score("ME beta=1", train, dances(me, test, 1.0, args.steps, seconds)[0], beats))
    me_dances, reports = dances(me, test, args.beta, args.steps, seconds)
    me_row = score(f"ME beta={args.beta}", train, me_dances, beats)
    rows.append(me_row)
    raw, _ = dances(me, test, args.beta, args.steps, seconds, lock_feet=False)
    rows.append(score(f"ME beta={args.beta}, no foot lock", train, raw, beats))
    drift = []
    if not args.quick:
        # 3-min songs: the held-out songs back to back, starting from each in turn; FID/Div on the LAST 20 s (the
        # part furthest beyond the 5-s training windows), BAS and PFC over the whole dance
        long, long_beats = [], []
        for i in range(len(test)):
            music = back_to_back(test[i:] + test[:i], 180.0)
            long.append(me.generate(music, SampleOptions(steps=args.steps, beta=args.beta, seed=i), lock_feet=True))
            long_beats.append(music.beat_frames)
        rows.append(score("ME 3-min songs (FID on the last 20 s)", train, long, long_beats, crop="end"))
        drift = [speed_drift(m) for m in long if m.num_frames >= 3600]

    if args.long:
        long_report(MotionExpert.load(args.me), ds.split("test") + ds.split("val"), args.long, args.beta, args.steps)

    from rich.console import Console

    console = Console(width=140)
    console.print(format_table(rows))
    slide_b = sum(r.slide_before for r in reports if r)
    slide_a = sum(r.slide_after for r in reports if r)
    print(f"foot lock on the ME dances: planted-ankle slide {slide_b:.2f} m -> {slide_a:.2f} m")
    if drift:
        print(f"3-min dances: joint-speed change last vs first minute: {', '.join(f'{d:.0%}' for d in drift)}")
    base_fid = baseline_row.fid_k if baseline_row else float("nan")
    print(f"fid_k_me={me_row.fid_k:.2f} fid_k_baseline={base_fid:.2f} bas_me={me_row.bas:.4f} bas_gt={rows[0].bas:.4f}")


if __name__ == "__main__":
    main()
