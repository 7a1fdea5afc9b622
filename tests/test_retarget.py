import numpy as np
import pytest

from rigs import rotations as rot
from builders import random_motion
from characters import descendants
from rigs.bvh import read_bvh
from rigs.motion import Motion
from rigs.retarget import (Retargeter, RetargetError, RetargetPreset, Rig, bvh_to_motion, guess_preset, list_presets,
                           motion_to_rig, rig_world_pose, smpl_rig)
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()


def make_character(preset_name, scale=1.3, arm_drop=0.7, seed=0, prefix=""):
    """An SMPL-proportioned character named after a preset, in an A-pose, with arbitrary bone axes.

    Real rigs differ from SMPL in exactly these ways (rest pose, bone roll conventions, size), so a retarget that
    handles them must put every mapped joint where the scaled source joint is.
    """
    rng = np.random.default_rng(seed)
    preset = RetargetPreset.load(preset_name)
    pos = SK.rest_positions() * scale
    pos[:, 1] -= pos[:, 1].min()
    for shoulder, sign in (("left_shoulder", -1), ("right_shoulder", 1)):
        s = SK.index(shoulder)
        r = rot.axis_angle_to_matrix(np.array([0.0, 0.0, sign * arm_drop]))
        for j in descendants(s):
            pos[j] = pos[s] + r @ (pos[j] - pos[s])
    names = tuple(prefix + preset.bones.get(n, f"extra_{n}") for n in SK.joint_names)
    frames = rot.axis_angle_to_matrix(rng.normal(size=(SK.num_joints, 3)))
    return Rig(names, SK.parents, frames, pos), preset.resolve(names)


@pytest.mark.parametrize("preset", ["mixamo", "ue5_mannequin", "rigify"])
def test_end_effectors_follow_the_scaled_source(preset):
    rig, mapping = make_character(preset, prefix="mixamorig:" if preset == "mixamo" else "")
    assert len(mapping) == 22  # every mapped joint resolved, the namespace prefix ignored
    m = random_motion()
    basis, loc = motion_to_rig(m, rig, mapping)
    _, heads = rig_world_pose(rig, basis, mapping["pelvis"], loc)
    src = m.joint_positions()
    expected = (src - smpl_rig().rest_positions[0]) * 1.3 + rig.rest_positions[mapping["pelvis"]]
    for joint in ("left_wrist", "right_wrist", "left_ankle", "right_ankle", "head", "left_foot"):
        err = np.abs(heads[:, mapping[joint]] - expected[:, SK.index(joint)]).max()
        assert err < 1e-6, (joint, err)


def test_rest_pose_maps_to_the_characters_a_pose_not_a_t_pose():
    rig, mapping = make_character("mixamo")
    basis, loc = motion_to_rig(Motion.rest(2), rig, mapping)
    # the SMPL T-pose lifts the A-pose arms: the basis of the upper arm is not identity, the spine's is
    assert not np.allclose(basis[0, mapping["left_shoulder"]], np.eye(3), atol=1e-3)
    assert np.allclose(basis[0, mapping["spine1"]], np.eye(3), atol=1e-6)
    assert np.allclose(loc, 0, atol=1e-6)


def test_calibration_matters():
    """Negative control: skipping the rest-pose alignment moves the hands by decimetres."""
    rig, mapping = make_character("mixamo")
    m = random_motion(frames=5)
    retargeter = Retargeter(smpl_rig(), {n: i for i, n in enumerate(SK.joint_names)}, rig, mapping)
    retargeter.t_dst = rig.rest_rotations[retargeter.dst_bone]  # plain rest frames, no direction correction
    glob, pos = m.forward()
    basis, loc = retargeter.transfer(glob, pos[:, 0])
    _, heads = rig_world_pose(rig, basis, mapping["pelvis"], loc)
    expected = (pos - smpl_rig().rest_positions[0]) * 1.3 + rig.rest_positions[mapping["pelvis"]]
    assert np.abs(heads[:, mapping["left_wrist"]] - expected[:, SK.index("left_wrist")]).max() > 0.1


def test_presets_and_guessing():
    assert {"mixamo", "ue5_mannequin", "rigify"} <= set(list_presets())
    rig, _ = make_character("ue5_mannequin")
    preset, mapping = guess_preset(list(rig.bone_names) + ["root", "ik_foot_root"])
    assert preset.name == "ue5_mannequin" and mapping["left_knee"] == rig.bone_names.index("calf_l")
    rigify_names = ["DEF-" + n for n in RetargetPreset.load("rigify").bones.values()]
    assert guess_preset(rigify_names)[0].name == "rigify"
    with pytest.raises(RetargetError, match="no preset matches"):
        guess_preset(["Bone", "Bone.001"])
    with pytest.raises(RetargetError, match="no retarget preset 'nope'"):
        RetargetPreset.load("nope")


def test_missing_leg_bones_are_named():
    rig, mapping = make_character("mixamo")
    del mapping["left_knee"]
    with pytest.raises(RetargetError, match="left_knee"):
        motion_to_rig(random_motion(frames=2), rig, mapping)


def _bone_directions(positions, pairs):
    d = np.stack([positions[:, b] - positions[:, a] for a, b in pairs], 1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


@pytest.mark.parametrize("folder,file,preset", [
    ("bandai_namco_motion_dataset1_dance", "dataset-1_dance-short_normal_001.bvh", "bandai_namco"),
    ("cmu_mocap_salsa_bvh", "60_01_scaled.bvh", "cmu_bvh"),
])
def test_real_bvh_retargets_onto_smpl(shared_data, folder, file, preset):
    clip = read_bvh(shared_data / folder / file)
    p = RetargetPreset.load(preset)
    motion = bvh_to_motion(clip, p)
    assert motion.num_frames == clip.num_frames and abs(motion.fps - clip.fps) < 1e-3
    _, src = clip.global_transforms()
    names = p.resolve(clip.joint_names)
    limbs = [("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"),
             ("right_elbow", "right_wrist"), ("left_shoulder", "left_elbow")]
    d_src = _bone_directions(src, [(names[a], names[b]) for a, b in limbs])
    d_smpl = _bone_directions(motion.joint_positions(), [(SK.index(a), SK.index(b)) for a, b in limbs])
    cos = np.sum(d_src * d_smpl, axis=-1)
    assert cos.min() > 0.999, cos.min()  # limb directions are carried over exactly
    feet = motion.joint_positions()[:, [SK.index(n) for n in SK.foot_joints], 1]
    assert abs(feet.min()) < 1e-5  # on the floor


def _standing(frames=6):
    from rigs.retarget import place_on_floor

    return place_on_floor(Motion.from_axis_angle(np.zeros((frames, 24, 3)), np.tile([0.0, 0.93, 0.0], (frames, 1))))


def test_a_target_whose_zero_pose_does_not_stand_dances_on_the_floor():
    """A skeleton whose zero pose lays the legs out beside the hips (as BVH offsets along x do) stood its dance on
    its rest feet, 0.85 m up (issue 31, failure 4); one whose rest pose stands keeps its own standing height."""
    rest = smpl_rig().rest_positions.copy()
    hips_y = rest[0, 1]
    for side in ("left", "right"):  # legs straight out sideways at hip height
        hip = SK.index(f"{side}_hip")
        sign = 1.0 if side == "left" else -1.0
        for joint, along in (("hip", 0.0), ("knee", 0.4), ("ankle", 0.8), ("foot", 0.9)):
            j = SK.index(f"{side}_{joint}")
            rest[j] = [rest[hip, 0] + sign * along, hips_y, rest[hip, 2]]
    lying = Rig(SK.joint_names, SK.parents, np.broadcast_to(np.eye(3), (24, 3, 3)), rest)
    mapping = {n: i for i, n in enumerate(SK.joint_names)}
    feet = [mapping[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    for rig in (lying, smpl_rig()):
        basis, loc = motion_to_rig(_standing(), rig, mapping)
        _, heads = rig_world_pose(rig, basis, mapping["pelvis"], loc)
        assert np.abs(heads[:, feet, 1].min(axis=1)).max() < 1e-3  # both stand on the floor


def test_the_bandai_namco_character_stands_on_the_floor(shared_data):
    clip = read_bvh(shared_data / "bandai_namco_motion_dataset1_dance" / "dataset-1_dance-short_normal_001.bvh")
    bvh = Rig.from_bvh(clip)
    for scale in (0.01, 1.0):  # Blender's BVH importer at scale 0.01 and at its default
        rig = Rig(bvh.bone_names, bvh.parents, bvh.rest_rotations, bvh.rest_positions * scale)
        mapping = RetargetPreset.load("bandai_namco").resolve(rig.bone_names)
        feet = [mapping[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot") if j in mapping]
        basis, loc = motion_to_rig(_standing(), rig, mapping)
        _, heads = rig_world_pose(rig, basis, mapping["pelvis"], loc)
        assert np.abs(heads[:, feet, 1].min(axis=1)).max() < 1e-3 * scale * 100, scale
