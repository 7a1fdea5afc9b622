#!/usr/bin/env python
"""The choreographer's tools on held-out songs with the shipped Motion Expert: comps, keyed poses, repeats.

For each val and test song:
- comp: two takes (seeds), take 1 - 2 - 1 - 2 switching at 1/4, 1/2 and 3/4 of the first `--seconds`; the frames
  around each switch regenerated (choreography.TRANSITION_HALF each side). Seam jerk as in scripts/eval_edits.py
  (jerk within 2 frames of a seam over the median elsewhere) at the transitions' edges and at the switches, against
  the hard cut (the pasted takes) and the unedited take at the same frames.
- keys: three poses of another take at 1/4, 1/2, 3/4 (on the nearest beats) put on the first take through the
  product's pipeline (as the add-on's Dance Through Keys sends them), whole body and arms only:
  largest rotation error at the keyed joints and seam jerk at the keys.
- repeat: on the whole song, each detected repeat (A', ...) against its first occurrence: mean joint distance of the
  root-relative poses without the option, with it, and with the mirrored option (against the mirrored phrase).
- joins (issue 33, item 4): at each comp switch, key and repeat join, the fastest pelvis (root x/z) against the joined
  dances' fastest stretch (the takes; the dance a repeat was pasted into), and the fastest foot sliding on the floor
  against the dance's own 99th percentile away from the joins (backend.metrics.joins).
`--quick` (two songs, 20 s, repeats on the first 60 s) ends with `comp_seam_ratio=<x> key_error_max=<y>
joins_ok=<k>/<n>`. `--songs DANCE_W_27,DANCE_C_4` picks songs by name (any split) instead of the val and test songs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from backend.data.dataset import DanceDataset, default_cache_dir  # noqa: E402
from backend.metrics.joins import JoinSpeeds, join_speeds  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME, torch_threads  # noqa: E402
from backend.motion.choreography import (TRANSITION_HALF, apply_repeats, dance_repeats,  # noqa: E402
                                         keyed_pose_error, keys_from_dance, phrase_distance,
                                         repeat_plan, snap_to_beats, transition_constraint)
from backend.motion.generate import MotionExpert  # noqa: E402
from backend.motion.pipeline import dance as pipeline_dance  # noqa: E402
from backend.motion.sampling import SampleOptions  # noqa: E402
from backend.music.structure import song_sections  # noqa: E402
from bridge.request import DanceRequest, KeyedPoses  # noqa: E402
from eval_edits import seam_ratio  # noqa: E402
from rigs.splice import assemble  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--songs", type=str, default="", help="comma-separated DANCE_* names instead of val + test")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no data folder at {args.data}: this evaluation needs the shared songs")
    torch_threads()
    names = [n for n in args.songs.split(",") if n]
    ds = DanceDataset(args.data, default_cache_dir(), names=names or None)
    songs = ds.clips if names else ds.split("val") + ds.split("test")
    seconds, whole = args.seconds, None
    if args.quick:
        songs, seconds, whole = songs[:2], 20.0, 60.0
    me = MotionExpert.load(args.me)
    norm = me.normalizer
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    repeats = []
    joins: list[tuple[str, str, JoinSpeeds]] = []
    for i, clip in enumerate(songs):
        music = clip.music.slice(0, min(clip.music.num_frames, int(seconds * 30)))
        T = music.num_frames
        opts = SampleOptions(steps=args.steps, seed=100 + i)
        takes = [me.generate(music, SampleOptions(steps=args.steps, seed=2 * i + k), lock_feet=True, beat_sync=True)
                 for k in (0, 1)]
        joints = [t.joint_positions() for t in takes]
        reference, switches = assemble(takes, [(0, T // 4, 0), (T // 4, T // 2, 1), (T // 2, 3 * T // 4, 0),
                                               (3 * T // 4, T, 1)])
        constraint = transition_constraint(reference, switches, norm)
        comp = me.generate(music, opts, constraint, lock_feet=True)  # as `mace-dance comp` does
        joins.append((clip.name, "comp", join_speeds(comp, list(switches), TRANSITION_HALF, takes)))
        kept = constraint.mask[:, 0]
        edges = sorted(s + d for s in switches for d in (-TRANSITION_HALF, TRANSITION_HALF))
        cj = comp.joint_positions()
        rows.setdefault("comp: transition edges", []).append(
            (float(np.abs(cj[kept] - reference.joint_positions()[kept]).max()), seam_ratio(cj, edges),
             float("nan"), seam_ratio(joints[0], edges)))
        rows.setdefault("comp: switch frames", []).append(
            (float("nan"), seam_ratio(cj, switches), seam_ratio(reference.joint_positions(), switches),
             seam_ratio(joints[0], switches)))
        frames = snap_to_beats(np.array([T // 4, T // 2, 3 * T // 4]), music.beat_frames, T)
        arms = np.zeros((3, 24), bool)
        arms[:, 16:22] = True
        for name, mask in (("keys: whole body, on beats", None), ("keys: arms only, on beats", arms)):
            keys = keys_from_dance(takes[0], frames, mask, poses=takes[1])
            # through the product's pipeline, as the add-on's Dance Through Keys sends it: keys on a given dance
            request = DanceRequest(steps=args.steps, seed=100 + i, reference=takes[0], lock_feet=True,
                                   keys=KeyedPoses(frames=keys.frames, rotations=keys.rotations, joints=keys.joints))
            out, _ = pipeline_dance(request, music, me)
            joins.append((clip.name, name.split(",")[0], join_speeds(out, list(frames), TRANSITION_HALF, takes)))
            rows.setdefault(name, []).append((keyed_pose_error(out, keys), seam_ratio(out.joint_positions(),
                                              list(frames)), float("nan"), seam_ratio(joints[0], list(frames))))
        full = clip.music if whole is None else clip.music.slice(0, min(clip.music.num_frames, int(whole * 30)))
        plan = repeat_plan(song_sections(full))
        if plan:
            dance = me.generate(full, SampleOptions(steps=args.steps, seed=i), lock_feet=True, beat_sync=True)
            outs = {mode: dance_repeats(me, full, dance, opts, mode == "mirror", lock_feet=True)[0]
                    for mode in ("same", "mirror")}
            for mode, out in outs.items():
                pasted, at = apply_repeats(dance, plan, mode == "mirror")
                joins.append((clip.name, f"repeat {mode}", join_speeds(out, at, TRANSITION_HALF, [pasted], at)))
            for span in plan:
                repeats.append((clip.name, span, phrase_distance(dance, span), phrase_distance(outs["same"], span),
                                phrase_distance(outs["mirror"], span, mirrored=True),
                                phrase_distance(dance, span, mirrored=True)))
    print(f"{len(songs)} val+test songs, comps and keys on the first {seconds:g} s, {args.steps} DDIM steps")
    print(f"{'tool':>30} {'kept error':>11} {'seam jerk / elsewhere':>22} {'hard cut':>9} {'unedited':>9}")
    for name, rs in rows.items():
        a = np.array(rs, dtype=np.float64)
        kept = np.nanmax(a[:, 0]) if np.isfinite(a[:, 0]).any() else float("nan")
        cut = np.nanmean(a[:, 2]) if np.isfinite(a[:, 2]).any() else float("nan")
        print(f"{name:>30} {kept:>11.1e} {np.mean(a[:, 1]):>22.2f} {cut:>9.2f} {np.mean(a[:, 3]):>9.2f}")
    print(f"\nrepeats ({len(repeats)} detected): mean root-relative joint distance (m) between a repeat and its "
          "first occurrence")
    print(f"{'song':>14} {'repeat':>7} {'at (s)':>7} {'len (s)':>8} {'without':>8} {'--repeat same':>14} "
          f"{'--repeat mirror':>16} {'(mirror, without)':>18}")
    for name, span, before, same, mirrored, mirrored_before in repeats:
        print(f"{name:>14} {span.label:>7} {span.target / 30:>7.1f} {span.frames / 30:>8.1f} {before:>8.3f} "
              f"{same:>14.3f} {mirrored:>16.3f} {mirrored_before:>18.3f}")
    if repeats:
        r = np.array([x[2:] for x in repeats])
        print(f"{'mean':>14} {'':>7} {'':>7} {'':>8} {r[:, 0].mean():>8.3f} {r[:, 1].mean():>14.3f} "
              f"{r[:, 2].mean():>16.3f} {r[:, 3].mean():>18.3f}")
    print("\njoins: fastest pelvis (root x/z) and on-floor foot slide within a join's window, against their bounds "
          "(m/s; pelvis: the joined dances' fastest, slide: the dance's p99 away from joins)")
    print(f"{'song':>14} {'tool':>15} {'pelvis':>7} {'bound':>6} {'slide':>6} {'bound':>6} {'turn deg':>9} {'ok':>3}")
    for name, tool, j in joins:
        print(f"{name:>14} {tool:>15} {j.pelvis:>7.2f} {j.pelvis_bound:>6.2f} {j.slide:>6.2f} {j.slide_bound:>6.2f} "
              f"{j.turn_deg:>9.1f} {'yes' if j.ok else 'no':>3}")
    comp_ratio = np.mean([r[1] for r in rows["comp: transition edges"]])
    key_error = max(max(r[0] for r in rows[k]) for k in rows if k.startswith("keys"))
    print(f"comp_seam_ratio={comp_ratio:.2f} key_error_max={key_error:.1e} "
          f"joins_ok={sum(j.ok for _, _, j in joins)}/{len(joins)}")


if __name__ == "__main__":
    main()
