#!/usr/bin/env python
"""Retrieval + refinement against pure generation: the --novelty sweep (issue 30), through the product's pipeline.

For each novelty, `--seeds` raw dances (beat sync 0, foot lock on, product defaults otherwise; seeds i, i + 100, ...
as scripts/eval_me.py) per song of the split, made by backend.motion.pipeline.dance with the shipped ME and its figure
library, scored as eval_me scores them: FID_k and Div_k against the train dances, metrics.md section 11 (figure
distance, longest near-verbatim run, median joint acceleration / the real dances'), section 10 (tempo lock and BAS,
own song / the next song), the mean joint speed in the first second (a snap at the start), the hands' vertical energy
of the cha-cha and rumba songs / the real dance's (scripts/probe_energy.py's measure over whole dances), the mean floor
distance of the pelvis from the dance's start (travel: FID_k's largest term), the highest 99.9th percentile of joint
speed of any dance (a wild join), the pelvis's fastest frame over the floor (median and worst dance: a lunge), and
the wall time per 60 s of dance.
The real dances of the split come first.

`scripts/eval_novelty.py [--split val] [--novelty 0,0.3,0.5,0.7,1] [--seeds 2] [--beat-sync 1] [--seed-base N]`
(beat sync 1: as shipped; --seed-base: another set of takes, for the spread of the figures)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from backend.data.dataset import DanceDataset, default_cache_dir  # noqa: E402
from backend.metrics.figures import FigureIndex, score_set  # noqa: E402
from backend.metrics.music_dependence import dependence  # noqa: E402
from backend.metrics.report import score  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME  # noqa: E402
from backend.motion.generate import MotionExpert  # noqa: E402
from backend.motion.pipeline import dance  # noqa: E402
from backend.motion.smoothing import low_pass  # noqa: E402
from bridge.request import DanceRequest  # noqa: E402
from eval_me import joint_speed, song_refs  # noqa: E402

HANDS = [20, 21, 22, 23]
LATIN = ("cha-cha", "rumba")


def hands_energy(motion) -> float:
    """Mean squared vertical hand speed ((m/s)^2), joints low-passed at 6 Hz (probe_energy.py's first column)."""
    j = motion.resample(30.0).joint_positions()
    flat = torch.as_tensor(j.reshape(len(j), -1), dtype=torch.float64)[None]
    j = low_pass(flat, 6.0, 30.0)[0].numpy().reshape(j.shape)
    return float(((np.diff(j[:, HANDS, 1], axis=0) * 30.0) ** 2).mean())


def travel(motion) -> float:
    """Mean floor distance (m) of the pelvis from where the dance starts: what FID_k's energy term mostly weighs (the
    reference code's precedence bug makes it the joints' distance from the start, metrics.md section 1)."""
    root = motion.root_translation[:, [0, 2]]
    return float(np.linalg.norm(root - root[0], axis=1).mean())


def peak_speed(motion) -> float:
    """99.9th percentile of every joint's speed (m/s): a join the model danced wildly shows here first."""
    j = motion.joint_positions()
    return float(np.percentile(np.linalg.norm(j[1:] - j[:-1], axis=-1) * motion.fps, 99.9))


def pelvis_peak(motion) -> float:
    """Fastest the pelvis crosses the floor (m/s), frame to frame: a lunge at a join shows here."""
    root = motion.root_translation[:, [0, 2]]
    return float(np.linalg.norm(np.diff(root, axis=0), axis=1).max() * motion.fps)


def first_second(motion) -> float:
    """Mean joint speed (m/s) over the first second."""
    return float(joint_speed(motion)[:30].mean())


def row(name, motions, clips, seeds, train, index, refs, real=None) -> dict:
    """One line of figures for `motions` (clip-major, `seeds` per clip)."""
    beats = [c.music.beat_frames for c in clips for _ in range(seeds)]
    m = score(name, train, motions, beats)
    dep = dependence(name, motions, refs, seeds)
    fig = score_set(name, index, motions)
    arms = [hands_energy(x) / hands_energy(clips[i // seeds].motion) for i, x in enumerate(motions)
            if clips[i // seeds].style in LATIN]
    out = dict(name=name, fid_k=m.fid_k, div_k=m.div_k, bas=m.bas, fig=fig.distance, fig_lo=fig.distance_lo,
               fig_hi=fig.distance_hi, run=fig.verbatim, accel=fig.acceleration, lock_own=dep.lock_own,
               lock=dep.lock_ratio, bas_ratio=dep.bas_ratio, start=np.mean([first_second(x) for x in motions]),
               start_hi=max(first_second(x) for x in motions), start_lo=min(first_second(x) for x in motions),
               arms=np.mean(arms) if arms else float("nan"), travel=np.mean([travel(x) for x in motions]),
               peak=max(peak_speed(x) for x in motions), pelvis=np.median([pelvis_peak(x) for x in motions]),
               pelvis_hi=max(pelvis_peak(x) for x in motions))
    out["accel_ratio"] = out["accel"] / real["accel"] if real else 1.0
    return out


def show(r: dict) -> None:
    print(f"{r['name']:>14s} FID_k {r['fid_k']:6.1f} Div_k {r['div_k']:5.2f} | figure {r['fig']:.3f} m "
          f"({r['fig_lo']:.3f}-{r['fig_hi']:.3f}) run {r['run']:4.1f} s accel x{r['accel_ratio']:.2f} | lock own "
          f"{r['lock_own']:.3f} own/other {r['lock']:.2f}x BAS {r['bas']:.3f} own/other {r['bas_ratio']:.2f}x | "
          f"1st s {r['start']:.2f} m/s ({r['start_lo']:.2f}-{r['start_hi']:.2f}) | Latin hands {r['arms']:.2f} of real"
          f" | travel {r['travel']:.2f} m | p99.9 joint speed max {r['peak']:.1f} m/s | pelvis peak median "
          f"{r['pelvis']:.2f} (max {r['pelvis_hi']:.2f}) m/s"
          + (f" | {r['wall']:.2f} s per 60 s" if "wall" in r else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--novelty", default="0,0.3,0.5,0.7,1")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--beat-sync", type=float, default=0.0, help="0: raw (the issue's figures); 1: as shipped")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: one core, as on a shared machine)")
    ap.add_argument("--seed-base", type=int, default=0,
                    help="added to every seed: another set of takes, to see how far a figure moves between seed sets "
                         "(0: the issue's seeds)")
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the pipeline's choice, 2 at novelty "
                                                            "0 and 12 above it)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))
    ds = DanceDataset(args.data, default_cache_dir())
    train_clips = ds.split("train")
    train = [c.motion for c in train_clips]
    clips = ds.split(args.split)
    index = FigureIndex.from_motions(train)
    refs = song_refs(args.data, clips, None)
    expert = MotionExpert.load(args.me)
    real = row("real dances", [c.motion for c in clips], clips, 1, train, index, refs)
    show(real)
    for novelty in [float(v) for v in args.novelty.split(",")]:
        motions, wall = [], 0.0
        for i, clip in enumerate(clips):
            for k in range(args.seeds):
                t = time.perf_counter()
                request = DanceRequest(novelty=novelty, seed=args.seed_base + i + 100 * k, beat_sync=args.beat_sync,
                                       steps=args.steps)
                motion, _ = dance(request, clip.music, expert)
                wall += time.perf_counter() - t
                motions.append(motion)
        r = row(f"novelty {novelty:g}", motions, clips, args.seeds, train, index, refs, real)
        r["wall"] = wall / (sum(m.num_frames for m in motions) / 1800.0)
        show(r)


if __name__ == "__main__":
    main()
