"""Takes and comps on a retargeted character (issue 31): the character, not only the SMPL armature, gets takes on
its own NLA tracks, auditions them and comps them, each baked through the character's own bone map."""

import numpy as np
import pytest

from blender_fixtures import addon, bpy, build_armature, drive, generate_tiny_dance, song, tiny_model  # noqa: F401
from characters import MATRIX

ODD = "Forearm_Twist_L"


def _limb_error(character, motion, frames) -> float:
    """Worst angle (deg) over `frames` between the character's limbs and the SMPL motion's (scene frame = 1 + i)."""
    from blender_addon.core.armature import Y_UP_TO_Z_UP
    from blender_addon.scene import armature_rig
    from rigs.presets import bone_map
    from rigs.skeleton import smpl_skeleton

    sk = smpl_skeleton()
    rig = armature_rig(character)
    mapping = bone_map({r.joint: r.bone for r in character.mace_dance_bone_map}, rig.bone_names)
    src = motion.joint_positions() @ Y_UP_TO_Z_UP.T
    worst = 0.0
    for f in frames:
        bpy.context.scene.frame_set(1 + f)
        ev = character.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mw = np.array(ev.matrix_world)
        for a, b in (("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"), ("spine3", "neck")):
            pa, pb = (mw[:3, :3] @ np.array(ev.pose.bones[rig.bone_names[mapping[j]]].head) for j in (a, b))
            d, e = pb - pa, src[f, sk.index(b)] - src[f, sk.index(a)]
            cos = d @ e / np.linalg.norm(d) / np.linalg.norm(e)
            worst = max(worst, float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))))
    return worst


def test_takes_audition_and_comp_on_a_retargeted_character(addon, tiny_model, song, monkeypatch):  # noqa: F811
    from blender_addon import compat, stored_dance
    from blender_addon.takes import playing_take, take_actions

    s, smpl = generate_tiny_dance(tiny_model, song, monkeypatch)
    smpl_action = compat.active_action(smpl)[0]
    character = build_armature(MATRIX["mixamo_studio"])
    character.data.bones["mixamorig:LeftForeArm"].name = ODD
    bpy.context.view_layer.objects.active = character
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    next(r for r in character.mace_dance_bone_map if r.joint == "left_elbow").bone = ODD
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    assert stored_dance.has_dance(character)  # the character carries the dance it dances

    s.takes, s.seed, s.takes_range = 2, 7, False
    assert bpy.ops.dance.takes() == {"FINISHED"}
    drive()
    assert s.status.startswith("take 2 ready"), s.status
    takes = take_actions(character)
    assert [n for n, _, _ in takes] == [1, 2] and playing_take(character) == 2
    assert compat.active_action(smpl)[0] == smpl_action and not take_actions(smpl)  # the SMPL dance untouched
    motions = [stored_dance.load(a)[0] for _, a, _ in takes]
    assert np.abs(motions[0].joint_positions() - motions[1].joint_positions()).max() > 1e-3
    frames = range(0, 90, 7)
    assert _limb_error(character, motions[1], frames) < 5.0  # through the bone map: the odd forearm dances too

    bpy.context.view_layer.objects.active = character
    assert bpy.ops.dance.audition_take(number=1) == {"FINISHED"}
    assert playing_take(character) == 1 and _limb_error(character, motions[0], frames) < 5.0

    s.comp_take, s.edit_start, s.edit_end, s.comp_base = 2, 31, 70, 1
    assert bpy.ops.dance.mark_take() == {"FINISHED"}
    assert bpy.ops.dance.comp() == {"FINISHED"}
    drive()
    assert s.status.startswith("comped 2 switch"), s.status
    comp, _ = stored_dance.load(character)
    assert character.animation_data.action.name.startswith("comp") and len(take_actions(character)) == 2
    assert _limb_error(character, comp, frames) < 5.0
    from backend.motion.choreography import local_joints

    assert np.abs(local_joints(comp)[50] - local_joints(motions[1])[50]).max() < 1e-4  # take 2 in its range


def test_keyed_poses_on_a_character_are_refused_in_a_sentence(addon, tiny_model, song, monkeypatch):  # noqa: F811
    s, smpl = generate_tiny_dance(tiny_model, song, monkeypatch)
    character = build_armature(MATRIX["a_pose"])
    bpy.context.view_layer.objects.active = character
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    with pytest.raises(RuntimeError, match="is not an SMPL armature: pose and key the SMPL dance"):
        bpy.ops.dance.through_keys()
