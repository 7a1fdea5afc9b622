#!/usr/bin/env python
"""README figures of the choreographer's tools, made with the add-on in the bpy wheel and the shipped Motion Expert.

Three takes of a song's first `--seconds` go onto an SMPL armature as the add-on lays them out (takes.add_take:
actions on muted NLA tracks), the animator's marks are comped with model-made transitions, and two figures are drawn
from what the .blend then holds:
- docs/takes_nla.png: the armature's NLA tracks (one strip per take, its seed) and the comp's action, coloured by the
  take each frame comes from, transitions hatched;
- docs/comp_speed.png: mean joint speed of the comp across its switch points, against the hard cut (the takes pasted
  together) and the takes themselves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--song", default="", help="a val/test song name (default: the first val song)")
    ap.add_argument("--seconds", type=float, default=24.0)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no data folder at {args.data}: the figures use a shared song")
    import bpy
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import blender_addon
    from backend.data.dataset import DanceDataset, default_cache_dir
    from backend.motion.choreography import TRANSITION_HALF, transition_constraint
    from backend.motion.generate import MotionExpert
    from backend.motion.sampling import SampleOptions
    from blender_addon import stored_dance
    from blender_addon.takes import add_take, take_actions
    from blender_addon.core.choreo import comp_cuts
    from blender_addon.scene import create_smpl_armature, read_smpl_motion
    from rigs.splice import assemble

    ds = DanceDataset(args.data, default_cache_dir())
    clips = ds.split("val") + ds.split("test")
    clip = next((c for c in clips if c.name == args.song), clips[0]) if args.song else clips[0]
    music = clip.music.slice(0, int(args.seconds * 30))
    T = music.num_frames
    me = MotionExpert.load()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    try:
        scene = bpy.context.scene
        scene.render.fps = 30
        obj = create_smpl_armature(bpy.context)
        seeds = [3, 4, 5]
        for k, seed in enumerate(seeds, start=1):
            motion = me.generate(music, SampleOptions(seed=seed), lock_feet=True, beat_sync=True)
            add_take(bpy.context, obj, k, motion, stored_dance.DanceSettings(seed=seed, start_frame=1))
        takes = [stored_dance.load(a)[0] for _, a, _ in take_actions(obj)]
        marks = [(1, T // 4, T // 2), (2, 3 * T // 5, 4 * T // 5)]  # take 2, then take 3, take 1 elsewhere
        cuts = comp_cuts(T, 0, marks)
        reference, switches = assemble(takes, cuts)
        comp = me.generate(music, SampleOptions(seed=9), transition_constraint(reference, switches, me.normalizer))
        bpy.context.view_layer.objects.active = obj
        from blender_addon import results

        results.apply_result(bpy.context, comp, settings=stored_dance.DanceSettings(start_frame=1))
        obj.animation_data.action.name = "comp"
        played = read_smpl_motion(bpy.context, obj, 1, T)  # what the armature plays, read back from its keys
        tracks = [(t.name, t.mute, [(s.frame_start, s.frame_end, s.action.name) for s in t.strips])
                  for _, _, t in take_actions(obj)]
    finally:
        blender_addon.unregister()
    args.out.mkdir(parents=True, exist_ok=True)
    colours = ["#4C72B0", "#DD8452", "#55A868"]
    fig, ax = plt.subplots(figsize=(10, 2.8), dpi=110)
    for row, (name, muted, strips) in enumerate(tracks):
        y = len(tracks) - row
        for a, b, action in strips:
            ax.barh(y, b - a, left=a, height=0.7, color=colours[row], alpha=0.45 if muted else 1.0)
            ax.text(a + 8, y, f"{name}  [{action}]" + ("  (muted)" if muted else ""), va="center", fontsize=9)
    for a, b, k in cuts:
        ax.barh(0, b - a, left=a + 1, height=0.7, color=colours[k])
    for s in switches:
        ax.barh(0, 2 * TRANSITION_HALF, left=s - TRANSITION_HALF + 1, height=0.7, color="white", hatch="////",
                edgecolor="black", lw=0.5)
    ax.text(10, 0, "comp (active action)", va="center", fontsize=9, color="white", weight="bold")
    ax.set_yticks([])
    ax.set_xlabel("scene frame (30 fps)")
    ax.set_xlim(0, T + 2)
    ax.set_title(f"NLA tracks of the SMPL armature after Generate Takes and Comp ({clip.name}, first "
                 f"{args.seconds:g} s; drawn from the .blend; hatched: model-made transitions)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "takes_nla.png")
    plt.close(fig)

    def speed(m):
        j = m.joint_positions()
        return np.linalg.norm(np.diff(j, axis=0), axis=-1).mean(axis=1) * 30.0

    t = np.arange(1, T) / 30.0
    fig, ax = plt.subplots(figsize=(10, 3.2), dpi=110)
    for k, m in enumerate(takes):
        ax.plot(t, speed(m), color=colours[k], lw=0.8, alpha=0.35, label=f"take {k + 1}")
    ax.plot(t, speed(reference), color="red", lw=1.0, ls="--", label="hard cut (takes pasted together)")
    ax.plot(t, speed(played), color="black", lw=1.4, label="comp (read back from the armature)")
    for s in switches:
        ax.axvspan((s - TRANSITION_HALF) / 30, (s + TRANSITION_HALF) / 30, color="grey", alpha=0.2)
        ax.axvline(s / 30, color="grey", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean joint speed (m/s)")
    ax.set_title("Comp across its switch points: the model dances each transition (grey), the hard cut snaps;\n"
                 "elsewhere the comp is the takes' own frames (its line hides theirs)", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out / "comp_speed.png")
    plt.close(fig)
    jump = lambda m: max(speed(m)[s - 2:s + 2].max() for s in switches)  # noqa: E731
    print(f"switches at {[round(s / 30, 2) for s in switches]} s; peak joint speed at the switches: hard cut "
          f"{jump(reference):.2f} m/s, comp {jump(played):.2f} m/s; takes' median speed "
          f"{np.median(np.concatenate([speed(m) for m in takes])):.2f} m/s")
    print(args.out / "takes_nla.png")
    print(args.out / "comp_speed.png")


if __name__ == "__main__":
    main()
