"""The add-on's Blender-free core."""

import numpy as np

from blender_addon.core.armature import Y_UP_TO_Z_UP, rig_from_rest, smpl_bone_layout
from blender_addon.core.bake import _smpl_basis, bake_arrays, beat_marker_frames, continuous, is_smpl_rig
from rigs import rotations as rot
from rigs.motion import Motion
from rigs.retarget import motion_to_rig


def smpl_like_rig(seed=0):
    """Blender-style rest matrices for the SMPL layout with arbitrary bone axes (as rolls make them)."""
    layout = smpl_bone_layout()
    frames = rot.axis_angle_to_matrix(np.random.default_rng(seed).normal(size=(24, 3)))
    mats = np.tile(np.eye(4), (24, 1, 1))
    mats[:, :3, :3] = frames
    mats[:, :3, 3] = [h for _, _, h, _ in layout]
    rig = rig_from_rest([n for n, *_ in layout], [p for _, p, *_ in layout], mats)
    return rig, {n: i for i, n in enumerate(rig.bone_names)}


def test_fast_smpl_path_equals_the_general_retarget():
    rig, mapping = smpl_like_rig()
    assert is_smpl_rig(rig, mapping)
    rng = np.random.default_rng(1)
    m = Motion.from_axis_angle(rng.normal(size=(20, 24, 3)) * 0.5, rng.normal(size=(20, 3)) + [0, 1, 0])
    fast_q, bones, fast_loc = _smpl_basis(m, rig, mapping)
    basis, loc = motion_to_rig(m, rig, mapping)
    general_q = rot.matrix_to_quaternion(basis[:, bones])
    assert np.abs(np.abs(np.sum(fast_q * general_q, axis=-1)) - 1).max() < 1e-6  # same rotations (q ~ -q)
    assert np.allclose(fast_loc, loc, atol=1e-6)
    other, omap = smpl_like_rig()
    other.rest_positions = other.rest_positions * 1.1
    assert not is_smpl_rig(other, omap)


def test_quaternion_curves_never_flip_sign():
    q = rot.axis_angle_to_quaternion(np.stack([np.zeros(50), np.linspace(0, 6, 50), np.zeros(50)], 1))
    q[::3] *= -1  # the same rotations with alternating signs
    c = continuous(q[:, None])[:, 0]
    assert (np.sum(c[1:] * c[:-1], axis=-1) > 0).all()
    assert np.allclose(rot.quaternion_to_matrix(c), rot.quaternion_to_matrix(q))


def test_layout_and_markers():
    layout = smpl_bone_layout()
    heads = np.array([h for _, _, h, _ in layout])
    assert abs(heads[:, 2].min()) < 1e-9 and heads[15, 2] > 1.4  # z up, feet on the floor
    assert np.allclose(Y_UP_TO_Z_UP @ [0, 0, 1], [0, -1, 0])  # SMPL faces +z, Blender characters face -y
    assert beat_marker_frames(np.array([0, 15, 30]), 30, 24, 1) == [1, 13, 25]
    arrays = bake_arrays(Motion.rest(5), *smpl_like_rig())
    assert arrays.co(arrays.quaternions[:, 0, 0]).shape == (10,) and list(arrays.frames) == [1, 2, 3, 4, 5]


def test_beat_grid_extends_the_tracked_beats_over_the_whole_dance():
    from blender_addon.core.bake import beat_grid

    tracked = np.array([41, 56, 71, 85, 101, 116])  # a quiet intro and a held end were trimmed by the tracker
    grid = beat_grid(tracked, 200)
    assert set(tracked) <= set(grid)
    assert 0 <= grid[0] < 15 and 200 - 1 - 15 < grid[-1] <= 199
    assert np.allclose(np.diff(grid[grid < 41]), 15) and np.allclose(np.diff(grid[grid > 116]), 15)
    assert len(beat_grid(np.array([10]), 100)) == 1  # no period from a single beat: nothing invented


def test_org_bones_hang_from_the_org_bone_their_chain_connects_to():
    """A generated Rigify rig parents its spine's ORG- bones to controls: read as roots, the chest, neck, head and
    arms stayed at rest while the hips travelled (issue 31, failure 2)."""
    from blender_addon.core.control_rig import org_parents

    names = ["ORG-spine.001", "ORG-upper_arm.L", "ORG-spine", "ORG-spine.002", "ORG-face", "ORG-thigh.L"]
    heads = [(0, 0, 1.2), (0.2, 0, 1.5), (0, 0, 1.0), (0, 0, 1.4), (5, 5, 5), (0.1, 0, 1.0)]
    tails = [(0, 0, 1.4), (0.5, 0, 1.5), (0, 0, 1.2), (0, 0, 1.6), (5, 5, 6), (0.1, 0, 0.5)]
    # ancestors up the real parent chain: the spine has none (controls), the arm and thigh have theirs
    ancestors = [None, "ORG-spine.002", None, None, None, "ORG-spine"]
    order, parents = org_parents(names, ancestors, heads, tails)
    parent_of = {n: (order[p] if p >= 0 else None) for n, p in zip(order, parents)}
    assert parent_of == {"ORG-spine": None, "ORG-spine.001": "ORG-spine", "ORG-spine.002": "ORG-spine.001",
                         "ORG-upper_arm.L": "ORG-spine.002", "ORG-face": None, "ORG-thigh.L": "ORG-spine"}
    assert all(p < i for i, p in enumerate(parents))  # parents first


def test_an_armature_object_rotated_and_scaled_as_imported_gets_the_same_dance():
    """Blender's FBX importer leaves a Mixamo character y up in centimetres inside an object rotated 90 deg about x
    and scaled 0.01: it danced lying on its side, feet 1.44 m under the floor (issue 31, failure 3)."""
    layout = smpl_bone_layout()
    frames = rot.axis_angle_to_matrix(np.random.default_rng(2).normal(size=(24, 3)))
    world = np.tile(np.eye(4), (24, 1, 1))
    world[:, :3, :3], world[:, :3, 3] = frames, [h for _, _, h, _ in layout]
    lin = rot.axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0])) * 0.01  # the object's rotation and scale
    inside = world.copy()  # the same bones in the armature's own space (y up, centimetres)
    inside[:, :3, :3] = np.linalg.inv(lin / 0.01) @ world[:, :3, :3]
    inside[:, :3, 3] = world[:, :3, 3] @ np.linalg.inv(lin).T
    names, parents = [n for n, *_ in layout], [p for _, p, *_ in layout]
    plain = rig_from_rest(names, parents, world)
    imported = rig_from_rest(names, parents, inside, linear=lin)
    assert np.allclose(imported.rest_positions, plain.rest_positions) and abs(imported.unit - 0.01) < 1e-12
    mapping = {n: i for i, n in enumerate(names)}
    rng = np.random.default_rng(3)
    m = Motion.from_axis_angle(rng.normal(size=(12, 24, 3)) * 0.4, rng.normal(size=(12, 3)) * 0.3 + [0, 0.9, 0])
    a, b = bake_arrays(m, plain, mapping), bake_arrays(m, imported, mapping)
    assert np.abs(np.abs(np.sum(a.quaternions * b.quaternions, axis=-1)) - 1).max() < 1e-6  # same bone rotations
    assert np.allclose(b.root_location, a.root_location * 100)  # the same travel, in the armature's centimetres
