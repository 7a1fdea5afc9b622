#!/usr/bin/env python
"""Probe: a dance assembled from the figure library for each val song, scored as metrics.md section 11 scores.

For every two bars of the song (bar lines on every 3rd beat in triple time, else every 2nd, starting on the beat
phase with the strongest onset accents), one library phrase of the song's style and meter is chosen by tempo match,
accent-profile match and join cost (graph successors of the phrase before, when it has any that fit), never the same
phrase or an overlapping stretch twice in a row, and continuing its own source dance at most MAX_CONTINUE times in a
row (so it composes rather than replays). The seed picks among the TOP best. Each phrase is time-warped beat by beat
so its beats land on the song's, turned and moved so it starts where and as the phrase before ended (hip line), and
its first JOIN_FRAMES frames blend out the pose step at the join (a decaying per-joint offset). No model: the raw
retrieved dance, not wired into the sampler (issue 30 step 2 prototype).

`scripts/probe_retrieval.py [--seed 0] [--split val]` prints, per song, figure distance, longest near-verbatim run and
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
from backend.music.features import ENVELOPE, MusicFeatures  # noqa: E402
from backend.music.meter import triple_time  # noqa: E402
from rigs import rotations as rot  # noqa: E402
from rigs.motion import Motion  # noqa: E402
from rigs.splice import heading, place  # noqa: E402

TOP = 4  # the seed picks among this many best phrases
MAX_CONTINUE = 1  # phrases in a row that may simply continue the previous phrase's source dance
JOIN_FRAMES = 8  # frames over which a join's pose step is blended out
W_TEMPO, W_ACCENT, W_JOIN = 2.0, 0.5, 1.0  # per octave of tempo mismatch, per unit of (1 - correlation), per JOIN_RMS
NO_EDGE = 1.0  # extra cost of a join the graph does not allow


def song_bars(music: MusicFeatures, per_bar: int) -> np.ndarray:
    """Bar-line beat indices: every `per_bar`-th beat from the phase with the strongest mean onset accent."""
    beats = np.asarray(music.beat_frames, dtype=int)
    env = music.features[:, ENVELOPE][:, 0]
    phase = int(np.argmax([env[beats[k::per_bar]].mean() for k in range(per_bar)]))
    return np.arange(phase, len(beats), per_bar)


def accent_profile(music: MusicFeatures, beats: np.ndarray) -> np.ndarray:
    """The onset envelope on the library's grid (SAMPLES_PER_BEAT per beat), scaled by the song's 95th percentile."""
    env = music.features[:, ENVELOPE][:, 0].astype(np.float64)
    grid = np.interp(np.arange((len(beats) - 1) * fl.SAMPLES_PER_BEAT) / fl.SAMPLES_PER_BEAT, np.arange(len(beats)),
                     beats.astype(np.float64))
    return np.interp(grid, np.arange(len(env)), env) / max(float(np.percentile(env, 95)), 1e-6)


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of profile `a` (n,) with each row of `b` (P, >= n)."""
    b = b[:, :len(a)].astype(np.float64)
    a = a - a.mean()
    b = b - b.mean(1, keepdims=True)
    return (b @ a) / np.maximum(np.linalg.norm(b, axis=1) * np.linalg.norm(a), 1e-9)


def choose(lib: fl.FigureLibrary, music: MusicFeatures, style: str, seed: int,
           mirrors: bool = False) -> list[tuple[int, np.ndarray]]:
    """(phrase, song beat frames it covers) for every two-bar stretch of the song; mirror-image phrases only with
    `mirrors` (a mirrored ballroom dance is as far from every real one as the ME's dances: 0.19 m)."""
    a = lib.arrays
    per_bar = fl.beats_per_bar(None, triple_time(music))
    beats = np.asarray(music.beat_frames, dtype=int)
    bars = song_bars(music, per_bar)
    n = fl.BARS_PER_PHRASE * per_bar
    pool = np.flatnonzero((a["style"] == lib.meta["style_names"].index(style)) & (a["per_bar"] == per_bar)
                          & (mirrors | ~a["mirrored"]))
    if not len(pool):
        raise SystemExit(f"the library has no {style} phrases in {per_bar}-beat bars")
    bounds = a["boundary"].astype(np.float64)
    rng = np.random.default_rng(seed)
    out: list[tuple[int, np.ndarray]] = []
    prev, continued = -1, 0
    for i in bars[::fl.BARS_PER_PHRASE]:
        if i + n >= len(beats):
            break
        target = beats[i:i + n + 1]
        tempo = 60.0 * fl.FPS / float(np.mean(np.diff(target)))
        cost = W_TEMPO * np.abs(np.log2(a["tempo"][pool] / tempo))
        cost += W_ACCENT * (1.0 - correlation(accent_profile(music, target), a["accent"][pool]))
        ok = np.ones(len(pool), dtype=bool)
        if prev >= 0:
            join = fl.join_cost(bounds[a["end_boundary"][prev]][None], bounds[a["start_boundary"][pool]])[0]
            succ = set(lib.successors(prev)[0].tolist())
            cost += W_JOIN * join / fl.JOIN_RMS + NO_EDGE * np.array([p not in succ for p in pool])
            same = (a["dance"][pool] == a["dance"][prev]) & (a["mirrored"][pool] == a["mirrored"][prev])
            ok &= ~(same & (a["start"][pool] < a["stop"][prev]) & (a["stop"][pool] > a["start"][prev]))  # no repeat
            if continued >= MAX_CONTINUE:
                ok &= ~(same & (a["start"][pool] == a["stop"][prev]))
        cand = np.flatnonzero(ok)
        best = cand[np.argsort(cost[cand])[:TOP]]
        p = int(pool[rng.choice(best)])
        cont = prev >= 0 and a["dance"][p] == a["dance"][prev] and a["mirrored"][p] == a["mirrored"][prev] \
            and a["start"][p] == a["stop"][prev]
        continued = continued + 1 if cont else 0
        out.append((p, target))
        prev = p
    return out


def warped(lib: fl.FigureLibrary, p: int, target: np.ndarray, lo: int, hi: int) -> Motion:
    """Song frames lo..hi of phrase `p`'s source dance, time-warped so the phrase's beats land on `target`."""
    a = lib.arrays
    src = lib.source(int(a["dance"][p]), bool(a["mirrored"][p]))
    beats = lib.phrase_beats(p) + a["start"][p]
    f = np.arange(lo, hi + 1, dtype=np.float64)
    t = np.interp(f, target, beats)
    # before the first and after the last beat: the outer beat's rate, so intros and outros keep dancing
    t = np.where(f < target[0], beats[0] + (f - target[0]) * (beats[1] - beats[0]) / (target[1] - target[0]), t)
    t = np.where(f > target[-1], beats[-1] + (f - target[-1]) * (beats[-1] - beats[-2]) / (target[-1] - target[-2]), t)
    return src.at_times(t)


def joined(prev: Motion, piece: Motion) -> Motion:
    """`piece` placed where `prev`'s last frame stands and faces (hip line), its first frames eased onto that pose."""
    jp, jq = prev.joint_positions()[-1:], piece.joint_positions()[:1]
    turn = float(fl.hip_yaw(jp)[0] - fl.hip_yaw(jq)[0])
    piece = place(piece, 0, prev.root_translation[-1, [0, 2]], heading(piece.matrices()[0, 0]) + turn)
    # a decaying offset from the previous end pose: per-joint rotation and root height, gone after JOIN_FRAMES
    w = np.clip(1.0 - np.arange(piece.num_frames) / JOIN_FRAMES, 0.0, 1.0)
    delta = rot.quaternion_multiply(prev.rotations[-1], rot.quaternion_conjugate(piece.rotations[0]))
    delta[0] = [1.0, 0.0, 0.0, 0.0]  # the root's heading is already matched by place()
    ident = np.broadcast_to(np.array([1.0, 0.0, 0.0, 0.0]), delta.shape)
    offsets = rot.quaternion_slerp(np.broadcast_to(ident, (piece.num_frames, *delta.shape)),
                                   np.broadcast_to(delta, (piece.num_frames, *delta.shape)),
                                   np.broadcast_to(w[:, None], (piece.num_frames, delta.shape[0])))
    rotations = rot.quaternion_multiply(offsets, piece.rotations)
    trans = piece.root_translation.copy()
    trans[:, 1] += w * (prev.root_translation[-1, 1] - trans[0, 1])
    return Motion(rotations, trans, fps=piece.fps)


def assemble(lib: fl.FigureLibrary, music: MusicFeatures, style: str, seed: int,
             mirrors: bool = False) -> tuple[Motion, int]:
    """The retrieved dance for the whole of `music` and the number of phrases in it."""
    picks = choose(lib, music, style, seed, mirrors)
    frames = music.num_frames
    dance: Motion | None = None
    for k, (p, target) in enumerate(picks):
        lo = 0 if k == 0 else int(target[0])
        hi = frames - 1 if k == len(picks) - 1 else int(picks[k + 1][1][0])  # the next bar line: dropped after placing
        piece = warped(lib, p, target, lo, hi)
        if dance is None:
            dance = piece
        else:
            piece = joined(dance, piece)
            dance = Motion(np.concatenate([dance.rotations[:-1], piece.rotations]),
                           np.concatenate([dance.root_translation[:-1], piece.root_translation]), fps=piece.fps)
    return dance, len(picks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--library", type=Path, default=SHIPPED_ME / "figures.npz")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mirrors", action="store_true", help="let mirror-image phrases in")
    args = ap.parse_args()
    lib = fl.FigureLibrary.load(args.library, fl.config_hash(args.library.parent))
    ds = DanceDataset(args.data, default_cache_dir())
    train = ds.split("train")
    index = FigureIndex.from_motions([c.motion for c in train], [c.name for c in train])
    rows = []
    for clip in ds.split(args.split):
        t = time.perf_counter()
        dance, phrases = assemble(lib, clip.music, clip.style, args.seed, args.mirrors)
        wall = time.perf_counter() - t
        real, ours = score_motion(index, clip.motion), score_motion(index, dance)
        rows.append((real, ours))
        fast = (cleanliness(clip.motion).p999_joint_speed, cleanliness(dance).p999_joint_speed)
        print(f"{clip.name:11s} {clip.style:8s} real: {real.distance:.3f} m, run {real.verbatim:4.1f} s, accel "
              f"{real.acceleration:.2f}, p99.9 speed {fast[0]:.1f} m/s | retrieved ({phrases} phrases, {wall:.1f} s): "
              f"{ours.distance:.3f} m, run {ours.verbatim:4.1f} s, accel {ours.acceleration:.2f} "
              f"({ours.acceleration / real.acceleration:.2f}x), p99.9 speed {fast[1]:.1f} m/s")
    med = lambda i, k: float(np.median([getattr(r[i], k) for r in rows]))  # noqa: E731
    print(f"median over songs: real {med(0, 'distance'):.3f} m, longest run {max(r[0].verbatim for r in rows):.1f} s;"
          f" retrieved {med(1, 'distance'):.3f} m, longest run {max(r[1].verbatim for r in rows):.1f} s; accel "
          f"ratio {np.mean([r[1].acceleration for r in rows]) / np.mean([r[0].acceleration for r in rows]):.2f}")


if __name__ == "__main__":
    main()
