#!/usr/bin/env python
"""Probe (issue 30, item 2): does a small contrastive music-motion encoder match music to motion better than the
retrieval's rhythm-and-style features, on songs it never saw?

Trained on the figure library's phrases (train dances and mirror images): music side = the phrase's song onset
accents on the beat grid and tempo (and mean MFCC timbre with `--timbre`), motion side = the dancer's mean joint
speed on the same grid, energy, arm energy, travel and turn; two 2-layer MLPs to 32-D, InfoNCE (temperature 0.1,
batch 256, Adam 1e-3, one CPU thread, seconds). Val: for every two bars of each val song, the 4 best library phrases
of the song's style by (a) the retrieval's music costs (tempo and accent profile, retrieval.W_TEMPO / W_ACCENT),
(b) the encoder, (c) both (z-scored sum), (d) chance, each compared with what the real val dancer did there: the
correlation of speed profiles and |log energy ratio|.

`scripts/probe_music_motion.py [--steps 1500] [--timbre] [--split val]`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import DanceDataset, default_cache_dir  # noqa: E402
from backend.motion import figure_library as fl  # noqa: E402
from backend.motion import retrieval as rt  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME  # noqa: E402
from backend.music.features import MFCC  # noqa: E402


def music_x(accent: np.ndarray, timbre: np.ndarray | None, tempo: np.ndarray) -> np.ndarray:
    """(N, D) music-side inputs: accents (NaN padding as 0), timbre / 50 when given, log2(tempo / 120)."""
    parts = [np.nan_to_num(accent.astype(np.float64))]
    if timbre is not None:
        parts.append(timbre.astype(np.float64) / 50.0)
    return np.concatenate(parts + [np.log2(tempo / 120.0)[:, None]], axis=1)


def motion_x(a: dict) -> np.ndarray:
    """(N, D) motion-side inputs of library phrases."""
    return np.concatenate([np.nan_to_num(a["speed"].astype(np.float64)), a["energy"][:, None], a["arms"][:, None],
                           a["travel"][:, None], np.abs(a["turn"])[:, None]], axis=1)


def train(m: np.ndarray, x: np.ndarray, steps: int) -> tuple[nn.Module, nn.Module, tuple]:
    """The two encoders trained with symmetric InfoNCE on (music, motion) rows; and the input scalings."""
    torch.manual_seed(0)
    scale = (m.mean(0), m.std(0) + 1e-6, x.mean(0), x.std(0) + 1e-6)
    tm = torch.tensor((m - scale[0]) / scale[1], dtype=torch.float32)
    tx = torch.tensor((x - scale[2]) / scale[3], dtype=torch.float32)
    enc_m = nn.Sequential(nn.Linear(m.shape[1], 64), nn.ReLU(), nn.Linear(64, 32))
    enc_x = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 32))
    opt = torch.optim.Adam(list(enc_m.parameters()) + list(enc_x.parameters()), 1e-3, weight_decay=1e-4)
    for step in range(steps):
        idx = torch.randint(0, len(tm), (256,))
        logits = F.normalize(enc_m(tm[idx]), dim=1) @ F.normalize(enc_x(tx[idx]), dim=1).T / 0.1
        loss = (F.cross_entropy(logits, torch.arange(256)) + F.cross_entropy(logits.T, torch.arange(256))) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"step {step}: InfoNCE {loss.item():.3f} (chance {np.log(256):.2f})", flush=True)
    return enc_m, enc_x, scale


def windows(clip, lib: fl.FigureLibrary, timbre: bool):
    """Per two song bars of `clip`: (music-side row, rhythm cost per pool phrase, the real dancer's speed profile)."""
    a, per_bar = lib.arrays, fl.beats_per_bar(clip.style, 0.5)
    n, beats = fl.BARS_PER_PHRASE * per_bar, np.asarray(clip.music.beat_frames, int)
    j = clip.motion.resample(30.0).joint_positions()
    speed = np.r_[np.linalg.norm(np.diff(j, axis=0), axis=-1).mean(1) * 30.0, 0.0]
    for i in rt.song_bars(clip.music, per_bar)[::fl.BARS_PER_PHRASE]:
        target = beats[i:i + n + 1]
        if i + n >= len(beats) or target[-1] >= len(j):
            break
        tempo = 60.0 * fl.FPS / float(np.mean(np.diff(target)))
        acc = rt.accent_profile(clip.music, target)
        grid = np.interp(np.arange(n * fl.SAMPLES_PER_BEAT) / fl.SAMPLES_PER_BEAT, np.arange(n + 1), target * 1.0)
        cost = rt.W_TEMPO * np.abs(np.log2(a["tempo"] / tempo)) + rt.W_ACCENT * (1 - rt.correlation(acc, a["accent"]))
        padded = np.full(a["accent"].shape[1], np.nan)
        padded[:len(acc)] = acc
        mfcc = clip.music.features[target[0]:target[-1], MFCC].mean(0)[None] if timbre else None
        yield music_x(padded[None], mfcc, np.array([tempo])), cost, np.interp(grid, np.arange(len(speed)), speed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--timbre", action="store_true", help="the music side also hears the mean MFCCs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lib = fl.FigureLibrary.load(SHIPPED_ME / rt.LIBRARY_FILE)
    a = lib.arrays
    enc_m, enc_x, scale = train(music_x(a["accent"], a["timbre"] if args.timbre else None, a["tempo"]), motion_x(a),
                                args.steps)
    with torch.no_grad():
        zx = F.normalize(enc_x(torch.tensor((motion_x(a) - scale[2]) / scale[3], dtype=torch.float32)), dim=1).numpy()
    rng, rows = np.random.default_rng(0), {k: [] for k in ("rhythm and style", "encoder", "both", "chance")}
    z = lambda c: (c - c.mean()) / (c.std() + 1e-9)  # noqa: E731
    for clip in DanceDataset(args.data, default_cache_dir()).split(args.split):
        pool = np.flatnonzero((a["style"] == lib.meta["style_names"].index(clip.style)) & ~a["mirrored"])
        for m, cost, real in windows(clip, lib, args.timbre):
            with torch.no_grad():
                zm = F.normalize(enc_m(torch.tensor((m - scale[0]) / scale[1], dtype=torch.float32)), dim=1).numpy()[0]
            enc = -(zx[pool] @ zm)
            for name, c in zip(rows, (cost[pool], enc, z(cost[pool]) + z(enc), rng.random(len(pool)))):
                top = pool[np.argsort(c, kind="stable")[:rt.TOP]]
                speed = np.nan_to_num(a["speed"][top, :len(real)].astype(np.float64))
                rows[name].append((rt.correlation(real, speed).mean(),
                                   np.abs(np.log(a["energy"][top] / max(real.mean(), 1e-3))).mean()))
    for name, v in rows.items():
        v = np.array(v)
        print(f"{name:16s} top-{rt.TOP} phrases vs the real {args.split} dancer: speed-profile correlation "
              f"{v[:, 0].mean():+.3f} (+-{v[:, 0].std() / np.sqrt(len(v)):.3f}), |log energy ratio| "
              f"{v[:, 1].mean():.3f} ({len(v)} two-bar windows)")


if __name__ == "__main__":
    main()
