import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rigs import rotations as rot
from rigs.kinematics import forward_kinematics, joint_positions
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


def test_numpy_forward_kinematics_is_the_chain_of_products_to_the_bit():
    """The numpy path runs joint-major (contiguous products): the same numbers as the products along the chain,
    with batch dimensions, a float32 root, and for the torch path's inputs."""
    sk = SK
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 7, 24, 4))
    local = rot.quaternion_to_matrix(q / np.linalg.norm(q, axis=-1, keepdims=True))
    root = rng.standard_normal((2, 7, 3)).astype(np.float32)
    rots, pos = forward_kinematics(local, root, sk.offsets, sk.parents)
    want_r, want_p = [], []
    for j, p in enumerate(sk.parents):
        if p < 0:
            want_r.append(local[..., j, :, :])
            want_p.append(root.astype(np.float64))
        else:
            want_r.append(want_r[p] @ local[..., j, :, :])
            want_p.append(want_p[p] + (want_r[p] @ np.asarray(sk.offsets[j], np.float64)[:, None])[..., 0])
    np.testing.assert_array_equal(rots, np.stack(want_r, -3))
    np.testing.assert_array_equal(pos, np.stack(want_p, -2))
    assert pos.dtype == np.float64 and pos.shape == (2, 7, 24, 3) and pos.flags.c_contiguous
    t_rots, t_pos = forward_kinematics(torch.from_numpy(local), torch.from_numpy(root.astype(np.float64)), sk.offsets,
                                       sk.parents)
    np.testing.assert_allclose(t_pos.numpy(), pos, atol=1e-12)
    np.testing.assert_allclose(t_rots.numpy(), rots, atol=1e-12)
    with pytest.raises(ValueError, match=r"root_translation must have shape \(2, 7, 3\)"):
        forward_kinematics(local, root[0, 0], sk.offsets, sk.parents)  # (3,) for (2, 7) poses: not broadcast


def test_joint_positions_alone_are_forward_kinematics_positions_and_gradients_to_the_bit():
    """Positions without the leaf joints' world rotations: the same numbers on both backends, and under autograd
    (the beat guidance's gradient) the same gradient as through the full forward kinematics' positions."""
    sk = SK
    rng = np.random.default_rng(11)
    q = rng.standard_normal((3, 24, 4))
    local = rot.quaternion_to_matrix(q / np.linalg.norm(q, axis=-1, keepdims=True))
    root = rng.standard_normal((3, 3))
    np.testing.assert_array_equal(joint_positions(local, root, sk.offsets, sk.parents),
                                  forward_kinematics(local, root, sk.offsets, sk.parents)[1])
    weights = torch.from_numpy(rng.standard_normal((3, 24, 3)))
    grads = []
    for solve in (lambda m, r: forward_kinematics(m, r, sk.offsets, sk.parents)[1],
                  lambda m, r: joint_positions(m, r, sk.offsets, sk.parents)):
        m, r = torch.from_numpy(local).requires_grad_(True), torch.from_numpy(root).requires_grad_(True)
        pos = solve(m, r)
        (pos * weights).sum().backward()
        grads.append((pos.detach(), m.grad, r.grad))
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    assert grads[0][1][:, [10, 11, 15, 22, 23]].abs().sum() == 0  # the leaves' rotations move no joint
