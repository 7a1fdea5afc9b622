#!/usr/bin/env python
"""Baking benchmark in the real bpy wheel: a 60 s dance (1800 frames x 24 bones, rotations + root) keyed with the
add-on's baker (foreach_set per curve) vs a keyframe_insert loop, in the same run.

Goal: < 0.1 s and >= 30x the loop. `--quick` (under a minute) ends with
`bake_1800_s=<x> speedup_vs_keyframe_insert=<y>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
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
    print(f"bake_1800_s={best:.4f} speedup_vs_keyframe_insert={loop / best:.1f}")


if __name__ == "__main__":
    main()
