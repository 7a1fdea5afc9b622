#!/usr/bin/env python
"""Eval: how often `--style auto` names the right style, on excerpts of every song (train songs left out in turn).

Each song of the paired data (music2dance_tang2018) is cut into excerpts of `--windows` seconds (a new one every
0.8 of that), each analysed as the CLI analyses a section (`analyse_section`: its own beats and meter), and
`retrieval.auto_style`'s vote is taken on the shipped figure library's train dances. A train song's own dance is left
out of the vote (so every row is a song the vote has not heard); the one tango of the train split then has no tango
to vote for, and is reported apart.

`scripts/eval_style.py [--windows 25,60] [--data ../shared/data]` prints a table per split and style and ends in
`style_val=<right>/<n> style_test=<right>/<n> style_train_loo=<right>/<n>` (excerpts of all windows; the lone tango
excluded).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data import tang2018  # noqa: E402
from backend.data.dataset import TANG_DIR, split_of  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME  # noqa: E402
from backend.motion.retrieval import RetrievalError, auto_style, dance_tempi, library_for  # noqa: E402
from backend.music.audio import audio_duration  # noqa: E402
from backend.music.features import analyse_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--windows", default="25,60", help="excerpt lengths in seconds, comma-separated")
    args = ap.parse_args()
    folder = args.data / TANG_DIR
    if not folder.is_dir():
        sys.exit(f"eval_style: no paired songs at {folder} (give --data, the folder holding {TANG_DIR}/)")
    lib = library_for(SHIPPED_ME)
    if lib is None:
        sys.exit(f"eval_style: no figure library beside {SHIPPED_ME}")
    a = lib.arrays
    windows = [float(w) for w in args.windows.split(",")]
    right: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    wrong: Counter = Counter()
    for song in sorted(folder.glob("DANCE_*")):
        audio = next(song.glob("audio.*"), None)
        if audio is None:
            continue
        truth = tang2018.STYLES.get(song.name.split("_")[1], "unknown")
        split = split_of(song.name)
        own = [d for d, n in enumerate(lib.names) if n == song.name]  # its own dance: left out of the vote
        seconds, _ = audio_duration(audio)
        others = set(dance_tempi(lib, ~a["mirrored"] & ~np.isin(a["dance"], own))[1])  # styles left to vote
        for w in windows:
            for start in np.arange(0.0, max(seconds - w, 0.0) + 1e-6, 0.8 * w):
                music = analyse_section(audio, float(start), float(min(start + w, seconds)))
                try:
                    got = auto_style(lib, music, leave_out=(song.name,))
                except RetrievalError as exc:
                    got = f"none ({exc})"
                lone = truth not in others  # the style's only train dance is this one
                key = (split if split != "train" else "train (left out)", truth + (" (alone)" if lone else ""), w)
                right[key][0] += got == truth
                right[key][1] += 1
                if got != truth:
                    wrong[(song.name, got)] += 1
        print(f"{song.name}: {truth}, {seconds:.0f} s", flush=True)
    print(f"\n{'split':18s} {'style':16s} {'window':>6s}  right")
    for key in sorted(right):
        print(f"{key[0]:18s} {key[1]:16s} {key[2]:6.0f}  {right[key][0]}/{right[key][1]}")
    if wrong:
        print("wrong: " + ", ".join(f"{s} -> {g} ({n}x)" for (s, g), n in sorted(wrong.items())))

    def total(split: str) -> str:
        rows = [v for k, v in right.items() if k[0].startswith(split) and "(alone)" not in k[1]]
        return f"{sum(r[0] for r in rows)}/{sum(r[1] for r in rows)}"

    print(f"style_val={total('val')} style_test={total('test')} style_train_loo={total('train')}")


if __name__ == "__main__":
    main()
