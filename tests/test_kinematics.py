import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rigs import rotations as rot
from rigs.kinematics import forward_kinematics
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()


def test_smpl_skeleton_data():
    assert SK.num_joints == 24
    assert SK.joint_names[0] == "pelvis" and SK.joint_names[15] == "head"
    assert SK.parents[:4] == (-1, 0, 0, 0)
    rest = SK.rest_positions()
    # y-up, left is +x: the left hip is at +x, the head far above the ankles
    assert rest[SK.index("left_hip"), 0] > 0 > rest[SK.index("right_hip"), 0]
    assert rest[SK.index("head"), 1] - rest[SK.index("left_ankle"), 1] > 1.3
    assert 0.78 < SK.leg_length() < 0.85


@given(arrays(np.float64, (3,), elements=st.floats(-5, 5, width=64)))
def test_fk_of_rest_pose_is_rest_joints(root):
    eye = np.broadcast_to(np.eye(3), (2, 24, 3, 3))
    _, pos = forward_kinematics(eye, np.broadcast_to(root, (2, 3)), SK.offsets, SK.parents)
    assert np.allclose(pos, SK.rest_positions() + root, atol=1e-12)
    _, pos_t = forward_kinematics(torch.tensor(eye), torch.tensor(np.broadcast_to(root, (2, 3)).copy()), SK.offsets, SK.parents)
    assert np.allclose(pos_t.numpy(), pos, atol=1e-12)


@given(arrays(np.float64, (4, 24, 3), elements=st.floats(-2, 2, width=64)))
@settings(max_examples=25)
def test_fk_keeps_bone_lengths_and_matches_torch(aa):
    local = rot.axis_angle_to_matrix(aa)
    glob, pos = forward_kinematics(local, np.zeros((4, 3)), SK.offsets, SK.parents)
    for j, p in enumerate(SK.parents):
        if p >= 0:
            assert np.allclose(np.linalg.norm(pos[:, j] - pos[:, p], axis=-1), np.linalg.norm(SK.offsets[j]), atol=1e-9)
    assert np.allclose(glob[:, 0], local[:, 0])
    glob_t, pos_t = forward_kinematics(torch.tensor(local), torch.zeros(4, 3, dtype=torch.float64), SK.offsets, SK.parents)
    assert np.allclose(pos_t.numpy(), pos, atol=1e-10)
    assert np.allclose(glob_t.numpy(), glob, atol=1e-10)


def test_fk_rotating_the_root_turns_the_body():
    turn = rot.axis_angle_to_matrix(np.array([0.0, np.pi, 0.0]))  # half a turn about up
    local = np.broadcast_to(np.eye(3), (1, 24, 3, 3)).copy()
    local[0, 0] = turn
    _, pos = forward_kinematics(local, np.zeros((1, 3)), SK.offsets, SK.parents)
    assert pos[0, SK.index("left_hip"), 0] < 0  # the left hip moved to -x
    assert np.allclose(pos[0, :, 1], SK.rest_positions()[:, 1])
