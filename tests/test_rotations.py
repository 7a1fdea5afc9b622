import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rigs import rotations as rot

finite = st.floats(-1.0, 1.0, allow_nan=False, width=64)
vec3 = arrays(np.float64, (8, 3), elements=finite)
# Near-zero quaternions have no direction; push w away from 0 instead of filtering whole batches.
quat = arrays(np.float64, (8, 4), elements=finite).map(lambda q: q + np.array([0.2, 0, 0, 0]) * np.sign(q[:, :1] + 1e-9))


def _is_rotation(m):
    eye = np.eye(3)
    return np.allclose(m @ np.swapaxes(m, -1, -2), eye, atol=1e-9) and np.allclose(np.linalg.det(m), 1.0, atol=1e-9)


@given(quat)
def test_quaternion_matrix_round_trip(q):
    m = rot.quaternion_to_matrix(q)
    assert _is_rotation(m)
    q2 = rot.matrix_to_quaternion(m)
    qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
    # q and -q are the same rotation
    assert np.allclose(np.abs(np.sum(q2 * qn, axis=-1)), 1.0, atol=1e-9)


@given(vec3)
def test_axis_angle_round_trip(v):
    aa = v * 3.0  # angles up to about 5.2 rad: wrap them into [0, pi] first for a unique answer
    m = rot.axis_angle_to_matrix(aa)
    assert _is_rotation(m)
    aa2 = rot.matrix_to_axis_angle(m)
    assert (np.linalg.norm(aa2, axis=-1) <= np.pi + 1e-9).all()
    assert np.allclose(rot.axis_angle_to_matrix(aa2), m, atol=1e-9)


def test_axis_angle_small_angles_keep_precision():
    aa = np.array([[1e-9, 0, 0], [0, 2e-7, 0], [0, 0, 0]])
    assert np.allclose(rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa)), aa, atol=1e-15)


@given(arrays(np.float64, (8, 6), elements=finite))
def test_6d_maps_any_vector_to_a_rotation_and_round_trips(d6):
    # rows whose two 3-vectors are (nearly) parallel have no defined second axis
    d6 = d6[np.linalg.norm(np.cross(d6[:, :3], d6[:, 3:]), axis=-1) > 1e-3]
    m = rot.rotation_6d_to_matrix(d6)
    assert _is_rotation(m)
    assert np.allclose(rot.rotation_6d_to_matrix(rot.matrix_to_rotation_6d(m)), m, atol=1e-9)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
@given(arrays(np.float64, (8, 3), elements=st.floats(-1.5, 1.5, width=64)))
def test_euler_round_trip(order, angles):
    m = rot.euler_to_matrix(angles, order)
    assert _is_rotation(m)
    assert np.allclose(rot.matrix_to_euler(m, order), angles, atol=1e-8)


def test_euler_order_is_intrinsic_product():
    a = np.array([0.3, -0.2, 0.5])
    rz, rx, ry = (rot.euler_to_matrix(np.array(v), "XYZ") for v in ([0, 0, a[0]], [a[1], 0, 0], [0, a[2], 0]))
    assert np.allclose(rot.euler_to_matrix(a, "ZXY"), rz @ rx @ ry)


@given(quat)
@settings(max_examples=30)
def test_torch_and_numpy_agree(q):
    m_np = rot.quaternion_to_matrix(q)
    m_t = rot.quaternion_to_matrix(torch.tensor(q))
    assert np.allclose(m_t.numpy(), m_np, atol=1e-12)
    assert np.allclose(rot.matrix_to_rotation_6d(m_t).numpy(), rot.matrix_to_rotation_6d(m_np))
    assert np.allclose(rot.matrix_to_axis_angle(m_t).numpy(), rot.matrix_to_axis_angle(m_np), atol=1e-9)


def test_matrix_to_quaternion_picks_the_well_conditioned_formula_in_numpy_as_in_torch():
    """The numpy path forms only each matrix's best candidate; half turns (where three of the four candidates divide by
    almost nothing) and the identity come back exactly, and every value matches the torch path's all-candidates form."""
    half_turns = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0.6, 0.8, 0], [0, 0, 0.6, 0.8]])
    rng = np.random.default_rng(5)
    q = np.concatenate([half_turns, rng.normal(size=(200, 4))])
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[:, :1] < 0, -q, q)
    m = rot.quaternion_to_matrix(q)
    got = rot.matrix_to_quaternion(m)
    np.testing.assert_allclose(got, rot.matrix_to_quaternion(torch.tensor(m)).numpy(), atol=1e-12)
    np.testing.assert_array_equal(got, rot.matrix_to_quaternion(m, general=True))
    np.testing.assert_allclose(np.abs(np.sum(got * q, axis=-1)), 1.0, atol=1e-12)
    np.testing.assert_array_equal(got[:4], half_turns[:4])
    assert got.shape == q.shape and rot.matrix_to_quaternion(m[0]).shape == (4,)
    assert rot.matrix_to_quaternion(m.astype(np.float32)).dtype == np.float32
    # exact-valued matrices (signed zeros and ones, as rigs and BVH files hold): the same values and signs of zero as
    # the general form, which decide +-pi in the Euler angles of half turns
    exact = rng.choice([0.0, -0.0, 1.0, -1.0], size=(4000, 3, 3))
    fast, general = rot.matrix_to_quaternion(exact), rot.matrix_to_quaternion(exact, general=True)
    np.testing.assert_array_equal(fast, general)
    np.testing.assert_array_equal(np.signbit(fast), np.signbit(general))
    with np.errstate(invalid="ignore"):  # inf * 0 in the general form
        assert np.isnan(rot.matrix_to_quaternion(np.array([[1.0, np.inf, 0], [0, 1, 0], [0, 0, 1]]))).all()


def test_torch_gradients_are_finite_at_identity():
    d6 = torch.tensor([[1.0, 0, 0, 0, 1, 0]], requires_grad=True)
    aa = rot.matrix_to_axis_angle(rot.rotation_6d_to_matrix(d6))
    aa.sum().backward()
    assert torch.isfinite(d6.grad).all()


@given(vec3, vec3)
def test_rotation_between_maps_direction(a, b):
    if (np.linalg.norm(a, axis=-1) < 1e-3).any() or (np.linalg.norm(b, axis=-1) < 1e-3).any():
        return
    r = rot.rotation_between(a, b)
    assert _is_rotation(r)
    out = (r @ a[..., None])[..., 0]
    assert np.allclose(out / np.linalg.norm(out, axis=-1, keepdims=True), b / np.linalg.norm(b, axis=-1, keepdims=True),
                       atol=1e-7)


def test_rotation_between_opposite_vectors():
    r = rot.rotation_between(np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0]))
    assert np.allclose(r @ [0, 1, 0], [0, -1, 0])
    assert _is_rotation(r)


def test_slerp_endpoints_and_midpoint():
    q0 = np.array([1.0, 0, 0, 0])
    q1 = rot.axis_angle_to_quaternion(np.array([0, 0, 1.0]))
    assert np.allclose(rot.quaternion_slerp(q0, q1, 0.0), q0)
    assert np.allclose(rot.quaternion_slerp(q0, q1, 1.0), q1)
    mid = rot.quaternion_slerp(q0, q1, 0.5)
    assert np.allclose(rot.quaternion_to_axis_angle(mid), [0, 0, 0.5])


def test_rejects_non_arrays():
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        rot.quaternion_to_matrix([1, 0, 0, 0])


def test_vector_norm_is_numpys_norm_to_the_bit():
    """rot.vector_norm sums a short last axis's squares in numpy's order: np.linalg.norm's numbers, any length
    and float type, keepdims or not (lengths of 8 and more, and integers, go to numpy itself)."""
    rng = np.random.default_rng(11)
    for n in range(1, 11):
        for dtype in (np.float32, np.float64):
            x = (rng.standard_normal((300, 7, n)) * rng.lognormal(0, 3, (300, 7, 1))).astype(dtype)
            x[0, 0] = 0.0
            for keep in (False, True):
                got, want = rot.vector_norm(x, keepdims=keep), np.linalg.norm(x, axis=-1, keepdims=keep)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want)
    for other in (rng.integers(-5, 5, (20, 3)), rng.standard_normal((20, 3)).astype(np.float16)):
        np.testing.assert_array_equal(rot.vector_norm(other), np.linalg.norm(other, axis=-1))
