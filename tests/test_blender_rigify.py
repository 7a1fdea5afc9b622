"""Retargeting onto a generated Rigify rig (in every supported Blender): keys land on the controls an animator
uses, the deform bones follow the dance, limbs point where the SMPL limbs point, and the feet stay on the floor."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the bpy wheel is not installed (scripts/test installs the 'blender' extra)")

from blender_addon import compat, results, rigify  # noqa: E402
from blender_addon.core.armature import Y_UP_TO_Z_UP  # noqa: E402
from blender_addon.core.control_rig import RIGIFY_CONTROLS, org_targets  # noqa: E402
from blender_fixtures import addon, rigify_rig, smooth_motion, world_heads  # noqa: E402,F401
from rigs.skeleton import smpl_skeleton  # noqa: E402

SK = smpl_skeleton()
LIMBS = {  # SMPL joint pair -> the Rigify ORG bone whose head-to-tail runs between them
    ("left_shoulder", "left_elbow"): "ORG-upper_arm.L", ("left_elbow", "left_wrist"): "ORG-forearm.L",
    ("right_shoulder", "right_elbow"): "ORG-upper_arm.R", ("right_elbow", "right_wrist"): "ORG-forearm.R",
    ("left_hip", "left_knee"): "ORG-thigh.L", ("left_knee", "left_ankle"): "ORG-shin.L",
    ("right_hip", "right_knee"): "ORG-thigh.R", ("right_knee", "right_ankle"): "ORG-shin.R",
}


def test_retarget_onto_rigify_controls(rigify_rig):
    from rigs.retarget import place_on_floor

    rig = rigify_rig
    m = place_on_floor(smooth_motion(45, seed=5))
    bpy.context.view_layer.objects.active = None
    smpl = results.apply_result(bpy.context, m)
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    keyed = {fc.data_path.split('"')[1] for fc in compat.action_fcurves(rig)}
    assert keyed == set(RIGIFY_CONTROLS)  # the animator's controls, no DEF-/ORG-/MCH- bones
    assert all(rig.pose.bones[b]["IK_FK"] == 1.0 for b in ("upper_arm_parent.L", "thigh_parent.R"))
    assert "MACE-Dance targets" not in bpy.data.objects  # the temporary armature is gone
    assert not any(c.name == rigify.CONSTRAINT for pb in rig.pose.bones for c in pb.constraints)
    names, parents, rest = rigify._org_hierarchy(rig)
    targets = org_targets(names, parents, rest, m)
    smpl_pos = m.joint_positions() @ Y_UP_TO_Z_UP.T
    worst_pos, lowest = 0.0, np.inf
    worst_angle = {"legs": 0.0, "rest": 0.0}
    for f in range(0, 45, 4):
        bpy.context.scene.frame_set(1 + f)
        ev = rig.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mw = np.array(ev.matrix_world)
        for name in ("ORG-hand.L", "ORG-forearm.R", "ORG-foot.L", "ORG-toe.R", "ORG-spine.006", "ORG-spine.003"):
            got = np.array(ev.pose.bones[name].matrix)
            worst_pos = max(worst_pos, np.abs(got[:3, 3] - targets[name][f][:3, 3]).max())
            deform = np.array(ev.pose.bones["DEF-" + name[4:]].matrix) if "DEF-" + name[4:] in ev.pose.bones else got
            worst_pos = max(worst_pos, np.abs(deform[:3, 3] - got[:3, 3]).max())  # the mesh's bones follow
        for (a, b), bone in LIMBS.items():
            pb = ev.pose.bones[bone]
            d_rig = (mw[:3, :3] @ (np.array(pb.tail) - np.array(pb.head)))
            d_smpl = smpl_pos[f, SK.index(b)] - smpl_pos[f, SK.index(a)]
            cos = d_rig @ d_smpl / np.linalg.norm(d_rig) / np.linalg.norm(d_smpl)
            part = "legs" if a.endswith(("hip", "knee")) else "rest"
            worst_angle[part] = max(worst_angle[part], np.degrees(np.arccos(np.clip(cos, -1, 1))))
        heads = world_heads(rig, 1 + f)
        lowest = min(lowest, *(heads[n][2] for n in ("ORG-foot.L", "ORG-foot.R", "ORG-toe.L", "ORG-toe.R")))
    assert worst_pos < 1e-4, worst_pos  # controls keyed so the ORG/DEF bones sit on the dance to 0.1 mm
    assert worst_angle["rest"] < 1.0, worst_angle  # arms, spine and head point where the SMPL ones point
    assert worst_angle["legs"] < 5.0, worst_angle  # legs too, but for the foot hold's bend (rigs.retarget)
    rest_lowest = min(np.array(rig.data.bones[n].head_local)[2] for n in ("ORG-foot.L", "ORG-toe.L"))
    smpl_rest_lowest = min(smpl.data.bones[n].head_local[2] for n in ("left_ankle", "left_foot"))
    assert -0.01 < lowest < rest_lowest - smpl_rest_lowest + 0.03, (lowest, rest_lowest)


def test_rigify_upper_body_travels_with_the_hips(rigify_rig):
    """On a dance that travels, the hips moved but the chest, neck and head stayed at their rest place; the torso
    pointed 62 deg off on average and stretched up to 4.2x (issue 31, failure 2)."""
    from rigs.motion import Motion
    from rigs.retarget import place_on_floor

    rig = rigify_rig
    t = np.arange(60) / 30.0
    swing = 0.15 * np.sin(2 * np.pi * 0.5 * t)[:, None, None] * np.ones((1, 24, 3))
    m = place_on_floor(Motion.from_axis_angle(swing, np.stack([1.5 * t, 0.93 + 0 * t, -1.0 * t], axis=1)))
    bpy.context.view_layer.objects.active = None
    results.apply_result(bpy.context, m)
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    smpl = m.joint_positions() @ Y_UP_TO_Z_UP.T
    up = smpl[:, SK.index("head")] - smpl[:, SK.index("pelvis")]
    rest = world_heads(rig, 1)
    rest_len = np.linalg.norm(rest["DEF-spine.006"] - rest["DEF-spine"])
    for f in range(0, 60, 6):  # the hips are 1.8 m from where they started by frame 60
        heads = world_heads(rig, 1 + f)
        torso = heads["DEF-spine.006"] - heads["DEF-spine"]  # the deform bones the mesh follows
        cos = torso @ up[f] / np.linalg.norm(torso) / np.linalg.norm(up[f])
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 10, f
        assert 0.9 < np.linalg.norm(torso) / rest_len < 1.1, f  # not stretched
        lean = np.linalg.norm(up[f][:2]) / np.linalg.norm(up[f]) * rest_len  # the SMPL torso's own lean, rig-sized
        for bone in ("DEF-spine.003", "DEF-spine.006", "DEF-upper_arm.L"):  # they come along with the hips
            assert np.linalg.norm((heads[bone] - heads["DEF-spine"])[:2]) < lean + 0.2, (f, bone)
