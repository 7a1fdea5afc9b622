"""Song structure on the held-out ballroom songs: how many sections and repeats `song_sections` finds, and whether its
repeats hold up under a check it does not use for labelling: the timbre (MFCC 1-12) course of same-letter section
pairs against different-letter pairs (mean cosine similarity of 8-point trajectories). Prints a table."""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import SPLITS  # noqa: E402
from backend.music.features import MFCC, analyse_file  # noqa: E402
from backend.music.structure import course, similarity, song_sections  # noqa: E402


def timbre_similarity(features: np.ndarray, a, b) -> float:
    mfcc = features[:, MFCC][:, 1:13]
    mfcc = mfcc - mfcc.mean(0)
    ta, tb = course(mfcc[a.start:a.end]), course(mfcc[b.start:b.end])
    return float(np.mean(np.sum(ta * tb, axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--splits", default="val,test")
    args = ap.parse_args()
    rows, same_t, diff_t, same_c, diff_c = [], [], [], [], []
    for split in args.splits.split(","):
        for name in sorted(SPLITS[split]):
            path = args.data / "music2dance_tang2018" / name / "audio.mp3"
            if not path.is_file():
                continue
            music = analyse_file(path)
            secs = song_sections(music)
            for a, b in combinations(secs, 2):
                t = timbre_similarity(music.features, a, b)
                c = similarity(music, (a.start, a.end), (b.start, b.end))
                (same_t if a.letter == b.letter else diff_t).append(t)
                (same_c if a.letter == b.letter else diff_c).append(c)
            repeats = sum(s.label != s.letter for s in secs)
            rows.append((f"{split}/{name}", f"{music.duration:.0f} s", str(len(secs)), str(repeats),
                         " ".join(s.label for s in secs)))
    if not rows:
        raise SystemExit(f"no held-out songs found under {args.data / 'music2dance_tang2018'}")
    header = ("song", "length", "sections", "repeats", "labels")
    width = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for r in [header, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, width)))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    print(f"pairs: {len(same_t)} same-letter, {len(diff_t)} different-letter")
    print(f"chroma course similarity (used for labels): same {mean(same_c):.3f}, different {mean(diff_c):.3f}")
    print(f"timbre course similarity (not used for labels): same {mean(same_t):.3f}, different {mean(diff_t):.3f}")


if __name__ == "__main__":
    main()
