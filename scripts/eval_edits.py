#!/usr/bin/env python
"""Editing quality of the shipped Motion Expert on held-out songs: are kept parts exact, are the seams smooth?

For each held-out song (the first `--seconds` of it): a dance, then
- regenerate: frames [1/3, 2/3) regenerated, the rest kept (temporal inpainting);
- keyframes: every 2nd second's frame kept from the dance, the rest regenerated;
- lower body: the lower body's rotations and the root path kept, the upper body regenerated (joint-wise);
- path: the root follows a circle of 1 m radius (trajectory guidance);
- loop: a seamless loop (the end joins the start, tied inside the sampler).
Kept error = max |kept value - reference| in joint positions (m). Seam jerk = mean joint jerk (m/s^3, third
difference at 30 fps) within 2 frames of each seam, against the median jerk elsewhere in the same dance, and the same
ratio for the unedited dance at the same frames (so a seam that is no rougher than the dance around it scores ~1).
`--quick` (two songs, 12 s) ends with `seam_jerk_ratio_max=<x> kept_error_max=<y>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import DanceDataset, default_cache_dir  # noqa: E402
from backend.motion.checkpoint import SHIPPED_ME, torch_threads  # noqa: E402
from backend.motion.editing import follow_path, keep_frames, keep_joints  # noqa: E402
from backend.motion.generate import MotionExpert  # noqa: E402
from backend.motion.sampling import DEFAULT_BETA, DEFAULT_RECONSTRUCT, SampleOptions  # noqa: E402
from rigs.skeleton import smpl_skeleton  # noqa: E402

LOWER_BODY = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
              "right_foot"]


def jerk(joints: np.ndarray, fps: float = 30.0) -> np.ndarray:
    """(T-3,) mean joint jerk magnitude per frame (third difference), attributed to the middle of its window."""
    d3 = np.diff(joints, n=3, axis=0) * fps ** 3
    return np.linalg.norm(d3, axis=-1).mean(axis=1)


def _near(n: int, seams: list[int], radius: int) -> np.ndarray:
    near = np.zeros(n, bool)
    for s in seams:
        near[max(0, s - radius - 2): min(n, s + radius)] = True  # jerk index i spans frames i..i+3
    return near


def seam_ratio(joints: np.ndarray, seams: list[int], radius: int = 2) -> float:
    """Mean jerk within `radius` frames of the seams over the median jerk elsewhere."""
    j = jerk(joints)
    near = _near(len(j), seams, radius)
    return float(j[near].mean() / max(np.median(j[~near]), 1e-9))


def calm_ratio(joints: np.ndarray, reference: np.ndarray, seams: list[int], radius: int = 2) -> float:
    """Median jerk away from the seams against the unedited dance's (an edit must not roughen the rest)."""
    j, r = jerk(joints), jerk(reference)
    near = _near(len(j), seams, radius)
    return float(np.median(j[~near]) / max(np.median(r[~near]), 1e-9))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--me", type=Path, default=SHIPPED_ME)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--beta", type=float, default=DEFAULT_BETA)
    ap.add_argument("--reconstruct", type=float, default=DEFAULT_RECONSTRUCT,
                    help="reconstruction-guidance weight for the edits (0: replacement only)")
    args = ap.parse_args()
    torch_threads()
    ds = DanceDataset(args.data, default_cache_dir())
    songs = ds.split("test")
    seconds = args.seconds
    if args.quick:
        songs, seconds = songs[:2], 12.0
    me = MotionExpert.load(args.me)
    norm = me.normalizer
    results: dict[str, list[tuple[float, float, float]]] = {}
    # positions that depend only on kept rotations and the root: the lower body's joints (spine joints hang on the
    # regenerated spine rotations)
    lower = [smpl_skeleton().index(n) for n in LOWER_BODY]
    for i, clip in enumerate(songs):
        music = clip.music.slice(0, min(clip.music.num_frames, int(seconds * 30)))
        T = music.num_frames
        opts = lambda **kw: SampleOptions(steps=args.steps, beta=args.beta, seed=i + 1,  # noqa: E731
                                          reconstruct=args.reconstruct, **kw)
        ref = me.generate(music, SampleOptions(steps=args.steps, beta=args.beta, seed=i))
        ref_j = ref.joint_positions()
        frames = np.arange(T)
        a, b = T // 3, 2 * T // 3
        outside = np.r_[0:a, b:T]
        keys = frames[::60]
        t = np.linspace(0, 2 * np.pi, T)
        circle = np.stack([np.cos(t) - 1.0, np.sin(t)], axis=1) + ref.root_translation[0, [0, 2]]
        edits = {
            "regenerate middle third": (keep_frames(ref, frames[(frames < a) | (frames >= b)], norm), [a, b],
                                        lambda m: np.abs(m.joint_positions()[outside] - ref_j[outside]).max()),
            "keyframes every 2 s": (keep_frames(ref, keys, norm), list(keys[1:]),
                                    lambda m: np.abs(m.joint_positions()[keys] - ref_j[keys]).max()),
            "keep lower body + root": (keep_joints(ref, LOWER_BODY, norm, with_root=True), [],
                                       lambda m: np.abs(m.joint_positions()[:, lower] - ref_j[:, lower]).max()),
            "follow a 1 m circle": (follow_path(circle, norm), [],
                                    lambda m: np.abs(m.root_translation[:, [0, 2]] - circle).max()),
        }
        for name, (constraint, seams, kept_error) in edits.items():
            m = me.generate(music, opts(), constraint)
            j = m.joint_positions()
            ratio = seam_ratio(j, seams) if seams else float("nan")
            base = seam_ratio(ref_j, seams) if seams else float("nan")
            results.setdefault(name, []).append((kept_error(m), ratio, base, calm_ratio(j, ref_j, seams)))
        looped = me.generate(music, opts(loop=30))
        j = looped.joint_positions()
        # played again: frame 0 follows frame T-1, moved by the travel (a loop may travel; its pose and speed join)
        travel = j[-1, 0] + (j[-1, 0] - j[-2, 0]) - j[0, 0]
        travel[1] = 0.0
        wrapped = np.concatenate([j[-15:], j[:15] + travel], axis=0)  # the seam sits at index 15
        results.setdefault("seamless loop (end -> start)", []).append(
            (float("nan"), seam_ratio(wrapped, [15]), seam_ratio(j, [T // 2]), float("nan")))
    print(f"{len(songs)} held-out songs, {seconds:g} s each, {args.steps} DDIM steps, beta {args.beta}, "
          f"reconstruction guidance {args.reconstruct:g}")
    print(f"{'edit':>30} {'kept error (m)':>15} {'seam jerk / elsewhere':>22} {'unedited, same frames':>22} "
          f"{'jerk elsewhere / unedited':>26}")
    worst_ratio, worst_kept = 0.0, 0.0
    for name, rows in results.items():
        kept = np.array([r[0] for r in rows])
        ratio = np.array([r[1] for r in rows])
        base = np.array([r[2] for r in rows])
        k = np.nanmax(kept) if np.isfinite(kept).any() else float("nan")
        r = np.nanmean(ratio) if np.isfinite(ratio).any() else float("nan")
        b_ = np.nanmean(base) if np.isfinite(base).any() else float("nan")
        calm = np.array([row[3] for row in rows])
        c_ = np.nanmean(calm) if np.isfinite(calm).any() else float("nan")
        print(f"{name:>30} {k:>15.2e} {r:>22.2f} {b_:>22.2f} {c_:>26.2f}")
        worst_ratio = max(worst_ratio, r) if np.isfinite(r) else worst_ratio
        worst_kept = max(worst_kept, k) if np.isfinite(k) else worst_kept
    print(f"seam_jerk_ratio_max={worst_ratio:.2f} kept_error_max={worst_kept:.2e}")


if __name__ == "__main__":
    main()
