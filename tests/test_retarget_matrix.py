"""The character matrix (issue 31): a real dance retargeted onto studio-shaped characters and real BVH skeletons,
measured every frame against the SMPL dance: feet on the floor, limbs along the dancer's, pelvis on its path, and
planted feet held where the dancer's are."""

import numpy as np
import pytest

from characters import MATRIX, character
from rigs.bvh import read_bvh
from rigs.retarget import RetargetPreset, Rig, Retargeter, bvh_to_motion, rig_world_pose, smpl_rig
from rigs.retarget_fit import retarget_fit, smpl_rest_heights
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()
BANDAI = ("bandai_namco_motion_dataset1_dance", "dataset-1_dance-short_normal_001.bvh")
CMU = ("cmu_mocap_salsa_bvh", "60_01_scaled.bvh")


@pytest.fixture(scope="module")
def dance(shared_data):
    """A real dancer's minute (Bandai Namco's dance mocap) on SMPL: feet that plant, turn on the spot and travel."""
    return bvh_to_motion(read_bvh(shared_data.joinpath(*BANDAI)), RetargetPreset.load("bandai_namco"))


def _retarget(dance, rig, mapping, ik_feet=True, metres=1.0):
    smap = {n: i for i, n in enumerate(SK.joint_names)}
    retargeter = Retargeter(smpl_rig(), smap, rig, mapping, ik_feet=ik_feet)
    glob, pos = dance.forward()
    basis, loc = retargeter.transfer(glob, pos[:, 0], dance.fps)
    _, heads = rig_world_pose(rig, basis, mapping["pelvis"], loc)
    # a toe-less character stands on its ankles at SMPL's ankle height, scaled; one with toes on their heads
    stand = 0.0 if "left_foot" in mapping else smpl_rest_heights()[SK.index("left_ankle")] * retargeter.scale
    return retarget_fit(pos, heads * metres, mapping, retargeter.scale * metres, dance.fps, stand * metres)


def _bvh_rig(shared_data, folder, file, preset, scale):
    bvh = Rig.from_bvh(read_bvh(shared_data / folder / file))
    rig = Rig(bvh.bone_names, bvh.parents, bvh.rest_rotations, bvh.rest_positions * scale)
    return rig, RetargetPreset.load(preset).resolve(rig.bone_names)


def _check(fit, name):
    assert fit.planted_frames > 500, name  # the dance plants its feet: the foot measures see real contacts
    assert fit.foot_height_m < 0.02, (name, fit)
    assert fit.limb_deg < 5.0, (name, fit)
    assert fit.pelvis_path_m < 0.02, (name, fit)
    assert fit.below_floor_m < 0.02, (name, fit)  # no foot in the floor, planted or not


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_built_characters_follow_the_dance_with_feet_held(dance, name):
    build = MATRIX[name]
    rig, mapping = character(build)
    metres = 1.0 / build.scale
    fit = _retarget(dance, rig, mapping, metres=metres)
    _check(fit, name)
    # planted feet move only as the dancer's do (scaled), where rotations alone skate on studio proportions
    assert fit.planted_slide_m_s < fit.source_slide_m_s + 0.03, (name, fit)


def test_without_foot_ik_studio_proportions_skate(dance):
    """Negative control: the plain rotation transfer slides a long-legged character's planted feet."""
    build = MATRIX["mixamo_studio"]
    fit = _retarget(dance, *character(build), ik_feet=False)
    assert fit.planted_slide_m_s > fit.source_slide_m_s + 0.1, fit


@pytest.mark.parametrize("folder,file,preset,scale", [(*CMU, "cmu_bvh", 1.0), (*BANDAI, "bandai_namco", 0.01),
                                                      (*BANDAI, "bandai_namco", 1.0)])
def test_real_bvh_skeletons_follow_the_dance(dance, shared_data, folder, file, preset, scale):
    rig, mapping = _bvh_rig(shared_data, folder, file, preset, scale)
    metres = 1.0 if preset == "cmu_bvh" else 0.01 / scale
    fit = _retarget(dance, rig, mapping, metres=metres)
    _check(fit, preset)
    plain = _retarget(dance, rig, mapping, ik_feet=False, metres=metres)
    # the feet are held as far as the limb budget lets them: never more slide than the plain transfer
    assert fit.planted_slide_m_s <= plain.planted_slide_m_s + 1e-6, (fit, plain)


def test_a_toe_less_skeleton_stands_on_its_ankles_not_in_the_floor(dance, shared_data):
    """CMU's BVH has no toe joints: its ankles stood on the floor, the feet sunk 3 cm into it."""
    rig, mapping = _bvh_rig(shared_data, *CMU, "cmu_bvh", 1.0)
    assert "left_foot" not in mapping
    smap = {n: i for i, n in enumerate(SK.joint_names)}
    retargeter = Retargeter(smpl_rig(), smap, rig, mapping)
    glob, pos = dance.forward()
    basis, loc = retargeter.transfer(glob, pos[:, 0], dance.fps)
    _, heads = rig_world_pose(rig, basis, mapping["pelvis"], loc)
    lowest = heads[:, [mapping["left_ankle"], mapping["right_ankle"]], 1].min()
    ankle = smpl_rest_heights()[SK.index("left_ankle")] * retargeter.scale
    assert lowest > 0.6 * ankle, (lowest, ankle)
