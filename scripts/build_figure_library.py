#!/usr/bin/env python
"""Build the figure library (backend/motion/figure_library.py) from the train dances, next to the weights.

`scripts/build_figure_library.py [--weights weights/me] [--data ../shared/data]` writes WEIGHTS/figures.npz, stamped
with the hash of WEIGHTS/config.json and of the train dances, and prints what it holds. Only the train split goes in
(never the val or test songs), the same dances the weights were trained on.
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
from backend.motion import figure_library as fl  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME  # noqa: E402


def sources(data: Path) -> list[fl.DanceSource]:
    """The train split as library sources (figure_library.train_sources)."""
    return fl.train_sources(DanceDataset(data, default_cache_dir()))


def describe(lib: fl.FigureLibrary) -> None:
    """Phrases per style, graph out-degrees, dead ends."""
    a = lib.arrays
    names = lib.meta["style_names"]
    for s, name in enumerate(names):
        ours = a["style"] == s
        seconds = (a["stop"][ours] - a["start"][ours]) / fl.FPS
        print(f"  {name:8s} {ours.sum():5d} phrases (mirrors included), {np.median(seconds):.1f} s median, tempo "
              f"{np.percentile(a['tempo'][ours], 5):.0f}-{np.percentile(a['tempo'][ours], 95):.0f} bpm")
    same = np.array([(a["style"][lib.successors(p)[0]] == a["style"][p]).sum() for p in range(lib.size)])
    degree = np.diff(a["indptr"])
    print(f"  graph: {len(a['successors'])} edges under {lib.meta['join_rms']:g} m; successors per phrase median "
          f"{np.median(degree):.0f} (same style {np.median(same):.0f}, 10th percentile {np.percentile(same, 10):.0f}); "
          f"{(degree == 0).sum()} phrases with none (dance ends)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=SHIPPED_ME, help="the weights folder the library goes beside")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--join-rms", type=float, default=fl.JOIN_RMS, help="m: boundaries closer than this may join")
    args = ap.parse_args()
    t = time.perf_counter()
    src = sources(args.data)
    lib = fl.build(src, fl.config_hash(args.weights), join_rms=args.join_rms)
    path = lib.save(args.weights / "figures.npz")
    print(f"{path}: {lib.size} phrases from {len(src)} train dances and their mirror images, "
          f"{path.stat().st_size / 1e6:.1f} MB, built in {time.perf_counter() - t:.1f} s (config "
          f"{lib.meta['config_sha']}, data {lib.meta['data_sha']})")
    describe(lib)


if __name__ == "__main__":
    main()
