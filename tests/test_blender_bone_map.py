"""The bone-map editor: a character with one bone named its own way gets a wrong guess, the animator fixes that row,
Retarget follows the fix, and the map saved as a preset fills the next character the same way."""

from __future__ import annotations

import numpy as np
import pytest

from blender_fixtures import addon, bpy, build_armature, smooth_motion  # noqa: F401  (fixture)
from characters import MATRIX

ODD = "Forearm_Twist_L"  # a studio's own name for the left forearm: no preset knows it


def _character():
    obj = build_armature(MATRIX["mixamo_studio"])
    obj.data.bones["mixamorig:LeftForeArm"].name = ODD
    return obj


def _dance():
    from blender_addon import results
    from rigs.retarget import place_on_floor

    bpy.context.view_layer.objects.active = None
    return results.apply_result(bpy.context, place_on_floor(smooth_motion(30, seed=2)))


def _select(obj):
    for o in bpy.context.selected_objects:
        o.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def _forearm_error(character, smpl) -> float:
    """Worst angle (degrees) between the character's left forearm and SMPL's over the dance."""
    worst = 0.0
    for f in range(1, 31, 3):
        bpy.context.scene.frame_set(f)
        deps = bpy.context.evaluated_depsgraph_get()
        c, s = character.evaluated_get(deps), smpl.evaluated_get(deps)
        pc, ps = c.pose.bones[ODD], s.pose.bones["left_elbow"]
        d_c = np.array(c.matrix_world)[:3, :3] @ (np.array(pc.tail) - np.array(pc.head))
        d_s = np.array(s.pose.bones["left_wrist"].head) - np.array(ps.head)
        cos = d_c @ d_s / np.linalg.norm(d_c) / np.linalg.norm(d_s)
        worst = max(worst, float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))))
    return worst


def test_fix_one_row_retarget_follows_and_the_preset_fills_the_next_character(addon):  # noqa: F811
    smpl = _dance()
    character = _character()
    _select(character)
    bpy.context.scene.mace_dance_bones.preset = "AUTO"
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    rows = {r.joint: r.bone for r in character.mace_dance_bone_map}
    assert len(rows) == 24 and rows["left_elbow"] == "" and rows["right_elbow"] == "mixamorig:RightForeArm"
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    guessed = _forearm_error(character, smpl)
    assert guessed > 10.0, guessed  # unmapped, the forearm just rides along with the upper arm

    next(r for r in character.mace_dance_bone_map if r.joint == "left_elbow").bone = ODD
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    assert _forearm_error(character, smpl) < 2.0  # the fixed row: the forearm dances SMPL's elbow

    bpy.context.scene.mace_dance_bones.save_name = "our_studio"
    assert bpy.ops.dance.bone_map_save() == {"FINISHED"}
    from rigs.presets import RetargetPreset, list_presets

    assert "our_studio" in list_presets() and RetargetPreset.load("our_studio").bones["left_elbow"] == ODD

    other = _character()
    other.name = "Second"
    _select(other)
    bpy.context.scene.mace_dance_bones.preset = "our_studio"
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    assert {r.joint: r.bone for r in other.mace_dance_bone_map} == {r.joint: r.bone for r in
                                                                    character.mace_dance_bone_map}


def test_a_bad_row_is_one_sentence_and_the_dance_on_the_character_stays(addon):  # noqa: F811
    _dance()
    character = _character()
    _select(character)
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    action = character.animation_data.action
    keys = sum(len(fc.keyframe_points) for fc in _fcurves(character))
    next(r for r in character.mace_dance_bone_map if r.joint == "left_wrist").bone = "NoSuchBone"
    with pytest.raises(RuntimeError, match="gives left_wrist the bone 'NoSuchBone', which this armature does not"):
        bpy.ops.dance.retarget(preset="AUTO")
    s = bpy.context.scene.mace_dance
    assert s.failed and "NoSuchBone" in s.status
    assert character.animation_data.action == action
    assert sum(len(fc.keyframe_points) for fc in _fcurves(character)) == keys
    bpy.context.scene.mace_dance_bones.save_name = "../../escape"
    with pytest.raises(RuntimeError, match="Cannot save the bone map: a preset name is letters"):
        bpy.ops.dance.bone_map_save()
    assert bpy.ops.dance.bone_map_clear() == {"FINISHED"}
    assert len(character.mace_dance_bone_map) == 0
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}  # back to the guess


def _fcurves(obj):
    from blender_addon import compat

    return compat.action_fcurves(obj)


def test_the_map_survives_save_and_reopen(addon, tmp_path):  # noqa: F811
    character = _character()
    _select(character)
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    next(r for r in character.mace_dance_bone_map if r.joint == "left_elbow").bone = ODD
    path = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    rows = {r.joint: r.bone for r in bpy.data.objects["Character"].mace_dance_bone_map}
    assert rows["left_elbow"] == ODD and rows["pelvis"] == "mixamorig:Hips"


def test_several_selected_characters_receive_the_dance_at_once(addon):  # noqa: F811
    smpl = _dance()
    first, second = _character(), build_armature(MATRIX["a_pose"])
    second.name = "Other"
    smpl.select_set(True)
    first.select_set(True)
    second.select_set(True)
    bpy.context.view_layer.objects.active = first
    smpl_action = smpl.animation_data.action
    # one wrong row on one character: neither character is changed, and the sentence names the one
    bpy.context.view_layer.objects.active = second
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    next(r for r in second.mace_dance_bone_map if r.joint == "pelvis").bone = "Nope"
    bpy.context.view_layer.objects.active = first
    with pytest.raises(RuntimeError, match="Other: The bone map gives pelvis the bone 'Nope'"):
        bpy.ops.dance.retarget(preset="AUTO")
    assert first.animation_data is None and second.animation_data is None
    bpy.context.view_layer.objects.active = second
    assert bpy.ops.dance.bone_map_clear() == {"FINISHED"}
    bpy.context.view_layer.objects.active = first
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    assert first.animation_data.action is not None and second.animation_data.action is not None
    assert smpl.animation_data.action == smpl_action  # the dance's own armature is not a target
    bpy.context.view_layer.objects.active = smpl  # the dance selected last (active): still the characters get it
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}
    assert smpl.animation_data.action == smpl_action


def test_a_rig_no_preset_knows_gets_rows_to_fill_and_choices_stay_put(addon):  # noqa: F811
    from rigs.presets import RetargetPreset

    data = bpy.data.armatures.new("Odd")
    odd = bpy.data.objects.new("Odd", data)
    bpy.context.scene.collection.objects.link(odd)
    _select(odd)
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("Bone", "Bone.001"):
        eb = data.edit_bones.new(name)
        eb.head, eb.tail = (0.0, 0.0, 0.0), (0.0, 0.0, 0.3)
    bpy.ops.object.mode_set(mode="OBJECT")
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}  # a warning, and rows to pick the bones in
    assert len(odd.mace_dance_bone_map) == 24 and not any(r.bone for r in odd.mace_dance_bone_map)
    # a preset saved later sorts before the one chosen: the choice stays on the preset, not on its place in the list
    b = bpy.context.scene.mace_dance_bones
    b.preset = "ue5_mannequin"
    RetargetPreset("aaa_first", "", {"pelvis": "Bone"}).save()
    assert b.preset == "ue5_mannequin"
