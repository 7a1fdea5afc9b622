"""Rest-pose-relative retargeting between the SMPL skeleton and other rigs (game rigs, BVH skeletons).

Every rig has a reference pose: per bone a world orientation A and a head position P (for a Blender armature its rest
pose, for a BVH file its all-zero-rotation pose, for SMPL its T-pose). Rigs disagree about that pose (T-pose vs A-pose,
bone axes along x or y), so each mapped bone gets a calibration T = C @ A, where C is the smallest rotation that turns
the bone's reference direction(s) onto the SMPL T-pose direction(s) of the same body part. For the pelvis and the
chest C aligns two directions (up the spine and across the hips or shoulders) so heading and lean match too.

A source pose with world bone rotations G is transferred as the world change D = G @ T_src^-1, which the target
takes on as Q = D @ T_dst. Each target bone's local pose rotation is then re-expressed in its own rest frame the way
Blender composes pose bones (matrix = parent.matrix @ rest_parent^-1 @ rest @ basis), so the same numbers drive a
Blender armature, a BVH skeleton or SMPL. Unmapped target bones keep their rest pose relative to their parent. Root
translation is scaled by the ratio of leg lengths (hip-knee-ankle) of the two rigs; a target whose rest pose stands
below its floor (a BVH import with the hips at the origin) is raised so its feet dance on the floor. With other leg
proportions than the source (studio characters have longer thighs, wider hips), rotations alone slide the feet
while the dancer stands, so a two-bone IK then bends each leg to hold the ankle through each of the source's
contacts (moving only as the source's ankle moves, scaled), easing back to the plain transfer after it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from rigs import rotations as rot
from rigs.bvh import BvhClip
from rigs.motion import Motion
from rigs.presets import (PRESETS_DIR, REQUIRED, RetargetError, RetargetPreset, guess_preset,  # noqa: F401 (re-exported)
                          list_presets)
from rigs.skeleton import Skeleton, smpl_skeleton

# For each SMPL joint, the joints whose positions define its direction: an aim chain (first one mapped in both rigs
# wins) and, for joints whose twist matters for the body's frame, a left-minus-right pair for the second direction.
_AIM: dict[str, tuple[str, ...]] = {
    "pelvis": ("neck", "spine3", "spine2", "spine1"),
    "spine1": ("spine2", "spine3", "neck"),
    "spine2": ("spine3", "neck"),
    "spine3": ("neck", "head"),
    "neck": ("head",),
    "left_collar": ("left_shoulder",),
    "right_collar": ("right_shoulder",),
}
for _side in ("left", "right"):
    _AIM.update({
        f"{_side}_hip": (f"{_side}_knee",),
        f"{_side}_knee": (f"{_side}_ankle",),
        f"{_side}_ankle": (f"{_side}_foot",),
        f"{_side}_shoulder": (f"{_side}_elbow",),
        f"{_side}_elbow": (f"{_side}_wrist",),
        f"{_side}_wrist": (f"{_side}_hand",),
    })
_ACROSS: dict[str, tuple[str, str]] = {
    "pelvis": ("left_hip", "right_hip"),
    "spine1": ("left_hip", "right_hip"),
    "spine2": ("left_shoulder", "right_shoulder"),
    "spine3": ("left_shoulder", "right_shoulder"),
}


@dataclass
class Rig:
    """A target or source hierarchy in the common world frame (y up, character facing +z, metres or file units)."""

    bone_names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_rotations: np.ndarray  # (B, 3, 3) world orientation of each bone in the reference pose
    rest_positions: np.ndarray  # (B, 3) world head position of each bone in the reference pose
    floor: float = 0.0  # the floor's height in this rig's frame (y), e.g. when its object sits above the world's
    unit: float = 1.0  # rig-frame length of one unit of the rig's own bone locations (an object scaled by 0.01: 0.01)

    def __post_init__(self) -> None:
        n = len(self.bone_names)
        self.rest_rotations = np.asarray(self.rest_rotations, dtype=np.float64).reshape(n, 3, 3)
        self.rest_positions = np.asarray(self.rest_positions, dtype=np.float64).reshape(n, 3)
        for b, p in enumerate(self.parents):
            if p >= b:
                raise RetargetError(f"bone {self.bone_names[b]!r}: parents must come before children")

    @classmethod
    def from_skeleton(cls, skeleton: Skeleton, on_floor: bool = True) -> "Rig":
        """A skeleton in its rest pose (identity frames); `on_floor` lifts it so its lowest joint is at y = 0."""
        pos = skeleton.rest_positions()
        if on_floor:
            pos = pos - np.array([0.0, pos[:, 1].min(), 0.0])
        eye = np.broadcast_to(np.eye(3), (skeleton.num_joints, 3, 3))
        return cls(skeleton.joint_names, skeleton.parents, eye, pos)

    @classmethod
    def from_bvh(cls, clip: BvhClip) -> "Rig":
        """A BVH hierarchy in its zero-rotation pose (whatever pose that is: calibration aligns it)."""
        return cls.from_skeleton(clip.skeleton(), on_floor=False)


@functools.lru_cache(maxsize=None)
def smpl_rig() -> Rig:
    """The SMPL skeleton standing on the floor."""
    return Rig.from_skeleton(smpl_skeleton())


# --- calibration and transfer -------------------------------------------------------------------------------------

def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frame (columns) with its first axis along `primary` and `secondary` in the first two axes' plane."""
    a = primary / np.linalg.norm(primary)
    b = secondary - a * (a @ secondary)
    b = b / np.linalg.norm(b)
    return np.stack([a, b, np.cross(a, b)], axis=1)


def _leg_length(rig: Rig, mapping: dict[str, int]) -> float:
    total = 0.0
    for side in ("left", "right"):
        hip, knee, ankle = (rig.rest_positions[mapping[f"{side}_{j}"]] for j in ("hip", "knee", "ankle"))
        total += np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee)
    return total / 2


def _check_map(rig_name: str, mapping: dict[str, int]) -> None:
    missing = [j for j in REQUIRED if j not in mapping]
    if missing:
        raise RetargetError(f"{rig_name} rig: no bone mapped for the SMPL joints {', '.join(missing)}")


_FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")


def _foot_gap(src: Rig, src_map: dict[str, int], dst_map: dict[str, int], scale: float) -> float:
    """How high the target's lowest foot joints stand above the floor, from the source: 0 when the target has toes
    (their heads rest on the floor), the source's ankle height (scaled) when it has only ankles. A toe-less BVH
    (CMU's) otherwise stood its ankles on the floor, the feet sunk into it by 3 cm at its size."""
    shared = [src_map[j] for j in _FEET if j in src_map and j in dst_map]
    every = [src_map[j] for j in _FEET if j in src_map]
    if not shared:
        return 0.0
    return (float(src.rest_positions[shared, 1].min()) - float(src.rest_positions[every, 1].min())) * scale


def _floor_lift(rig: Rig, mapping: dict[str, int], gap: float = 0.0) -> float:
    """How far to raise a rig whose rest pose stands below its floor (`rig.floor`), e.g. a BVH import with the hips
    at the origin: its lowest foot joint then dances `gap` above the floor. Rigs standing on or above it are left
    as built."""
    feet = [mapping[j] for j in _FEET if j in mapping]
    if not feet:
        return 0.0
    return max(0.0, rig.floor + gap - float(rig.rest_positions[feet, 1].min()))


def _stand_height(rig: Rig, mapping: dict[str, int], lift: float, gap: float = 0.0) -> float:
    """The height of the rig's lowest foot joint while the source stands: its rest pose's, when that pose stands
    (hips above the feet by at least half a leg), else `gap` above the floor. A BVH whose zero pose is not standing
    (Bandai Namco's offsets lie along x, feet 0.85 m up beside the hips) otherwise danced 0.85-0.91 m above it."""
    feet = [mapping[j] for j in _FEET if j in mapping]
    low = float(rig.rest_positions[feet, 1].min()) + lift
    hips = float(rig.rest_positions[mapping["pelvis"], 1]) + lift
    return low if hips - low >= 0.5 * _leg_length(rig, mapping) else rig.floor + gap


class Retargeter:
    """Transfers poses from a source rig to a destination rig through their SMPL bone maps."""

    def __init__(self, src: Rig, src_map: dict[str, int], dst: Rig, dst_map: dict[str, int], ik_feet: bool = True):
        _check_map("source", src_map)
        _check_map("target", dst_map)
        self.src, self.dst = src, dst
        self.joints = [j for j in smpl_skeleton().joint_names if j in src_map and j in dst_map]
        self.src_map, self.dst_map = src_map, dst_map
        self.src_bone = np.array([src_map[j] for j in self.joints])
        self.dst_bone = np.array([dst_map[j] for j in self.joints])
        self.scale = _leg_length(dst, dst_map) / _leg_length(src, src_map)
        self.t_src = self._calibrations(src, src_map)
        self.t_dst = self._calibrations(dst, dst_map)
        self.src_root = src_map["pelvis"]
        self.dst_root = dst_map["pelvis"]
        self.foot_gap = _foot_gap(src, src_map, dst_map, self.scale)
        self.dst_lift = _floor_lift(dst, dst_map, self.foot_gap)
        self.ik_feet = ik_feet

    def _calibrations(self, rig: Rig, mapping: dict[str, int]) -> np.ndarray:
        """T = C @ A for every joint shared by both maps, (M, 3, 3) (see the module docstring)."""
        sk, smpl = smpl_skeleton(), smpl_rig()
        smap = {n: i for i, n in enumerate(sk.joint_names)}
        shared = set(self.joints)
        correction: dict[str, np.ndarray] = {}
        single: list[tuple[str, np.ndarray, np.ndarray]] = []
        for joint in self.joints:
            aim = next((a for a in _AIM.get(joint, ()) if a in shared), None)
            if aim is None:
                continue
            d_rig = rig.rest_positions[mapping[aim]] - rig.rest_positions[mapping[joint]]
            d_smpl = smpl.rest_positions[smap[aim]] - smpl.rest_positions[smap[joint]]
            across = _ACROSS.get(joint)
            if across and all(a in shared for a in across):
                s_rig = rig.rest_positions[mapping[across[0]]] - rig.rest_positions[mapping[across[1]]]
                s_smpl = smpl.rest_positions[smap[across[0]]] - smpl.rest_positions[smap[across[1]]]
                correction[joint] = _frame(d_smpl, s_smpl) @ _frame(d_rig, s_rig).T
            else:
                single.append((joint, d_rig, d_smpl))
        if single:  # one batched call for all aim-only joints
            turns = rot.rotation_between(np.stack([d for _, d, _ in single]), np.stack([d for _, _, d in single]))
            correction.update({j: r for (j, _, _), r in zip(single, turns)})
        out = []
        for joint in self.joints:
            c = joint
            while c not in correction and sk.parents[sk.index(c)] >= 0:  # end joints reuse an ancestor's correction
                c = sk.joint_names[sk.parents[sk.index(c)]]
            out.append(correction.get(c, np.eye(3)) @ rig.rest_rotations[mapping[joint]])
        return np.stack(out)

    def transfer(self, src_global: np.ndarray, src_root: np.ndarray, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
        """Source world rotations (T, Bs, 3, 3) and root head positions (T, 3) at `fps` -> destination pose.

        Returns (basis, root_location): (T, Bd, 3, 3) each bone's rotation in its own rest frame (Blender's
        pose-bone rotation) and (T, 3) the destination root bone's location in its rest frame, parent at rest.
        """
        frames = src_global.shape[0]
        dst = self.dst
        rest = dst.rest_rotations
        n = len(dst.bone_names)
        world = np.empty((frames, n, 3, 3))
        # mapped bones take the source's world change on their calibrated frame, all at once
        world[:, self.dst_bone] = src_global[:, self.src_bone] @ np.swapaxes(self.t_src, -1, -2) @ self.t_dst
        mapped = np.zeros(n, dtype=bool)
        mapped[self.dst_bone] = True
        self._carry_unmapped(world, mapped)
        basis = self._basis(world, mapped)
        zero = np.zeros_like(src_root)
        carried = _fk_heads(self.src, src_global, self.src_root, zero)[:, self.src_root]  # where its parents put it
        src_heads = _fk_heads(self.src, src_global, self.src_root, src_root - carried)
        displacement = (src_root - self.src.rest_positions[self.src_root]) * self.scale
        displacement = displacement + np.array([0.0, self.dst_lift, 0.0])
        displacement[:, 1] += self._ground(src_heads, basis, displacement, rest)
        # Blender applies a bone's location in its rest frame: head = rest_head + rest @ location (parent at rest).
        root_location = displacement @ rest[self.dst_root]  # row-wise rest^T @ d
        if self.ik_feet:
            world = self._pin_feet(world, basis, displacement, src_global, src_heads, fps)
            self._carry_unmapped(world, mapped)  # a twist bone between thigh and shin turns with the thigh
            basis = self._basis(world, mapped)
        return basis, root_location

    def _carry_unmapped(self, world: np.ndarray, mapped: np.ndarray) -> None:
        """Unmapped bones (T, B, 3, 3 in `world`, in place) keep their rest pose relative to their parent."""
        rest = self.dst.rest_rotations
        for b in np.flatnonzero(~mapped):  # parents come first: a chain of unmapped bones follows in order
            p = self.dst.parents[b]
            world[:, b] = (world[:, p] @ rest[p].T if p >= 0 else np.eye(3)) @ rest[b]

    def _basis(self, world: np.ndarray, mapped: np.ndarray) -> np.ndarray:
        """Each bone's pose rotation in its rest frame from world rotations (T, B, 3, 3); unmapped bones identity.

        Blender composes pose bones as M_b = M_p rest_p^-1 rest_b basis_b, so basis_b = rest_b^T rest_p M_p^T M_b."""
        rest = self.dst.rest_rotations
        parents = np.array(self.dst.parents)
        has_parent = parents >= 0
        parent_world = np.broadcast_to(np.eye(3), world.shape).copy()
        parent_world[:, has_parent] = world[:, parents[has_parent]]
        parent_rest = np.broadcast_to(np.eye(3), rest.shape).copy()
        parent_rest[has_parent] = rest[parents[has_parent]]
        k = np.swapaxes(rest, -1, -2) @ parent_rest  # (B, 3, 3)
        basis = k @ np.swapaxes(parent_world, -1, -2) @ world
        basis[:, ~mapped] = np.eye(3)
        return basis

    def _pin_feet(self, world: np.ndarray, basis: np.ndarray, displacement: np.ndarray, src_global: np.ndarray,
                  src_heads: np.ndarray, fps: float) -> np.ndarray:
        """World rotations with the feet held through the source's contacts.

        With other thigh, shin or hip proportions, rotations alone slide a character's feet while the dancer
        stands (a studio hero skated at 0.46 m/s where the dancer's foot moved 0.27). Through each contact the
        ankle is held to move only as the source's does (scaled), and the correction eases out after it; two-bone
        IK on thigh and shin reaches it, turning neither by more than LIMB_BUDGET. Foot rotations stay, and so do
        heights but for a few mm (HEIGHT_GIVE)."""
        rest = self.dst.rest_rotations
        _, heads = rig_world_pose(self.dst, basis, self.dst_root, displacement @ rest[self.dst_root])
        index = {j: i for i, j in enumerate(self.joints)}
        legs = []
        for side in ("left", "right"):
            names = (f"{side}_hip", f"{side}_knee", f"{side}_ankle")
            if all(j in index for j in names):
                src_ankle = src_heads[:, self.src_map[names[2]]]
                fk = heads[:, self.dst_map[names[2]]]
                offset = _lock_offsets(fk[:, [0, 2]], src_ankle[:, [0, 2]] * self.scale,
                                       _source_planted(src_ankle, fps), fps)
                if offset.any():
                    legs.append((names, offset))
        world = world.copy()
        for names, offset in legs:
            hip, knee, ankle = (self.dst_map[j] for j in names)
            h, k, a = heads[:, hip], heads[:, knee], heads[:, ankle]
            # the knee bends the way it bends now; only a straight leg (no bend plane) bends forward: the thigh's
            # world change on +z, SMPL's knee direction in its T-pose
            forward = (src_global[:, self.src_map[names[0]]] @ self.t_src[index[names[0]]].T)[..., 2]
            give = HEIGHT_GIVE * self.scale
            goal = a.copy()
            goal[:, [0, 2]] += offset
            *_, turned = _leg_ik(h, k, a, goal, forward, give)
            # a correction that would turn the thigh or shin by more than LIMB_BUDGET is shortened to fit it: the
            # foot then slips a little rather than the leg leaving the dancer's line
            fit = np.ones(len(a))
            for _ in range(3):  # the turn grows about linearly with the correction: a few rounds settle it
                over = turned > LIMB_BUDGET
                if not over.any():
                    break
                fit[over] *= LIMB_BUDGET / turned[over]
                goal[:, [0, 2]] = a[:, [0, 2]] + offset * fit[:, None]
                *_, turned = _leg_ik(h, k, a, goal, forward, give)
            if (fit < 1.0).any():  # eased in and out over FIT_EASE: a budget met in one frame let the foot jump there
                fit = _ease_down(fit, max(1, int(round(FIT_EASE * fps))))
                goal[:, [0, 2]] = a[:, [0, 2]] + offset * fit[:, None]
            turn_thigh, turn_shin, _ = _leg_ik(h, k, a, goal, forward, give)
            world[:, hip] = turn_thigh @ world[:, hip]
            world[:, knee] = turn_shin @ turn_thigh @ world[:, knee]
        return world

    def _ground(self, src_heads: np.ndarray, basis: np.ndarray, displacement: np.ndarray,
                rest: np.ndarray) -> np.ndarray:
        """Per-frame height correction (T,) so the target's lowest foot joint rises above its standing height
        exactly as the source's does, scaled: with other leg and foot proportions, scaling the root alone leaves
        the feet floating or sinking by centimetres while the source stands."""
        feet = [j for j in _FEET if j in self.src_map and j in self.dst_map]
        if not feet:
            return np.zeros(len(src_heads))
        src_low = src_heads[:, [self.src_map[j] for j in feet], 1].min(axis=1)
        src_stand = self.src.rest_positions[[self.src_map[j] for j in feet], 1].min()
        root_location = displacement @ rest[self.dst_root]
        _, dst_heads = rig_world_pose(self.dst, basis, self.dst_root, root_location)
        dst_low = dst_heads[:, [self.dst_map[j] for j in feet], 1].min(axis=1)
        dst_stand = _stand_height(self.dst, self.dst_map, self.dst_lift, self.foot_gap)
        return dst_stand + (src_low - src_stand) * self.scale - dst_low


PLANT_HEIGHT = 0.05  # m (source units) above the ankle's lowest: lower counts as on the floor
PLANT_SPEED = 0.4  # m/s over the floor: slower counts as planted
EASE_OUT = 0.2  # s over which a contact's correction fades after the foot lifts
HEIGHT_GIVE = 0.005  # m (source units, scaled) an ankle may rise or sink to keep its leg's bend
LIMB_BUDGET = 4.0  # degrees a foot's hold may turn the thigh or shin away from the dancer's line
FIT_EASE = 0.1  # s over which a hold shortened to the budget eases in and out


def _ease_down(x: np.ndarray, w: int) -> np.ndarray:
    """`x` (T,) lowered to its minimum within +-w frames, then averaged over +-w: never above `x`, no steps."""
    padded = np.pad(x, w, mode="edge")
    low = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1).min(axis=1)
    return np.convolve(np.pad(low, w, mode="edge"), np.ones(2 * w + 1) / (2 * w + 1), mode="valid")


def _leg_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray, forward: np.ndarray,
            give: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-bone IK for a leg (heads (T, 3) each) to put the ankle at `goal`: the world turns of the thigh and of
    the shin after it (T, 3, 3), and the larger of the two bones' direction changes in degrees (T,).

    A near-straight leg made to reach a little shorter bends a lot (1 cm: 20 degrees at the knee), so the ankle may
    rise or sink by up to `give` where that lets the leg turn as a whole, its knee angle kept. The knee stays in
    its bend plane; a straight leg bends toward `forward`."""
    thigh, shin = np.linalg.norm(knee - hip, axis=-1), np.linalg.norm(ankle - knee, axis=-1)
    span = np.linalg.norm(ankle - hip, axis=-1)
    across = np.linalg.norm((goal - hip)[:, [0, 2]], axis=-1)
    below = np.sqrt(np.maximum(span ** 2 - across ** 2, 0.0))
    rigid = hip[:, 1] + np.where(ankle[:, 1] <= hip[:, 1], -below, below)
    goal = goal.copy()
    goal[:, 1] += np.where(across < span, np.clip(rigid - goal[:, 1], -give, give), 0.0)
    reach = goal - hip
    dist = np.linalg.norm(reach, axis=-1)
    dist_c = np.clip(dist, np.abs(thigh - shin) + 1e-6, (thigh + shin) * (1 - 1e-6))
    u = reach / np.maximum(dist, 1e-12)[:, None]
    pole = (knee - hip) + 1e-4 * thigh[:, None] * forward
    pole = pole - u * np.sum(pole * u, axis=-1, keepdims=True)
    v = pole / np.maximum(np.linalg.norm(pole, axis=-1, keepdims=True), 1e-12)
    cos = np.clip((thigh ** 2 + dist_c ** 2 - shin ** 2) / (2 * thigh * dist_c), -1.0, 1.0)
    new_knee = hip + thigh[:, None] * (cos[:, None] * u + np.sqrt(1 - cos ** 2)[:, None] * v)
    new_ankle = hip + u * dist_c[:, None]

    def angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c = np.sum(x * y, axis=-1) / np.maximum(np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1), 1e-12)
        return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))

    turn_thigh = rot.rotation_between(knee - hip, new_knee - hip)
    turn_shin = rot.rotation_between((turn_thigh @ (ankle - knee)[..., None])[..., 0], new_ankle - new_knee)
    turned = np.maximum(angle(knee - hip, new_knee - hip), angle(ankle - knee, new_ankle - new_knee))
    return turn_thigh, turn_shin, turned


def _source_planted(ankle: np.ndarray, fps: float) -> np.ndarray:
    """(T,) True where the source's ankle (T, 3) is near its lowest height in the clip (where the dancer stands on
    it: a dancer's ankle stands higher than a rest pose's) and slow over the floor."""
    stand = float(ankle[:, 1].min()) if len(ankle) else 0.0
    speed = np.zeros(len(ankle))
    if len(ankle) > 1:
        step = np.linalg.norm(np.diff(ankle[:, [0, 2]], axis=0), axis=-1) * fps
        speed[1:], speed[0] = step, step[0]
    return (ankle[:, 1] - stand < PLANT_HEIGHT) & (speed < PLANT_SPEED)


def _lock_offsets(fk: np.ndarray, source: np.ndarray, planted: np.ndarray, fps: float) -> np.ndarray:
    """(T, 2) floor-plane corrections for a character's ankle path `fk` so that through each contact it moves as
    the (scaled) `source` ankle does from where the contact began; after a contact the correction eases to zero
    over EASE_OUT seconds (a cosine, so the foot leaves without a jerk). Vectorised contact by contact."""
    out = np.zeros_like(fk)
    ease = max(1, int(round(EASE_OUT * fps)))
    flags = np.concatenate([[False], np.asarray(planted, dtype=bool), [False]])
    starts = np.flatnonzero(~flags[:-1] & flags[1:])
    stops = np.flatnonzero(flags[:-1] & ~flags[1:])  # one past each contact's last frame
    nxt = np.append(starts[1:], len(fk))
    for s, e, n in zip(starts, stops, nxt):
        before = out[s - 1] if s > 0 else np.zeros(fk.shape[1])  # a correction still easing is where it begins
        out[s:e] = (fk[s] + before) + (source[s:e] - source[s]) - fk[s:e]
        x = np.minimum(1.0, (np.arange(e, n) - e + 1) / ease)
        out[e:n] = out[e - 1] * (0.5 * (1.0 + np.cos(np.pi * x)))[:, None]
    return out


def _fk_heads(rig: Rig, world: np.ndarray, root: int, root_offset: np.ndarray) -> np.ndarray:
    """(T, B, 3) bone heads of a rig whose bones have world rotations (T, B, 3, 3): parentless bones at rest, each
    other head carried by its parent, and the root bone (with everything below it) moved by `root_offset` (T, 3)."""
    rest = rig.rest_rotations
    heads = np.broadcast_to(rig.rest_positions, (world.shape[0], *rig.rest_positions.shape)).copy()
    for b, p in enumerate(rig.parents):
        if p >= 0:
            offset = rest[p].T @ (rig.rest_positions[b] - rig.rest_positions[p])  # head offset in the parent's frame
            heads[:, b] = heads[:, p] + (world[:, p] @ offset[:, None])[..., 0]
        if b == root:
            heads[:, b] += root_offset
    return heads


# --- conveniences ---------------------------------------------------------------------------------------------------

def motion_to_rig(motion: Motion, rig: Rig, mapping: dict[str, int], ik_feet: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Retarget an SMPL Motion onto `rig`: (T, B, 3, 3) pose-bone rotations and (T, 3) root-bone location;
    `ik_feet` bends the legs so the ankles land where the dancer's do (see Retargeter._pin_feet)."""
    smpl = smpl_rig()
    smap = {n: i for i, n in enumerate(smpl.bone_names)}
    glob, pos = motion.forward()
    return Retargeter(smpl, smap, rig, mapping, ik_feet).transfer(glob, pos[:, 0], motion.fps)


def rig_world_pose(rig: Rig, basis: np.ndarray, root_bone: int, root_location: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of a rig posed with `basis` rotations and a root-bone location: world rotations, heads."""
    frames = basis.shape[0]
    rest = rig.rest_rotations
    world = np.empty((frames, len(rig.bone_names), 3, 3))
    for b, p in enumerate(rig.parents):
        world[:, b] = (rest[b] if p < 0 else world[:, p] @ rest[p].T @ rest[b]) @ basis[:, b]
    # Blender applies a bone's location in its rest frame: the root moves by rest @ location, turned with its parent
    moved = (world[:, root_bone] @ np.linalg.inv(basis[:, root_bone]) @ root_location[..., None])[..., 0]
    heads = _fk_heads(rig, world, root_bone, moved)
    return world, heads


def bvh_to_motion(clip: BvhClip, preset: RetargetPreset | None = None, fps: float | None = None) -> Motion:
    """Retarget a BVH clip of any skeleton onto SMPL (preset by name match when not given), on the floor."""
    src = Rig.from_bvh(clip)
    if preset is None:
        preset, src_map = guess_preset(clip.joint_names)
    else:
        src_map = preset.resolve(clip.joint_names)
    smpl = smpl_rig()
    smap = {n: i for i, n in enumerate(smpl.bone_names)}
    glob, pos = clip.global_transforms()
    # no foot IK here: the unpaired training data was made without it, and the weights learnt from that data
    basis, root = Retargeter(src, src_map, smpl, smap, ik_feet=False).transfer(glob, pos[:, src_map["pelvis"]],
                                                                               clip.fps)
    trans = smpl.rest_positions[0] + root
    motion = Motion.from_matrices(basis, trans, fps=clip.fps)
    motion = place_on_floor(motion)
    return motion if fps is None else motion.resample(fps)


def place_on_floor(motion: Motion) -> Motion:
    """Shift the motion vertically so its lowest foot joint over the whole clip touches y = 0."""
    sk = motion.skeleton()
    feet = [sk.index(n) for n in sk.foot_joints]
    lowest = float(motion.joint_positions()[:, feet, 1].min())
    trans = motion.root_translation.astype(np.float64) - np.array([0.0, lowest, 0.0])
    return Motion(motion.rotations, trans, fps=motion.fps, joint_names=motion.joint_names, betas=motion.betas,
                  contacts=motion.contacts)

