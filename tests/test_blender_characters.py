"""The character matrix in Blender (issue 31): a real dancer's 6 s on SMPL, retargeted with the panel's operator
onto characters built or imported here as studios deliver them, measured every frame from Blender's own evaluated
pose (object transform, units, rest pose and all): feet on the floor, limbs along the dancer's, the pelvis on its
path, planted feet held."""

from __future__ import annotations

import numpy as np
import pytest

from blender_fixtures import addon, bpy, build_armature, rigify_rig  # noqa: F401  (fixtures)
from characters import MATRIX
from rigs.retarget import RetargetPreset, _leg_length
from rigs.retarget_fit import retarget_fit, smpl_rest_heights
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()
BANDAI = ("bandai_namco_motion_dataset1_dance", "dataset-1_dance-short_normal_001.bvh")
CMU = ("cmu_mocap_salsa_bvh", "60_01_scaled.bvh")
WINDOW = (750, 930)  # 6 s with a turn on a planted foot: plain rotations skate a long-legged character there
FIRST = 1


@pytest.fixture(scope="module")
def dance(shared_data):
    from rigs.bvh import read_bvh
    from rigs.retarget import bvh_to_motion

    motion = bvh_to_motion(read_bvh(shared_data.joinpath(*BANDAI)), RetargetPreset.load("bandai_namco"))
    return motion.slice(*WINDOW)


def import_bvh(path, scale: float = 1.0):
    """A BVH skeleton as Blender's importer makes it (its own rest pose, units and axes conversion)."""
    bpy.context.view_layer.objects.active = None
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=scale)
    obj = bpy.context.active_object
    assert obj.type == "ARMATURE"
    obj.animation_data_clear()  # its own mocap is not the dance
    return obj


def measure(character, smpl_motion, metres: float, mapping: dict[str, int] | None = None,
            stand: float | None = None):
    """retarget_fit of the character's evaluated pose, every frame, in the character's metres (its bones by
    `mapping`, else by the best preset's guess; `stand`: its lowest foot joint's height when standing, else the
    floor for a character with toes and SMPL's ankle height, scaled, for one without)."""
    from blender_addon.core.armature import Y_UP_TO_Z_UP
    from blender_addon.scene import armature_rig
    from rigs.retarget import guess_preset, smpl_rig

    rig = armature_rig(character)
    mapping = mapping if mapping is not None else guess_preset(rig.bone_names)[1]
    names = list(rig.bone_names)
    frames = smpl_motion.num_frames
    heads = np.empty((frames, len(names), 3))
    scene = bpy.context.scene
    for f in range(frames):
        scene.frame_set(FIRST + f)
        ev = character.evaluated_get(bpy.context.evaluated_depsgraph_get())
        mw = np.array(ev.matrix_world)
        pts = np.array([mw[:3, :3] @ np.array(ev.pose.bones[n].head) + mw[:3, 3] for n in names])
        heads[f] = pts @ Y_UP_TO_Z_UP  # Blender z up -> the SMPL frame's y up
    smap = {n: i for i, n in enumerate(SK.joint_names)}
    scale = _leg_length(rig, mapping) / _leg_length(smpl_rig(), smap)
    if stand is None:
        stand = 0.0 if "left_foot" in mapping else smpl_rest_heights()[SK.index("left_ankle")] * scale
    fit = retarget_fit(smpl_motion.joint_positions(), heads * metres, mapping, scale * metres, smpl_motion.fps,
                       stand * metres)
    return fit


def retarget(character):
    bpy.context.view_layer.objects.active = character
    for o in bpy.context.selected_objects:
        o.select_set(False)
    character.select_set(True)
    assert bpy.ops.dance.retarget(preset="AUTO") == {"FINISHED"}


CASES = {
    "mixamo_as_imported": lambda data: (build_armature(MATRIX["mixamo_studio"], as_imported=True), 1.0),
    "ue5_mannequin": lambda data: (build_armature(MATRIX["ue5_mannequin"]), 1.0),
    "a_pose": lambda data: (build_armature(MATRIX["a_pose"]), 1.0),
    "scaled_100x": lambda data: (build_armature(MATRIX["mixamo_studio"], object_scale=100.0), 0.01),
    "cmu_bvh": lambda data: (import_bvh(data.joinpath(*CMU)), 1.0),
    "bandai_bvh": lambda data: (import_bvh(data.joinpath(*BANDAI)), 0.01),  # centimetres at the importer's scale
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_character_receives_the_dance(addon, shared_data, dance, case):  # noqa: F811
    from blender_addon import results

    scene = bpy.context.scene
    scene.render.fps = 30
    bpy.context.view_layer.objects.active = None
    results.apply_result(bpy.context, dance)
    character, metres = CASES[case](shared_data)
    retarget(character)
    fit = measure(character, dance, metres)
    assert fit.planted_frames > 50, fit  # the window plants its feet: the foot measures see real contacts
    assert fit.foot_height_m < 0.02, (case, fit)  # lowest foot on the floor while the dancer's is
    assert fit.limb_deg < 5.0, (case, fit)
    assert fit.pelvis_path_m < 0.02, (case, fit)
    assert fit.below_floor_m < 0.02, (case, fit)  # no foot in the floor, planted or not
    if case != "cmu_bvh":  # CMU's drift on this turn is more than the limb budget lets the legs take up
        assert fit.planted_slide_m_s < fit.source_slide_m_s + 0.03, (case, fit)


def test_a_rigify_character_receives_the_dance(rigify_rig, shared_data, dance):  # noqa: F811
    """A rig generated by Rigify from Blender's human metarig, keyed on its FK controls: measured on the deform
    bones that move the mesh."""
    from blender_addon import results
    from blender_addon.scene import armature_rig

    bpy.context.scene.render.fps = 30
    bpy.context.view_layer.objects.active = None
    results.apply_result(bpy.context, dance)
    retarget(rigify_rig)
    names = armature_rig(rigify_rig).bone_names
    deform = {j: names.index("DEF-" + b) for j, b in RetargetPreset.load("rigify").bones.items()
              if "DEF-" + b in names}
    assert {"pelvis", "left_knee", "right_ankle", "left_elbow"} <= set(deform)
    mw = np.array(rigify_rig.matrix_world)
    toes = [n for n in names if n in ("DEF-toe.L", "DEF-toe.R", "DEF-foot.L", "DEF-foot.R")]
    stand = min((mw @ np.append(np.array(rigify_rig.data.bones[n].head_local), 1.0))[2] for n in toes)
    fit = measure(rigify_rig, dance, 1.0, deform, stand=stand)  # the metarig's toe heads stand 1.7 cm up
    # (its planted feet are held only as far as the 4-degree limb budget lets the legs: 0.42 m/s, 0.51 without)
    assert fit.planted_frames > 50, fit
    assert fit.foot_height_m < 0.02, fit
    assert fit.limb_deg < 5.0, fit
    assert fit.pelvis_path_m < 0.02, fit
    assert fit.below_floor_m < 0.02, fit
