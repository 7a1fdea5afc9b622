"""Rotation conversions that work on numpy arrays and torch tensors alike.

Conventions used everywhere in the project:
- quaternions are (w, x, y, z), unit length, and `quaternion_to_matrix(q) @ v` rotates column vectors;
- the continuous 6D representation (Zhou et al. 2019) is the first two *rows* of the matrix, flattened,
  as pytorch3d and EDGE store it, so EDGE-style data reads without conversion;
- Euler angles are intrinsic, in the order named (``"ZXY"`` means R = Rz @ Rx @ Ry), as BVH channels are.

The module imports torch lazily: the Blender add-on imports `rigs` inside Blender's Python, where torch is absent.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

Array = Any  # np.ndarray or torch.Tensor; the functions return the type they were given

_EPS = 1e-8


def _numpy_ns() -> SimpleNamespace:
    return SimpleNamespace(
        stack=lambda xs, axis: np.stack(xs, axis=axis),
        sqrt=np.sqrt,
        sin=np.sin,
        cos=np.cos,
        atan2=np.arctan2,
        asin=np.arcsin,
        where=np.where,
        clip=np.clip,
        abs=np.abs,
        norm=lambda x: vector_norm(x, keepdims=True),
        cross=lambda a, b: np.cross(a, b, axis=-1),
        argmax=lambda x: np.argmax(x, axis=-1),
        arange=lambda n, like: np.arange(n),
        sum=lambda x, axis: np.sum(x, axis=axis),
        maximum=np.maximum,
        eye=lambda like: np.eye(3, dtype=like.dtype),
        astype_like=lambda x, like: x.astype(like.dtype),
    )


_NP = _numpy_ns()
_TORCH: SimpleNamespace | None = None


def _torch_ns() -> SimpleNamespace:
    global _TORCH
    if _TORCH is None:
        import torch

        _TORCH = SimpleNamespace(
            stack=lambda xs, axis: torch.stack(xs, dim=axis),
            sqrt=torch.sqrt,
            sin=torch.sin,
            cos=torch.cos,
            atan2=torch.atan2,
            asin=torch.asin,
            where=torch.where,
            clip=torch.clamp,
            abs=torch.abs,
            norm=lambda x: torch.linalg.vector_norm(x, dim=-1, keepdim=True),
            cross=lambda a, b: torch.linalg.cross(a, b, dim=-1),
            argmax=lambda x: torch.argmax(x, dim=-1),
            arange=lambda n, like: torch.arange(n, device=like.device),
            sum=lambda x, axis: torch.sum(x, dim=axis),
            maximum=torch.maximum,
            eye=lambda like: torch.eye(3, dtype=like.dtype, device=like.device),
            astype_like=lambda x, like: x.to(like.dtype),
        )
    return _TORCH


def xp(x: Array) -> SimpleNamespace:
    """Return the numpy or torch operations matching the type of `x`."""
    if isinstance(x, np.ndarray):
        return _NP
    if type(x).__module__.startswith("torch"):
        return _torch_ns()
    raise TypeError(f"expected a numpy array or a torch tensor, got {type(x).__name__}")


def vector_norm(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """np.linalg.norm(x, axis=-1) of a float numpy array, the same numbers: for a short last axis (quaternions,
    points) the squares are summed in numpy's own order, ((x0^2 + x1^2) + x2^2) + ..., without its reduction over a
    short strided axis, which took 3-4x as long (a 10-min dance builds and converts many (T, 24, 4) arrays)."""
    x = np.asarray(x)
    n = x.shape[-1] if x.ndim else 0
    if not 1 <= n < 8 or x.dtype not in (np.float32, np.float64):  # numpy sums 8 or more in blocks (and float16
        # in float32): its own function
        return np.linalg.norm(x, axis=-1, keepdims=keepdims)
    squares = x * x
    total = squares[..., 0]
    for i in range(1, n):
        total = total + squares[..., i]
    out = np.sqrt(total)
    return out[..., None] if keepdims else out


def _safe_div_norm(v: Array) -> tuple[Array, Array]:
    """Unit vectors and norms; zero vectors stay zero instead of producing NaN."""
    ops = xp(v)
    n = ops.norm(v)
    safe = ops.where(n > _EPS, n, n * 0 + 1)
    return v / safe, n


# --- quaternions -------------------------------------------------------------------------------------------------


def quaternion_to_matrix(q: Array) -> Array:
    """(..., 4) wxyz quaternions (normalised here) -> (..., 3, 3) rotation matrices."""
    ops = xp(q)
    q, _ = _safe_div_norm(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    if ops is _NP:  # the same sums written into one array: stacking rows of rows cost 3x (a 10-min dance's clean-ups)
        first = 1 - 2 * (y * y + z * z)
        m = np.empty(q.shape[:-1] + (3, 3), dtype=first.dtype)
        m[..., 0, 0], m[..., 0, 1], m[..., 0, 2] = first, 2 * (x * y - w * z), 2 * (x * z + w * y)
        m[..., 1, 0], m[..., 1, 1], m[..., 1, 2] = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
        m[..., 2, 0], m[..., 2, 1], m[..., 2, 2] = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
        return m
    rows = [
        ops.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        ops.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        ops.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ]
    return ops.stack(rows, -2)


def matrix_to_quaternion(m: Array, general: bool = False) -> Array:
    """(..., 3, 3) rotation matrices -> (..., 4) wxyz quaternions with w >= 0 (numerically robust branch choice);
    `general` takes the all-candidates form on numpy arrays too (the fast path's reference)."""
    ops = xp(m)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4x the squared magnitude of each component; the largest gives the best-conditioned formula (Shepperd's method).
    # The floor keeps sqrt's gradient finite where a component is exactly zero (e.g. the identity).
    squares = ops.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    q_abs = ops.sqrt(ops.maximum(squares, squares * 0 + 1e-20))
    if ops is _NP and not general and np.isfinite(m).all():  # (non-finite input: the general form, NaN throughout)
        return _matrix_to_quaternion_np(m, q_abs)
    candidates = ops.stack(
        [
            ops.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
            ops.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], -1),
            ops.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], -1),
            ops.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], -1),
        ],
        -2,
    )  # (..., 4 candidates, 4)
    denom = 2.0 * ops.maximum(q_abs, q_abs * 0 + 0.1)
    candidates = candidates / denom[..., None]
    best = ops.argmax(q_abs)
    onehot = ops.astype_like(best[..., None] == ops.arange(4, like=m), m)
    q = ops.sum(candidates * onehot[..., None], axis=-2)
    q, _ = _safe_div_norm(q)
    sign = ops.where(q[..., :1] < 0, q[..., :1] * 0 - 1, q[..., :1] * 0 + 1)
    return q * sign


def _matrix_to_quaternion_np(m: np.ndarray, q_abs: np.ndarray) -> np.ndarray:
    """matrix_to_quaternion's numpy path: each matrix's best-conditioned candidate picked entry by entry (np.choose),
    the same values as forming all four candidates and masking, which took 3x as long (310 ms for a 10-min dance's
    432,000 joint rotations)."""
    best = np.argmax(q_abs, axis=-1)
    m01, m02, m10, m12, m20, m21 = m[..., 0, 1], m[..., 0, 2], m[..., 1, 0], m[..., 1, 2], m[..., 2, 0], m[..., 2, 1]
    a, b, c = m21 - m12, m02 - m20, m10 - m01
    d, e, f = m10 + m01, m02 + m20, m12 + m21
    sq = [q_abs[..., k] ** 2 for k in range(4)]
    rows = ((sq[0], a, b, c), (a, sq[1], d, e), (b, d, sq[2], f), (c, e, f, sq[3]))
    denom = np.choose(best, [2.0 * np.maximum(q_abs[..., k], q_abs[..., k] * 0 + 0.1) for k in range(4)])
    q = np.stack([np.choose(best, [row[i] for row in rows]) / denom for i in range(4)], -1)
    # the general form sums the four candidates' entries, the others times 0: a zero entry comes out -0.0 only where
    # all four are negative or -0.0 (the sign of a zero decides +-pi in Euler angles of half turns, hence in BVH files)
    zero = q == 0
    if zero.any():
        negative = np.stack([np.all([np.signbit(row[i]) for row in rows], axis=0) for i in range(4)], -1)
        q[zero] = np.where(negative[zero], -0.0, 0.0)
    q, _ = _safe_div_norm(q)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_multiply(a: Array, b: Array) -> Array:
    """Hamilton product a * b of (..., 4) wxyz quaternions (apply b, then a)."""
    ops = xp(a)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return ops.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def quaternion_conjugate(q: Array) -> Array:
    """Inverse of a unit quaternion."""
    ops = xp(q)
    return ops.stack([q[..., 0], -q[..., 1], -q[..., 2], -q[..., 3]], -1)


# --- axis-angle -------------------------------------------------------------------------------------------------


def axis_angle_to_quaternion(aa: Array) -> Array:
    """(..., 3) axis * angle (radians) -> (..., 4) wxyz."""
    ops = xp(aa)
    angle = ops.norm(aa)
    half = angle / 2
    small = angle < 1e-6
    # sin(a/2)/a with its Taylor series near 0 so tiny rotations keep full precision.
    safe_angle = ops.where(small, angle * 0 + 1, angle)
    k = ops.where(small, 0.5 - angle * angle / 48, ops.sin(half) / safe_angle)
    v = aa * k
    return ops.stack([ops.cos(half)[..., 0], v[..., 0], v[..., 1], v[..., 2]], -1)


def quaternion_to_axis_angle(q: Array) -> Array:
    """(..., 4) wxyz -> (..., 3) axis * angle with angle in [0, pi]."""
    ops = xp(q)
    q, _ = _safe_div_norm(q)
    sign = ops.where(q[..., :1] < 0, q[..., :1] * 0 - 1, q[..., :1] * 0 + 1)
    q = q * sign
    v = q[..., 1:]
    n = ops.norm(v)
    half = ops.atan2(n, q[..., :1])
    small = n < 1e-6
    safe_n = ops.where(small, n * 0 + 1, n)
    # angle / sin(angle/2) -> 2 / w as the angle goes to 0.
    w = q[..., :1]
    safe_w = ops.where(small, w, w * 0 + 1)  # w is ~1 wherever the small branch is taken
    k = ops.where(small, 2.0 / safe_w, 2.0 * half / safe_n)
    return v * k


def axis_angle_to_matrix(aa: Array) -> Array:
    """(..., 3) axis-angle -> (..., 3, 3)."""
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


def matrix_to_axis_angle(m: Array) -> Array:
    """(..., 3, 3) -> (..., 3) axis-angle."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


# --- 6D ---------------------------------------------------------------------------------------------------------


def rotation_6d_to_matrix(d6: Array) -> Array:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt on the two stored rows; any 6-vector maps to a valid rotation."""
    ops = xp(d6)
    b1, _ = _safe_div_norm(d6[..., 0:3])
    a2 = d6[..., 3:6]
    b2, _ = _safe_div_norm(a2 - ops.sum(b1 * a2, axis=-1)[..., None] * b1)
    b3 = ops.cross(b1, b2)
    return ops.stack([b1, b2, b3], -2)


def matrix_to_rotation_6d(m: Array) -> Array:
    """(..., 3, 3) -> (..., 6): the first two rows."""
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


# --- Euler (BVH) ------------------------------------------------------------------------------------------------

_AXIS = {"X": 0, "Y": 1, "Z": 2}


def _axis_matrix(axis: int, angle: Array) -> Array:
    ops = xp(angle)
    c, s = ops.cos(angle), ops.sin(angle)
    one, zero = c * 0 + 1, c * 0
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return ops.stack([ops.stack(r, -1) for r in rows], -2)


def _check_order(order: str) -> str:
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"Euler order must be a permutation of XYZ, got {order!r}")
    return order


def euler_to_matrix(angles: Array, order: str) -> Array:
    """(..., 3) intrinsic Euler angles (radians, in `order`) -> (..., 3, 3)."""
    order = _check_order(order)
    m = _axis_matrix(_AXIS[order[0]], angles[..., 0])
    m = m @ _axis_matrix(_AXIS[order[1]], angles[..., 1])
    return m @ _axis_matrix(_AXIS[order[2]], angles[..., 2])


def matrix_to_euler(m: Array, order: str) -> Array:
    """(..., 3, 3) -> (..., 3) intrinsic Euler angles in `order`; the middle angle lies in [-pi/2, pi/2]."""
    ops = xp(m)
    order = _check_order(order)
    i, j, k = (_AXIS[c] for c in order)
    # +1 for cyclic orders (XYZ, YZX, ZXY), -1 for the others; derived from R = Ri(a) Rj(b) Rk(c).
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    b = ops.asin(ops.clip(s * m[..., i, k], -1.0, 1.0))
    a = ops.atan2(-s * m[..., j, k], m[..., k, k])
    c = ops.atan2(-s * m[..., i, j], m[..., i, i])
    return ops.stack([a, b, c], -1)


# --- helpers ------------------------------------------------------------------------------------------------------


def rotation_between(a: Array, b: Array) -> Array:
    """(..., 3) x 2 -> (..., 3, 3): the smallest rotation taking direction a onto direction b."""
    ops = xp(a)
    a, _ = _safe_div_norm(a)
    b, _ = _safe_div_norm(b)
    cos = ops.sum(a * b, axis=-1)[..., None]
    axis = ops.cross(a, b)
    # Opposite vectors: any axis perpendicular to a works; cross a with x, or with y when a is nearly along x.
    zero = a[..., 0] * 0
    x_axis = ops.stack([zero + 1, zero, zero], -1)
    y_axis = ops.stack([zero, zero + 1, zero], -1)
    alt = ops.cross(a, ops.where(ops.abs(a[..., :1]) < 0.9, x_axis, y_axis))
    opposite = (ops.norm(axis) < 1e-7) & (cos < 0)
    axis, _ = _safe_div_norm(ops.where(opposite, alt, axis))
    angle = ops.atan2(ops.norm(ops.cross(a, b)), cos)
    return axis_angle_to_matrix(axis * angle)


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between (..., 4) quaternions at fractions t (broadcast, numpy only)."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)  # take the short way round
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / vector_norm(out, keepdims=True)
