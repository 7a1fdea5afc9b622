"""Figures for the add-on in the running Blender (run it with each version's python, e.g.
.venv-blender/4.2.23/bin/python scripts/addon_figures.py): a shipped-ME dance retargeted onto a BVH-imported
character and a generated Rigify rig (floor heights, joint and limb-direction errors, bake time), and the fps matrix
(key times against the dance). Not a test: it prints a table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def world_heads(bpy, obj, frame: int) -> dict[str, np.ndarray]:
    bpy.context.scene.frame_set(frame)
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mw = np.array(ev.matrix_world)
    return {pb.name: (mw @ np.append(np.array(pb.head), 1.0))[:3] for pb in ev.pose.bones}


def dance(seconds: float):
    """A shipped-ME dance to the built-in demo song, placed on the floor."""
    import tempfile

    from backend.motion.generate import MotionExpert
    from backend.motion.sampling import SampleOptions
    from backend.music.demo import write_demo_wav
    from backend.music.features import analyse_file

    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "demo.wav"
        write_demo_wav(song, seconds=seconds)
        return MotionExpert.load().generate(analyse_file(song), SampleOptions(steps=10, seed=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    import bpy  # first: it puts Blender's own modules (addon_utils) on the path
    import addon_utils

    import blender_addon
    from blender_addon import compat, results, rigify
    from blender_addon.core.armature import Y_UP_TO_Z_UP
    from blender_addon.core.control_rig import org_targets
    from rigs.skeleton import smpl_skeleton

    sk = smpl_skeleton()
    feet = ("left_ankle", "right_ankle", "left_foot", "right_foot")
    m = dance(args.seconds)
    rows = [("Blender", bpy.app.version_string), ("dance", f"shipped ME, {m.num_frames} frames")]

    def fresh():
        bpy.ops.wm.read_factory_settings(use_empty=True)
        blender_addon.register()
        bpy.context.scene.render.fps = 30
        bpy.context.view_layer.objects.active = None
        return results.apply_result(bpy.context, m)

    frames = range(1, m.num_frames + 1, 5)
    smpl = fresh()
    smpl_low = min(min(world_heads(bpy, smpl, f)[n][2] for n in feet) for f in frames)
    rows.append(("SMPL armature: lowest foot joint (m)", f"{smpl_low:+.3f}"))
    bvh = args.data / "cmu_mocap_salsa_bvh" / "60_01_scaled.bvh"
    if bvh.is_file():
        bpy.ops.import_anim.bvh(filepath=str(bvh))
        character = bpy.context.active_object
        bpy.ops.dance.retarget(preset="AUTO")
        from blender_addon.scene import armature_rig
        from rigs.retarget import guess_preset

        rig = armature_rig(character)
        _, mapping = guess_preset(rig.bone_names)
        names = [rig.bone_names[mapping[n]] for n in feet if n in mapping]
        low = min(min(world_heads(bpy, character, f)[n][2] for n in names) for f in frames)
        rows.append(("CMU 60_01 BVH import: lowest foot joint (m)", f"{low:+.3f}"))
    blender_addon.unregister()
    smpl = fresh()
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o not in (meta, smpl))
    bpy.data.objects.remove(meta)
    bpy.context.view_layer.objects.active = rig
    start = time.perf_counter()
    bpy.ops.dance.retarget(preset="AUTO")
    seconds = time.perf_counter() - start
    names, parents, rest = rigify._org_hierarchy(rig)
    targets = org_targets(names, parents, rest, m)
    pos = m.joint_positions() @ Y_UP_TO_Z_UP.T
    limbs = {("left_shoulder", "left_elbow"): "ORG-upper_arm.L", ("right_elbow", "right_wrist"): "ORG-forearm.R",
             ("left_hip", "left_knee"): "ORG-thigh.L", ("right_knee", "right_ankle"): "ORG-shin.R"}
    worst, angle, low = 0.0, 0.0, np.inf
    for f in frames:
        bpy.context.scene.frame_set(f)
        ev = rig.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mw = np.array(ev.matrix_world)
        for name in ("ORG-hand.L", "ORG-hand.R", "ORG-foot.L", "ORG-toe.R", "ORG-spine.006"):
            worst = max(worst, np.abs(np.array(ev.pose.bones[name].matrix)[:3, 3] - targets[name][f - 1][:3, 3]).max())
        for (a, b), bone in limbs.items():
            pb = ev.pose.bones[bone]
            d = mw[:3, :3] @ (np.array(pb.tail) - np.array(pb.head))
            e = pos[f - 1, sk.index(b)] - pos[f - 1, sk.index(a)]
            angle = max(angle, np.degrees(np.arccos(np.clip(d @ e / np.linalg.norm(d) / np.linalg.norm(e), -1, 1))))
        low = min(low, *((mw @ np.append(np.array(ev.pose.bones[n].head), 1))[2]
                         for n in ("ORG-foot.L", "ORG-foot.R", "ORG-toe.L", "ORG-toe.R")))
    stand = min(rig.data.bones[n].head_local[2] for n in ("ORG-toe.L", "ORG-toe.R"))
    keyed = {fc.data_path.split('"')[1] for fc in compat.action_fcurves(rig)}
    rows += [("Rigify: keyed bones", f"{len(keyed)} controls, {sum(k.startswith(('DEF', 'ORG', 'MCH')) for k in keyed)}"
                                     " DEF/ORG/MCH"),
             ("Rigify: ORG bones vs dance targets, max (mm)", f"{worst * 1000:.4f}"),
             ("Rigify: limb direction vs SMPL, max (deg)", f"{angle:.3f}"),
             ("Rigify: lowest foot joint (m) / standing (m)", f"{low:+.3f} / {stand:+.3f}"),
             ("Rigify: retarget time per 1,800 frames (s)", f"{seconds * 1800 / m.num_frames:.1f}")]
    blender_addon.unregister()
    for fps, base in ((24, 1.001), (24, 1), (25, 1), (50, 1), (60, 1)):
        smpl = fresh()
        scene = bpy.context.scene
        bpy.data.objects.remove(smpl)
        scene.render.fps, scene.render.fps_base = fps, base
        bpy.context.view_layer.objects.active = None
        smpl = results.apply_result(bpy.context, m)
        rate = fps / base
        last = int(smpl.animation_data.action.frame_range[1])
        err = 0.0
        for f in range(1, last + 1, 7):
            t = min((f - 1) * 30.0 / rate, m.num_frames - 1)
            want = m.at_times(np.array([t])).joint_positions()[0] @ Y_UP_TO_Z_UP.T
            heads = world_heads(bpy, smpl, f)
            err = max(err, max(np.abs(heads[n] - want[i]).max() for i, n in enumerate(sk.joint_names)))
        rows.append((f"{rate:.3f} fps: last key (s) / dance end (s), max joint error (mm)",
                     f"{(last - 1) / rate:.3f} / {(m.num_frames - 1) / 30:.3f}, {err * 1000:.4f}"))
        blender_addon.unregister()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
