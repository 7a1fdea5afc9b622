#!/usr/bin/env python
"""Benchmarks in the real bpy wheel, each against a baseline measured in the same run:

1. Baking: a 60 s dance (1800 frames x 24 bones, rotations + root) keyed with the add-on's baker (foreach_set per
   curve) vs a keyframe_insert loop. Goal: < 0.1 s and >= 30x the loop.
2. Generate in the panel: a 60-s section of a real song (the first 90 s of the longest paired-data mp3, as
   bench_e2e's) from the Generate button to the dance applied, through the local backend with the shipped weights:
   the first click (the backend starts) and later clicks (it is running), against the CLI's warm time
   (`mace-dance generate`, second process). Goal: later clicks <= 1.5x the CLI. Skipped without ../shared/data.

`--quick` (a few minutes) ends with `bake_1800_s=<x> speedup_vs_keyframe_insert=<y>`; the line before it is
`panel_generate_60s_s=<later click> panel_first_60s_s=<first click> cli_warm_60s_s=<cli> panel_over_cli=<ratio>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]


def panel_generate(song: Path, seconds: float, clicks: int) -> list[tuple[float, str]]:
    """Wall seconds from Generate to the dance applied, and the status line shown, for each click (seeds differ;
    the first click starts the local backend)."""
    import bpy

    import blender_addon
    from blender_addon import jobs

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    out = []
    try:
        scene = bpy.context.scene
        scene.render.fps = 30
        s = scene.mace_dance
        s.audio_path, s.whole_song, s.time_start, s.time_end = str(song), False, 0.0, seconds
        for click in range(clicks):
            s.seed = click
            t = time.perf_counter()
            if bpy.ops.dance.generate() != {"FINISHED"}:
                raise RuntimeError(f"Generate refused: {s.status}")
            while jobs.tick() is not None:
                time.sleep(0.005)
            wall = time.perf_counter() - t
            if not s.status.startswith("applied"):
                raise RuntimeError(f"Generate failed: {s.status}")
            out.append((wall, s.status))
    finally:
        blender_addon.unregister()  # stops the local backend
    return out


def generate_rows(data: Path, quick: bool) -> str:
    """The panel-against-CLI table; returns its summary line ('' when the data is absent)."""
    import tempfile

    import soundfile as sf

    from bench_e2e import cli_run, cut_song

    songs = sorted((data / "music2dance_tang2018").glob("DANCE_*/audio.mp3"), key=lambda p: p.stat().st_size)
    if not songs:
        print(f"panel generate: skipped, no paired songs under {data}")
        return ""
    long_song = next((x for x in songs if sf.info(str(x)).duration >= 200), songs[-1])
    with tempfile.TemporaryDirectory(prefix="bench_blender_") as tmp:
        song = cut_song(long_song, 90.0, Path(tmp) / "song90.mp3")
        runs = 2 if quick else 4
        cli = [cli_run(song, 60.0, Path(tmp) / f"cli{i}")[0] for i in range(runs)][1:]  # first: cold caches
        panel = panel_generate(song, 60.0, runs)
    later = statistics.median(w for w, _ in panel[1:])
    cli_warm = statistics.median(cli)
    print(f"{'panel Generate, 60 s section':<48}{'seconds':>10}")
    print(f"{'  first click (starts the local backend)':<48}{panel[0][0]:>10.2f}")
    print(f"{'  later clicks, median of ' + str(len(panel) - 1):<48}{later:>10.2f}")
    print(f"{'  CLI generate warm, median of ' + str(len(cli)):<48}{cli_warm:>10.2f}")
    print(f"  status bar: {panel[-1][1]!r}; goal: later clicks <= 1.5x the CLI")
    return (f"panel_generate_60s_s={later:.2f} panel_first_60s_s={panel[0][0]:.2f} cli_warm_60s_s={cli_warm:.2f} "
            f"panel_over_cli={later / cli_warm:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    import bpy

    from blender_addon.core.bake import bake_arrays
    from blender_addon.scene import armature_rig, bake_to_action, create_smpl_armature, smpl_mapping
    from rigs.motion import Motion

    bpy.ops.wm.read_factory_settings(use_empty=True)
    ctx = bpy.context
    ctx.scene.render.fps = 30
    rng = np.random.default_rng(0)
    motion = Motion.from_axis_angle(rng.normal(size=(1800, 24, 3)) * 0.3,
                                    np.cumsum(rng.normal(size=(1800, 3)) * 0.01, axis=0) + [0, 0.95, 0])
    obj = create_smpl_armature(ctx)
    rig = armature_rig(obj)
    mapping = smpl_mapping(rig)
    reps = 3 if args.quick else 7

    ours, convert = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        arrays = bake_arrays(motion, rig, mapping, 1, 30.0)
        t1 = time.perf_counter()
        action = bake_to_action(obj, arrays, "bench")
        t2 = time.perf_counter()
        ours.append(t2 - t0)
        convert.append(t1 - t0)
        obj.animation_data.action = None
        bpy.data.actions.remove(action)

    # the naive way: set each pose bone per frame and insert keys one by one
    arrays = bake_arrays(motion, rig, mapping, 1, 30.0)
    pbs = [obj.pose.bones[b] for b in arrays.bones]
    root = obj.pose.bones[arrays.root_bone]
    loop_frames = 300 if args.quick else 1800  # the loop is linear in frames; scale a shorter run in quick mode
    t0 = time.perf_counter()
    for f in range(loop_frames):
        for b, pb in enumerate(pbs):
            pb.rotation_quaternion = arrays.quaternions[f, b]
            pb.keyframe_insert("rotation_quaternion", frame=f + 1)
        root.location = arrays.root_location[f]
        root.keyframe_insert("location", frame=f + 1)
    loop = (time.perf_counter() - t0) * 1800 / loop_frames

    best = statistics.median(ours)
    print(f"{'method':<48}{'seconds':>10}")
    print(f"{'add-on baker (retarget + foreach_set), median':<48}{best:>10.4f}")
    print(f"{'  of which rotation conversion':<48}{statistics.median(convert):>10.4f}")
    est = " (scaled from 300 frames)" if loop_frames < 1800 else ""
    print(f"{'keyframe_insert loop' + est:<48}{loop:>10.4f}")
    print(f"bpy {bpy.app.version_string}; goal < 0.1 s and >= 30x")
    summary = generate_rows(args.data, args.quick)
    if summary:
        print(summary)
    print(f"bake_1800_s={best:.4f} speedup_vs_keyframe_insert={loop / best:.1f}")


if __name__ == "__main__":
    main()
