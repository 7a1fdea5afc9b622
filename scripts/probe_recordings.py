#!/usr/bin/env python
"""Does the Motion Expert know its train songs by their sound? A diagnostic for the Latin arms (not a test).

For train cha-cha and rumba songs it generates dances (the product's sampling, raw: no beat sync) on the original
recording and on re-rendered ones that no training window heard: pitch shifted by 1.5 semitones either way, and a
-6 dB treble tilt (backend.data.audio_variants.render). The hands' vertical energy of each dance (joints low-passed at
6 Hz) is printed as a share of the real dance's on the same span. A model that learned the styles' arm styling from
their music keeps it on the re-rendered songs; one that learned it as belonging to the recordings loses it, as it
does for a new song of the style (the held-out Latin songs, original recordings, in the same table).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.audio_variants import AudioVariant, render  # noqa: E402
from backend.data.dataset import TANG_DIR, DanceDataset  # noqa: E402
from backend.data.tang2018 import audio_span  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME  # noqa: E402
from backend.motion.generate import MotionExpert  # noqa: E402
from backend.motion.sampling import DEFAULT_BETA, SampleOptions  # noqa: E402
from backend.motion.smoothing import low_pass  # noqa: E402
from backend.music.audio import load_audio  # noqa: E402
from backend.music.features import HOP, SR, extract_features  # noqa: E402

HANDS = [20, 21, 22, 23]  # wrists and hands
TRAIN_LATIN = "DANCE_C_2,DANCE_C_7,DANCE_R_4,DANCE_R_7"
HELD_OUT = "DANCE_C_4,DANCE_R_8,DANCE_C_8,DANCE_R_9"
RECORDINGS = {  # none of these is among the training variants (whole semitones, random equalisers)
    "original": None,
    "pitch -1.5": AudioVariant(-1.5, (0.0, 0.0, 0.0, 0.0), 0),
    "pitch +1.5": AudioVariant(1.5, (0.0, 0.0, 0.0, 0.0), 0),
    "treble -6 dB": AudioVariant(0.0, (0.0, 3.0, 0.0, 0.0), 0),
}


def hands_vertical(motion) -> float:
    """Mean squared vertical velocity of the wrists and hands, (m/s)^2, joints low-passed at 6 Hz."""
    j = motion.joint_positions()
    flat = torch.as_tensor(j.reshape(len(j), -1), dtype=torch.float64)[None]
    j = low_pass(flat, 6.0, 30.0)[0].numpy().reshape(j.shape)
    return float(((np.diff(j[:, HANDS, 1], axis=0) * 30.0) ** 2).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--clips", default=TRAIN_LATIN, help="train dances whose recordings are re-rendered")
    ap.add_argument("--held-out", default=HELD_OUT, help="held-out dances, original recordings ('' off)")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"skipped: the shared data folder {args.data} is not there")
    if args.seconds < 2 or args.seeds < 1:
        sys.exit("error: --seconds must be at least 2 and --seeds at least 1")
    torch.set_num_threads(1)
    me = MotionExpert.load(args.me)
    ds = DanceDataset(args.data)
    by_name = {c.name: c for c in ds.clips}
    train, held = args.clips.split(",") if args.clips else [], args.held_out.split(",") if args.held_out else []
    missing = [n for n in train + held if n not in by_name]
    if missing:
        sys.exit(f"error: no such dances in {args.data}: {', '.join(missing)}")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.me}: hands' vertical energy, generated / real ({args.seeds} dances each)")
    table.add_column("song")
    for label in RECORDINGS:
        table.add_column(label, justify="right")

    def share(clip, music) -> float:
        frames = min(music.num_frames, clip.motion.num_frames)
        real = hands_vertical(clip.motion.slice(0, frames))
        made = [hands_vertical(me.run(music.slice(0, frames), SampleOptions(steps=args.steps, beta=DEFAULT_BETA,
                                                                             seed=100 + s),
                                      lock_feet=True, beat_sync=False).motion) for s in range(args.seeds)]
        return float(np.mean(made)) / real

    for name in train:
        clip = by_name[name]
        path, start = audio_span(args.data / TANG_DIR / name)
        frames = min(clip.motion.num_frames, int(args.seconds * 30))
        y = load_audio(path, SR)[int(round(start * SR)): int(round(start * SR)) + (frames + 1) * HOP]
        cells = []
        for variant in RECORDINGS.values():
            music = clip.music.slice(0, frames) if variant is None else extract_features(render(y, variant), SR)
            cells.append(f"{share(clip, music):.2f}")
        table.add_row(f"{name} (train)", *cells)
    for name in held:
        clip = by_name[name]
        frames = min(clip.motion.num_frames, int(args.seconds * 30))
        table.add_row(f"{name} (held out)", f"{share(clip, clip.music.slice(0, frames)):.2f}",
                      *[""] * (len(RECORDINGS) - 1))
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
