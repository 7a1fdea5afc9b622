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


def test_a_characters_fingers_keep_their_rest_pose_on_the_hand():
    """SMPL has no fingers: a character's finger bones (unmapped) keep their rest pose relative to the hand, curled
    or spread as the artist built them, while the hand dances."""
    from builders import random_motion
    from rigs import rotations as rot
    from rigs.retarget import motion_to_rig

    rig, mapping = character(MATRIX["mixamo_studio"])
    hand = mapping["left_wrist"]
    names = list(rig.bone_names) + ["LeftHandIndex1", "LeftHandIndex2"]
    parents = list(rig.parents) + [hand, len(rig.bone_names)]
    curl = rot.axis_angle_to_matrix(np.array([0.0, 0.0, 0.6]))
    frames = np.concatenate([rig.rest_rotations, [rig.rest_rotations[hand] @ curl, rig.rest_rotations[hand] @ curl @ curl]])
    tip = rig.rest_positions[hand] + np.array([0.08, -0.01, 0.0])
    heads = np.concatenate([rig.rest_positions, [tip, tip + np.array([0.03, -0.01, 0.0])]])
    fingered = Rig(tuple(names), tuple(parents), frames, heads)
    basis, loc = motion_to_rig(random_motion(frames=12, seed=4), fingered, mapping)
    world, _ = rig_world_pose(fingered, basis, mapping["pelvis"], loc)
    np.testing.assert_allclose(basis[:, -2:], np.broadcast_to(np.eye(3), (12, 2, 3, 3)), atol=1e-12)
    # each finger's orientation relative to the hand stays the rest one (the curl), whatever the hand does
    for finger, parent in ((-2, hand), (-1, len(names) - 2)):
        rel = np.swapaxes(world[:, parent], -1, -2) @ world[:, finger]
        rest_rel = frames[parent].T @ frames[finger]
        np.testing.assert_allclose(rel, np.broadcast_to(rest_rel, rel.shape), atol=1e-9)
    assert not np.allclose(world[0, hand], world[5, hand], atol=1e-3)  # while the hand itself moves


def test_a_held_foot_moves_as_the_dancers_and_lets_go_smoothly():
    """Through a contact the corrected ankle path follows the source's from where the contact began; after it the
    correction eases out over EASE_OUT (no jump), and frames before any contact are untouched."""
    from rigs.retarget import EASE_OUT, _lock_offsets

    t = np.arange(60)
    fk = np.stack([0.01 * t, np.zeros(60)], axis=1)  # the plain transfer drifts 1 cm a frame
    source = np.zeros((60, 2))
    source[:, 1] = 0.002 * t  # the dancer's own foot creeps a little the other way
    planted = (t >= 10) & (t < 30)
    off = _lock_offsets(fk, source, planted, 30.0)
    held = fk + off
    assert np.allclose(off[:10], 0.0)
    np.testing.assert_allclose(held[10:30] - held[10], source[10:30] - source[10], atol=1e-12)
    ease = int(round(EASE_OUT * 30))
    assert np.allclose(off[30 + ease - 1:], 0.0)
    steps = np.linalg.norm(np.diff(off[29:30 + ease], axis=0), axis=1)
    assert steps.max() < 0.5 * np.linalg.norm(off[29]) and steps.max() > 0  # eased, not dropped in one frame


@pytest.mark.parametrize("fps", [24.0, 60.0])
def test_the_hold_works_at_other_frame_rates(dance, fps):
    """At 60 fps a limb budget met in one frame let a held foot jump there (0.55 m/s against the dancer's 0.27)."""
    moved = dance.resample(fps)
    fit = _retarget(moved, *character(MATRIX["mixamo_studio"]))
    _check(fit, f"mixamo_studio at {fps:g} fps")
    assert fit.planted_slide_m_s < fit.source_slide_m_s + 0.03, fit
