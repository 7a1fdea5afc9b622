#!/usr/bin/env python
"""Motion Expert evaluation on the held-out (test) songs: FID_k, FID_g, Div_k, Div_g, BAS, PFC.

Rows: ground truth (the real test dances), the baseline (weights/baseline, when shipped; CFG scale 2 as EDGE) as
sampled and with beat sync, the ME at beta = 0.5 (guided harder) and at the default beta (0.8) as sampled (foot lock
on), without foot lock, and as shipped (beat sync + foot lock), and a 3-minute extrapolation row (the shipped ME
dancing to 3 min of held-out songs back to back, one pass; FID/Div on its last 20 s, BAS and PFC over the whole
length). The reference pool is the train split.
Also prints the foot-lock slide and the beat-sync offsets before/after, and the joint-speed drift of 3-min dances
(songs back to back, and one song looped so the music's statistics do not change).
Music dependence (metrics.md section 10): every dance scored against its own song and against the next song (BAS and
tempo lock), for the real dances, the raw ME (no beat sync) and as shipped; and the motion faults an animator sees
(max joint speed, hip turns faster than 720 deg/s, lowest foot point, planted-foot slide). `--styles K`: K dances per
test song in each style, classified by a style classifier trained on the real train and val dances.
Does it move like a dancer (metrics.md section 11): figure distance to the nearest 2-s stretch of a train dance, the
longest near-verbatim run and the median joint acceleration, for the real dances, the raw ME and as shipped.
`--quick` (under a minute: two songs, 20 s each) ends with
`fid_k_me=<x> fid_k_baseline=<y> bas_me=<z> bas_gt=<w> tl_ratio_raw=<a> bas_ratio_raw=<b> figure_dist=<c>
verbatim_s=<d> div_k=<e>` (the last three of the raw ME: median figure distance over dances in m, the longest
near-verbatim run of any dance in s, and Div_k).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import TANG_DIR, DanceDataset, default_cache_dir  # noqa: E402
from backend.data.tang2018 import audio_span  # noqa: E402
from backend.metrics.cleanliness import format_cleanliness, summarise  # noqa: E402
from backend.metrics.figures import FigureIndex, format_figures, score_set  # noqa: E402
from backend.metrics.music_dependence import (SongRef, dependence, format_dependence, format_lock_shares,  # noqa: E402
                                             song_tempo)
from backend.metrics.report import MetricRow, format_table, score  # noqa: E402
from backend.metrics.style import StyleClassifier, leave_one_out_accuracy  # noqa: E402
from backend.motion.conditioning import STYLES  # noqa: E402
from backend.motion.checkpoint import SHIPPED_BASELINE, SHIPPED_ME, model_for, torch_threads  # noqa: E402
from backend.motion.generate import Generation, MotionExpert  # noqa: E402
from backend.motion.sampling import DEFAULT_BETA, SampleOptions  # noqa: E402
from backend.music.features import MusicFeatures  # noqa: E402


BEAT_GUIDANCE: float | None = None  # --beat-guidance: None keeps the product's default
STYLE_GUIDANCE: float | None = None  # --style-guidance: None keeps the product's default
FLIP_REPAIR = True  # --no-flip-repair: the sampler leaves pelvis flips in its clean estimates (finished dances only)
SPEED_LIMIT: float | None = None  # --speed-limit: None keeps the product's default (0: off)
CUTOFF: float | None = None  # --cutoff: None keeps the product's default (0: off)


def _options(**kw) -> SampleOptions:
    """Sampling options of this evaluation (the product's, with --beat-guidance when given)."""
    if BEAT_GUIDANCE is not None:
        kw.setdefault("beat_guidance", BEAT_GUIDANCE)
    kw.setdefault("flip_repair", FLIP_REPAIR)
    if STYLE_GUIDANCE is not None:
        kw.setdefault("style_guidance", STYLE_GUIDANCE)
    if SPEED_LIMIT is not None:
        kw.setdefault("speed_limit", SPEED_LIMIT)
    if CUTOFF is not None:
        kw.setdefault("cutoff", CUTOFF)
    return SampleOptions(**kw)


def song_refs(data: Path, clips, seconds: float | None) -> list[SongRef]:
    """Each clip's beats (from its dance's first frame) and the tempo of the same audio span (librosa at 22050 Hz)."""
    from backend.music.audio import load_audio

    refs = []
    for clip in clips:
        frames = clip.music.num_frames if seconds is None else min(clip.music.num_frames, int(seconds * 30))
        path, start = audio_span(data / TANG_DIR / clip.name)
        y = load_audio(path, 22050)[int(start * 22050): int((start + frames / 30) * 22050)]
        beats = clip.music.beat_frames
        refs.append(SongRef(beats[beats < frames], song_tempo(y, 22050)))
    return refs


def style_report(me: MotionExpert, ds: DanceDataset, test, steps: int, beta: float, seeds: int,
                 seconds: float | None) -> float:
    """Dances in each style for every test song, classified; returns the share recognised as the asked style."""
    from rich.console import Console
    from rich.table import Table

    known = ds.split("train") + ds.split("val")
    clf = StyleClassifier.fit([c.motion for c in known], [c.style for c in known])
    real_test = np.mean([clf.predict(c.motion) == c.style for c in test])
    loo = leave_one_out_accuracy([c.motion for c in known], [c.style for c in known])
    print(f"style classifier on real dances: test split {real_test:.0%} ({len(test)} dances), leave-one-out over "
          f"train+val {loo:.0%} ({len(known)} dances)")
    asked = [s for s in STYLES if s != "auto"]
    confusion = {a: {b: 0 for b in asked} for a in asked}
    for i, clip in enumerate(test):
        music = clip.music if seconds is None else clip.music.slice(0, min(clip.music.num_frames, int(seconds * 30)))
        for style in asked:
            for k in range(seeds):
                motion = me.generate(music, _options(steps=steps, beta=beta, seed=i + 100 * k, style=style),
                                     lock_feet=True)
                confusion[style][clf.predict(motion)] += 1
    table = Table(title="requested style (rows) vs style the classifier recognises (columns)")
    table.add_column("asked")
    for b in asked:
        table.add_column(b, justify="right")
    table.add_column("recognised", justify="right")
    for a in asked:
        n = sum(confusion[a].values())
        table.add_row(a, *[str(confusion[a][b]) for b in asked], f"{confusion[a][a] / n:.0%}")
    Console(width=140).print(table)
    total = sum(confusion[a][a] for a in asked) / sum(sum(r.values()) for r in confusion.values())
    print(f"requested style recognised in {total:.0%} of {len(test) * len(asked) * seeds} dances")
    return total


def dances(expert: MotionExpert, clips, beta: float, steps: int, seconds: float | None, seeds: int,
           lock_feet: bool = True, beat_sync: bool = False) -> list[Generation]:
    """`seeds` dances per clip (seeds i, i + 100, ...), with the chosen clean-ups; clip-major order.

    FID on six dances is noisy; more seeds per held-out song steady it.
    """
    out = []
    for i, clip in enumerate(clips):
        music = clip.music if seconds is None else clip.music.slice(0, min(clip.music.num_frames, int(seconds * 30)))
        for k in range(seeds):
            out.append(expert.run(music, _options(steps=steps, beta=beta, seed=i + 100 * k),
                                  lock_feet=lock_feet, beat_sync=beat_sync))
    return out


def motions(runs: list[Generation]):
    return [r.motion for r in runs]


def joint_speed(motion) -> np.ndarray:
    """(T-1,) mean joint speed per frame, m/s."""
    j = motion.joint_positions()
    return np.linalg.norm(j[1:] - j[:-1], axis=-1).mean(axis=1) * motion.fps


def speed_drift(motion) -> float:
    """Relative change of mean joint speed between the first and the last minute."""
    speed = joint_speed(motion)
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
    motion = expert.generate(music, _options(steps=steps, beta=beta, seed=0), lock_feet=True, beat_sync=True)
    wall = time.perf_counter() - t
    j = motion.joint_positions()
    finite = bool(np.isfinite(j).all())
    root = motion.root_translation[:, [0, 2]]
    reach = float(np.linalg.norm(root - root[0], axis=-1).max())
    print(f"{minutes:g}-min dance in one pass: {wall:.1f} s wall, finite={finite}, root stays within {reach:.2f} m "
          f"of its start, height {motion.root_translation[:, 1].min():.2f}-{motion.root_translation[:, 1].max():.2f} m, "
          f"joint-speed change last vs first minute {speed_drift(motion):.0%}")


def segment_speeds(motion, seconds: float = 30.0) -> np.ndarray:
    """Mean joint speed (m/s) of each whole `seconds` segment of a dance."""
    speed = joint_speed(motion)
    k = max(1, round(len(speed) / (seconds * 30)))  # the last frame has no speed: split evenly, no part dropped
    return np.array([part.mean() for part in np.array_split(speed, k)])


def drift_report(expert: MotionExpert, test, train, seeds: int, beta: float, steps: int) -> None:
    """Systematic drift or sampling spread? Each held-out song looped to 3 min, `seeds` dances each, as sampled.

    A drift would show in the mean over dances of each 30-s segment's joint speed against the first segment's; the
    spread between dances shows how much one dance's energy wanders. The real dances' 30-s segments are printed for
    scale (they are ~1 min long, so only their first and last 30 s compare).
    """
    rows, drifts = [], []
    for i, clip in enumerate(test):
        music = back_to_back([clip], 180.0)
        for k in range(seeds):
            motion = expert.generate(music, _options(steps=steps, beta=beta, seed=i + 100 * k))
            rows.append(segment_speeds(motion))
            drifts.append(speed_drift(motion))
    R = np.array(rows)
    ratio = R / R[:, :1]
    print(f"3-min looped songs, {len(R)} dances as sampled: mean joint speed per 30-s segment / first segment's: "
          f"{' '.join(f'{v:.3f}' for v in ratio.mean(0))} (mean over dances; spread (std) "
          f"{' '.join(f'{v:.3f}' for v in ratio.std(0))})")
    last_vs_first = np.array(drifts)
    print(f"  per dance, last minute vs first: median {np.median(last_vs_first):.0%}, within 15 % for "
          f"{(last_vs_first <= 0.15).sum()} of {len(R)}; systematic change (mean speeds, all dances): "
          f"{R[:, -2:].mean() / R[:, :2].mean() - 1:+.1%}")
    real = [segment_speeds(m) for m in train if m.num_frames >= 1800]
    change = [abs(r[-1] / r[0] - 1) for r in real]
    print(f"  real dances (train, >= 1 min): last vs first 30 s median {np.median(change):.0%}, "
          f"max {max(change):.0%} over {len(real)} dances")


def steps_table(me: MotionExpert, train, test, beta: float, step_counts: list[int], seeds: int) -> None:
    """Quality and speed of the shipped ME (beat sync + foot lock) against the number of DDIM steps."""
    import time

    from rich.console import Console

    beats = [c.music.beat_frames for c in test for _ in range(seeds)]
    seconds = seeds * sum(c.music.num_frames for c in test) / 30
    rows, walls = [], []
    for steps in step_counts:
        t0 = time.perf_counter()
        runs = dances(me, test, beta, steps, None, seeds, beat_sync=True)
        walls.append(time.perf_counter() - t0)
        rows.append(score(f"ME beta={beta:g}, {steps} steps", train, motions(runs), beats))
    Console(width=140).print(format_table(rows))
    for steps, wall in zip(step_counts, walls):
        print(f"{steps:>4} steps: {wall / seconds * 60:.2f} s of wall time per 60 s of dance (incl. clean-ups)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--baseline", type=Path, default=SHIPPED_BASELINE)
    ap.add_argument("--beta", type=float, default=DEFAULT_BETA, help="the default beta row")
    ap.add_argument("--baseline-beta", type=float, default=0.5,
                    help="the baseline's CFG as beta = 1/scale (0.5: EDGE's guidance weight 2)")
    ap.add_argument("--split", default="test", choices=["test", "val"], help="held-out songs to score (val: for "
                                                                              "choosing between checkpoints)")
    ap.add_argument("--steps", type=int, default=12, help="DDIM steps (the product default)")
    ap.add_argument("--beat-guidance", type=float, default=None,
                    help="the sampler's beat guidance weight (default: the product's; 0: the network's own timing)")
    ap.add_argument("--style-guidance", type=float, default=None,
                    help="with --styles: how hard an asked style is pushed (default: the product's)")
    ap.add_argument("--no-flip-repair", action="store_true",
                    help="the sampler leaves pelvis flips in its clean estimates (the finished dance is still repaired)")
    ap.add_argument("--speed-limit", type=float, default=None,
                    help="m/s above which a stretch is played more slowly (default: the product's; 0: off)")
    ap.add_argument("--cutoff", type=float, default=None,
                    help="Hz above which motion is taken out of the sampler's last clean estimate (default: the "
                         "product's; 0: off)")
    ap.add_argument("--seeds", type=int, default=1, help="dances per held-out song for the generated rows")
    ap.add_argument("--steps-sweep", default="",
                    help="comma list of DDIM step counts: score the shipped ME at each (quality vs steps) and stop")
    ap.add_argument("--drift-seeds", type=int, default=0,
                    help="only the drift study: each held-out song looped to 3 min, this many dances per song")
    ap.add_argument("--styles", type=int, default=0,
                    help="only the style study: this many dances per test song in each style, classified (danced by "
                         "the shipped style model, as the product does, unless --me names another folder)")
    ap.add_argument("--style-seconds", type=float, default=None,
                    help="with --styles: dance only the first SECONDS of each song (the classifier votes over 5-s "
                         "windows; 30 s gives it 11)")
    ap.add_argument("--long", type=float, default=0.0,
                    help="also dance to MINUTES of held-out music (test and val songs back to back) and report drift")
    args = ap.parse_args()
    global BEAT_GUIDANCE, CUTOFF, FLIP_REPAIR, SPEED_LIMIT, STYLE_GUIDANCE
    FLIP_REPAIR = not args.no_flip_repair
    SPEED_LIMIT = args.speed_limit
    CUTOFF = args.cutoff
    STYLE_GUIDANCE = args.style_guidance
    torch_threads()
    seeds = max(1, args.seeds)
    if args.beat_guidance is not None:  # every dance of this run (ME and baseline rows alike)
        BEAT_GUIDANCE = args.beat_guidance

    ds = DanceDataset(args.data, default_cache_dir())
    train = [c.motion for c in ds.split("train")]
    test = ds.split(args.split)
    seconds = None
    if args.quick:
        test, seconds = test[:2], 20.0
    if args.styles:
        # as the product does: an asked style of the shipped default is danced by the shipped style model
        styled = model_for("waltz", None if args.me == SHIPPED_ME else args.me)
        style_report(MotionExpert.load(styled), ds, test, args.steps, args.beta, args.styles,
                     args.style_seconds or seconds)
        return
    if args.drift_seeds:
        drift_report(MotionExpert.load(args.me), test, train, args.drift_seeds, args.beta, args.steps)
        return
    if args.steps_sweep:
        steps_table(MotionExpert.load(args.me), train, test, args.beta, [int(s) for s in args.steps_sweep.split(",")],
                    seeds)
        return
    gt = [c.motion if seconds is None else c.motion.slice(0, int(seconds * 30)) for c in test]
    beats = [c.music.beat_frames if seconds is None else c.music.slice(0, int(seconds * 30)).beat_frames for c in test]
    rows: list[MetricRow] = [score("ground truth", train, gt, beats)]
    gen_beats = [b for b in beats for _ in range(seeds)]  # dances() is clip-major

    baseline_row = None
    if (args.baseline / "model.safetensors").is_file():
        product = BEAT_GUIDANCE
        if args.beat_guidance is None:  # the baseline rows stay as recorded before beat guidance: the network alone
            BEAT_GUIDANCE = 0.0
        base = MotionExpert.load(args.baseline)
        baseline_row = score(f"baseline (transformer, CFG scale {1 / args.baseline_beta:g}, two passes)", train,
                             motions(dances(base, test, args.baseline_beta, args.steps, seconds, seeds)),
                             gen_beats)
        rows.append(baseline_row)
        rows.append(score("baseline + beat sync", train,
                          motions(dances(base, test, args.baseline_beta, args.steps, seconds, seeds,
                                         beat_sync=True)),
                          gen_beats))
        BEAT_GUIDANCE = product
    me = MotionExpert.load(args.me)
    rows.append(score("ME beta=0.5", train, motions(dances(me, test, 0.5, args.steps, seconds, seeds)), gen_beats))
    as_sampled = dances(me, test, args.beta, args.steps, seconds, seeds)
    raw_row = score(f"ME beta={args.beta:g} (raw: no beat sync)", train, motions(as_sampled), gen_beats)
    rows.append(raw_row)
    raw = dances(me, test, args.beta, args.steps, seconds, seeds, lock_feet=False)
    rows.append(score(f"ME beta={args.beta:g}, no foot lock", train, motions(raw), gen_beats))
    shipped = dances(me, test, args.beta, args.steps, seconds, seeds, beat_sync=True)
    me_row = score(f"ME beta={args.beta:g} + beat sync (as shipped)", train, motions(shipped), gen_beats)
    rows.append(me_row)
    drift, looped_drift = [], []
    if not args.quick:
        # 3-min songs: the held-out songs back to back, starting from each in turn; FID/Div on the LAST 20 s (the
        # part furthest beyond the 5-s training windows), BAS and PFC over the whole dance
        long, long_beats = [], []
        for i in range(len(test)):
            music = back_to_back(test[i:] + test[:i], 180.0)
            long.append(me.generate(music, _options(steps=args.steps, beta=args.beta, seed=i), lock_feet=True,
                                    beat_sync=True))
            long_beats.append(music.beat_frames)
        rows.append(score("ME 3-min songs (FID on the last 20 s)", train, long, long_beats, crop="end"))
        drift = [speed_drift(m) for m in long if m.num_frames >= 3600]
        # the same on stationary music: each held-out song looped to 3 min, so any change is the model's own drift
        looped = [me.generate(back_to_back([clip], 180.0), _options(steps=args.steps, beta=args.beta, seed=i),
                              lock_feet=True, beat_sync=True) for i, clip in enumerate(test)]
        looped_drift = [speed_drift(m) for m in looped]

    if args.long:
        long_report(MotionExpert.load(args.me), ds.split("test") + ds.split("val"), args.long, args.beta, args.steps)

    from rich.console import Console

    console = Console(width=140)
    console.print(format_table(rows))
    refs = song_refs(args.data, test, seconds)
    dep = [dependence("real dances", gt, refs),
           dependence(f"ME beta={args.beta:g} raw (no beat sync)", motions(as_sampled), refs, seeds),
           dependence(f"ME beta={args.beta:g} as shipped", motions(shipped), refs, seeds)]
    console.print(format_dependence(dep))
    console.print(format_lock_shares([c.name for c in test], refs, gt, motions(as_sampled), seeds))
    console.print(format_cleanliness([summarise("real dances", gt),
                                      summarise(f"ME beta={args.beta:g} raw (no beat sync)", motions(as_sampled)),
                                      summarise(f"ME beta={args.beta:g} as shipped", motions(shipped))]))
    index = FigureIndex.from_motions(train)
    figures = [score_set("real dances", index, gt), score_set(f"ME beta={args.beta:g} raw (no beat sync)", index,
                                                               motions(as_sampled)),
               score_set(f"ME beta={args.beta:g} as shipped", index, motions(shipped))]
    console.print(format_figures(figures, real=figures[0]))
    print(f"pelvis flips re-interpolated in the shipped ME dances: {sum(r.root_flips for r in shipped)} in "
          f"{sum(r.motion.num_frames for r in shipped) / 1800:.1f} min")
    locks = [r.foot_lock for r in shipped if r.foot_lock]
    syncs = [r.beat_sync for r in shipped if r.beat_sync]
    print(f"foot lock on the shipped ME dances: planted-ankle slide {sum(r.slide_before for r in locks):.2f} m -> "
          f"{sum(r.slide_after for r in locks):.2f} m")
    if syncs:
        print(f"beat sync: {sum(r.anchors for r in syncs)} of {sum(r.motion_beats for r in syncs)} motion beats moved "
              f"onto music beats; mean offset to the nearest beat {np.mean([r.mean_offset_before for r in syncs]):.1f}"
              f" -> {np.mean([r.mean_offset_after for r in syncs]):.1f} frames; playback rate within "
              f"x{max(r.max_rate for r in syncs):.2f}")
    if drift:
        print(f"3-min dances (songs back to back): joint-speed change last vs first minute: "
              f"{', '.join(f'{d:.0%}' for d in drift)}")
        print(f"3-min dances (one song looped): joint-speed change last vs first minute: "
              f"{', '.join(f'{d:.0%}' for d in looped_drift)}")
    base_fid = baseline_row.fid_k if baseline_row else float("nan")
    print(f"fid_k_me={me_row.fid_k:.2f} fid_k_baseline={base_fid:.2f} bas_me={me_row.bas:.4f} bas_gt={rows[0].bas:.4f} "
          f"tl_ratio_raw={dep[1].lock_ratio:.3f} bas_ratio_raw={dep[1].bas_ratio:.3f} "
          f"figure_dist={figures[1].distance:.4f} verbatim_s={figures[1].verbatim:.1f} div_k={raw_row.div_k:.2f}")


if __name__ == "__main__":
    main()
