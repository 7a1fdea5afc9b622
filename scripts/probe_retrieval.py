#!/usr/bin/env python
"""Probe: a dance assembled from the figure library for each val song, scored as metrics.md section 11 scores.

The dance is backend.motion.retrieval.assemble's (per two song bars a library phrase of the song's style by tempo,
accent profile and join cost, time-warped onto the song's beats, joins eased), raw: no model.

`scripts/probe_retrieval.py [--seed 0] [--split val] [--auto-style]` prints, per song, figure distance, longest near-verbatim run and
median joint acceleration of the real dance and of the retrieved one (both against the train split).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import DanceDataset, default_cache_dir  # noqa: E402
from backend.metrics.cleanliness import cleanliness  # noqa: E402
from backend.metrics.figures import FigureIndex, score_motion  # noqa: E402
from backend.motion import figure_library as fl  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME  # noqa: E402
from backend.motion.retrieval import assemble  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--library", type=Path, default=SHIPPED_ME / "figures.npz")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mirrors", action="store_true", help="let mirror-image phrases in")
    ap.add_argument("--auto-style", action="store_true", help="the style read off the music (retrieval.auto_style)")
    args = ap.parse_args()
    lib = fl.FigureLibrary.load(args.library, fl.config_hash(args.library.parent))
    ds = DanceDataset(args.data, default_cache_dir())
    train = ds.split("train")
    index = FigureIndex.from_motions([c.motion for c in train], [c.name for c in train])
    rows = []
    for clip in ds.split(args.split):
        t = time.perf_counter()
        got = assemble(lib, clip.music, "auto" if args.auto_style else clip.style, args.seed, args.mirrors)
        dance, phrases = got.motion, len(got.phrases)
        wall = time.perf_counter() - t
        real, ours = score_motion(index, clip.motion), score_motion(index, dance)
        rows.append((real, ours))
        fast = (cleanliness(clip.motion).p999_joint_speed, cleanliness(dance).p999_joint_speed)
        print(f"{clip.name:11s} {clip.style:8s} ({got.style}) real: {real.distance:.3f} m, run {real.verbatim:4.1f} s, accel "
              f"{real.acceleration:.2f}, p99.9 speed {fast[0]:.1f} m/s | retrieved ({phrases} phrases, {wall:.1f} s): "
              f"{ours.distance:.3f} m, run {ours.verbatim:4.1f} s, accel {ours.acceleration:.2f} "
              f"({ours.acceleration / real.acceleration:.2f}x), p99.9 speed {fast[1]:.1f} m/s")
    med = lambda i, k: float(np.median([getattr(r[i], k) for r in rows]))  # noqa: E731
    print(f"median over songs: real {med(0, 'distance'):.3f} m, longest run {max(r[0].verbatim for r in rows):.1f} s;"
          f" retrieved {med(1, 'distance'):.3f} m, longest run {max(r[1].verbatim for r in rows):.1f} s; accel "
          f"ratio {np.mean([r[1].acceleration for r in rows]) / np.mean([r[0].acceleration for r in rows]):.2f}")


if __name__ == "__main__":
    main()
