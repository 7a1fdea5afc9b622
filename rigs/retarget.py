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
below its floor (a BVH import with the hips at the origin) is raised so its feet dance on the floor.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
import numpy as np

from rigs import rotations as rot
from rigs.bvh import BvhClip
from rigs.motion import Motion
from rigs.skeleton import RIGS_DIR, Skeleton, smpl_skeleton

PRESETS_DIR = RIGS_DIR / "presets"

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


class RetargetError(ValueError):
    """A rig or bone map cannot be used for retargeting; the message says which bones are missing."""


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


# --- presets ------------------------------------------------------------------------------------------------------

def _bare(name: str) -> str:
    """A bone name without namespace or deform/control prefixes, lower case: 'mixamorig:LeftArm' -> 'leftarm'."""
    name = name.rsplit(":", 1)[-1].rsplit("|", 1)[-1]
    name = re.sub(r"^(DEF|ORG|MCH)[-_.]", "", name)
    return name.lower()


@dataclass(frozen=True)
class RetargetPreset:
    """A bone-name map from SMPL joints to a family of rigs, loaded from rigs/presets/<name>.toml."""

    name: str
    description: str
    bones: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str) -> "RetargetPreset":
        """Load a preset by name (see `list_presets`)."""
        path = PRESETS_DIR / f"{name}.toml"
        if not path.is_file():
            raise RetargetError(f"no retarget preset {name!r}; available: {', '.join(list_presets())}")
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        bones = dict(data["bones"])
        unknown = set(bones) - set(smpl_skeleton().joint_names)
        if unknown:
            raise RetargetError(f"preset {name!r} maps unknown SMPL joints {sorted(unknown)}")
        return cls(data.get("name", name), data.get("description", ""), bones)

    def resolve(self, bone_names: tuple[str, ...] | list[str]) -> dict[str, int]:
        """SMPL joint -> index into `bone_names`, matching exact names first, then names without prefixes."""
        exact = {n: i for i, n in enumerate(bone_names)}
        bare: dict[str, int] = {}
        for i, n in enumerate(bone_names):
            bare.setdefault(_bare(n), i)
        out = {}
        for joint, bone in self.bones.items():
            if bone in exact:
                out[joint] = exact[bone]
            elif _bare(bone) in bare:
                out[joint] = bare[_bare(bone)]
        return out


def list_presets() -> list[str]:
    """Names of the shipped retarget presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


_REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def guess_preset(bone_names: tuple[str, ...] | list[str]) -> tuple[RetargetPreset, dict[str, int]]:
    """The preset that maps the most SMPL joints onto these bone names, with its resolved map."""
    best = None
    for name in list_presets():
        preset = RetargetPreset.load(name)
        mapping = preset.resolve(bone_names)
        if best is None or len(mapping) > len(best[1]):
            best = (preset, mapping)
    assert best is not None
    if not all(j in best[1] for j in _REQUIRED):
        raise RetargetError("no preset matches this rig's bone names (need at least the hips, knees and ankles)")
    return best


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
    missing = [j for j in _REQUIRED if j not in mapping]
    if missing:
        raise RetargetError(f"{rig_name} rig: no bone mapped for SMPL joints {missing}")


_FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")


def _floor_lift(rig: Rig, mapping: dict[str, int]) -> float:
    """How far to raise a rig whose rest pose stands below its floor (`rig.floor`), e.g. a BVH import with the hips
    at the origin: its lowest foot joint then dances on the floor. Rigs standing on or above it are left as built."""
    feet = [mapping[j] for j in _FEET if j in mapping]
    if not feet:
        return 0.0
    return max(0.0, rig.floor - float(rig.rest_positions[feet, 1].min()))


def _stand_height(rig: Rig, mapping: dict[str, int], lift: float) -> float:
    """The height of the rig's lowest foot joint while the source stands: its rest pose's, when that pose stands
    (hips above the feet by at least half a leg), else the floor. A BVH whose zero pose is not standing (Bandai
    Namco's offsets lie along x, feet 0.85 m up beside the hips) otherwise danced 0.85-0.91 m above the floor."""
    feet = [mapping[j] for j in _FEET if j in mapping]
    low = float(rig.rest_positions[feet, 1].min()) + lift
    hips = float(rig.rest_positions[mapping["pelvis"], 1]) + lift
    return low if hips - low >= 0.5 * _leg_length(rig, mapping) else rig.floor


class Retargeter:
    """Transfers poses from a source rig to a destination rig through their SMPL bone maps."""

    def __init__(self, src: Rig, src_map: dict[str, int], dst: Rig, dst_map: dict[str, int]):
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
        self.dst_lift = _floor_lift(dst, dst_map)

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

    def transfer(self, src_global: np.ndarray, src_root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source world rotations (T, Bs, 3, 3) and root head positions (T, 3) -> destination pose.

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
        for b in np.flatnonzero(~mapped):  # unmapped bones keep their rest pose relative to their parent
            p = dst.parents[b]
            parent = world[:, p] @ rest[p].T if p >= 0 else np.eye(3)
            world[:, b] = parent @ rest[b]
        # Blender composes pose bones as M_b = M_p rest_p^-1 rest_b basis_b, so basis_b = rest_b^T rest_p M_p^T M_b.
        parents = np.array(dst.parents)
        has_parent = parents >= 0
        parent_world = np.broadcast_to(np.eye(3), world.shape).copy()
        parent_world[:, has_parent] = world[:, parents[has_parent]]
        parent_rest = np.broadcast_to(np.eye(3), rest.shape).copy()
        parent_rest[has_parent] = rest[parents[has_parent]]
        k = np.swapaxes(rest, -1, -2) @ parent_rest  # (B, 3, 3)
        basis = k @ np.swapaxes(parent_world, -1, -2) @ world
        basis[:, ~mapped] = np.eye(3)
        displacement = (src_root - self.src.rest_positions[self.src_root]) * self.scale
        displacement = displacement + np.array([0.0, self.dst_lift, 0.0])
        displacement[:, 1] += self._ground(src_global, src_root, basis, displacement, rest)
        # Blender applies a bone's location in its rest frame: head = rest_head + rest @ location (parent at rest).
        root_location = displacement @ rest[self.dst_root]  # row-wise rest^T @ d
        return basis, root_location

    def _ground(self, src_global: np.ndarray, src_root: np.ndarray, basis: np.ndarray, displacement: np.ndarray,
                rest: np.ndarray) -> np.ndarray:
        """Per-frame height correction (T,) so the target's lowest foot joint rises above its standing height
        exactly as the source's does, scaled: with other leg and foot proportions, scaling the root alone leaves
        the feet floating or sinking by centimetres while the source stands."""
        feet = [j for j in _FEET if j in self.src_map and j in self.dst_map]
        if not feet:
            return np.zeros(len(src_root))
        zero = np.zeros_like(src_root)
        carried = _fk_heads(self.src, src_global, self.src_root, zero)[:, self.src_root]  # where its parents put it
        src_heads = _fk_heads(self.src, src_global, self.src_root, src_root - carried)
        src_low = src_heads[:, [self.src_map[j] for j in feet], 1].min(axis=1)
        src_stand = self.src.rest_positions[[self.src_map[j] for j in feet], 1].min()
        root_location = displacement @ rest[self.dst_root]
        _, dst_heads = rig_world_pose(self.dst, basis, self.dst_root, root_location)
        dst_low = dst_heads[:, [self.dst_map[j] for j in feet], 1].min(axis=1)
        dst_stand = _stand_height(self.dst, self.dst_map, self.dst_lift)
        return dst_stand + (src_low - src_stand) * self.scale - dst_low


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

def motion_to_rig(motion: Motion, rig: Rig, mapping: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Retarget an SMPL Motion onto `rig`: (T, B, 3, 3) pose-bone rotations and (T, 3) root-bone location."""
    smpl = smpl_rig()
    smap = {n: i for i, n in enumerate(smpl.bone_names)}
    glob, pos = motion.forward()
    return Retargeter(smpl, smap, rig, mapping).transfer(glob, pos[:, 0])


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
    basis, root = Retargeter(src, src_map, smpl, smap).transfer(glob, pos[:, src_map["pelvis"]])
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

