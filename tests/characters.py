"""Characters built in code for the retarget matrix: studio proportions, rest poses, bone axes, names and units.

Real characters differ from SMPL in more than size: longer thighs than shins, wider hips, an A-pose, bone axes of
their own, a root bone at the floor above the pelvis (UE5), centimetre units. A retarget that only scales SMPL
uniformly passes on an SMPL-shaped rig and still skates on these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rigs import rotations as rot
from rigs.retarget import RetargetPreset, Rig
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()

# A studio character's segment lengths over SMPL's (a Mixamo-like hero: long legs, wide shoulders).
STUDIO = {"hip": 1.25, "knee": 1.14, "ankle": 1.0, "foot": 1.15, "spine1": 1.1, "spine2": 1.15, "spine3": 1.1,
          "neck": 1.2, "collar": 1.15, "shoulder": 1.1, "elbow": 0.95, "wrist": 1.05}


@dataclass(frozen=True)
class Build:
    """How to build one character: names from a preset, proportions, rest pose, size and bone axes."""

    preset: str
    proportions: dict[str, float] = field(default_factory=dict)  # segment (joint name without side) -> factor
    scale: float = 1.0  # overall size (100: a rig in centimetres)
    arm_drop: float = 0.0  # radians the arms hang below the T-pose (A-pose: ~0.7)
    root_bone: str = ""  # a bone at the floor above the pelvis (UE5's "root")
    thigh_twist: bool = False  # an unmapped twist bone between each thigh and its shin (Daz, game rigs)
    prefix: str = ""
    seed: int = 0


def _segment(name: str) -> str:
    return name.split("_", 1)[1] if name.startswith(("left_", "right_")) else name


def descendants(root: int) -> list[int]:
    """SMPL joints below `root`."""
    out = []
    for j in range(SK.num_joints):
        p = SK.parents[j]
        while p >= 0:
            if p == root:
                out.append(j)
                break
            p = SK.parents[p]
    return out


def rest_heads(build: Build) -> np.ndarray:
    """(24, 3) rest joint positions of the character, y up, lowest joint on the floor."""
    pos = np.zeros((SK.num_joints, 3))
    for j, name in enumerate(SK.joint_names):
        p = SK.parents[j]
        if p >= 0:
            pos[j] = pos[p] + SK.offsets[j] * build.proportions.get(_segment(name), 1.0)
    for shoulder, sign in (("left_shoulder", -1), ("right_shoulder", 1)):
        s = SK.index(shoulder)
        turn = rot.axis_angle_to_matrix(np.array([0.0, 0.0, sign * build.arm_drop]))
        for j in descendants(s):
            pos[j] = pos[s] + turn @ (pos[j] - pos[s])
    pos *= build.scale
    return pos - np.array([0.0, pos[:, 1].min(), 0.0])


def character(build: Build) -> tuple[Rig, dict[str, int]]:
    """The character as a retarget Rig (y up, its own units) and its preset's resolved bone map."""
    rng = np.random.default_rng(build.seed)
    preset = RetargetPreset.load(build.preset)
    heads = rest_heads(build)
    names = [build.prefix + preset.bones.get(n, f"extra_{n}") for n in SK.joint_names]
    parents = list(SK.parents)
    frames = rot.axis_angle_to_matrix(rng.normal(size=(SK.num_joints, 3)))
    if build.root_bone:  # a root at the floor under the pelvis, every other bone one index later
        names = [build.root_bone] + names
        parents = [-1] + [p + 1 for p in parents]
        heads = np.concatenate([[[heads[0, 0], 0.0, heads[0, 2]]], heads])
        frames = np.concatenate([np.eye(3)[None], frames])
    if build.thigh_twist:  # halfway down each thigh, its own axes; the shin hangs from it
        for side in ("left", "right"):
            hip, knee = (names.index(build.prefix + preset.bones[f"{side}_{j}"]) for j in ("hip", "knee"))
            names.append(f"{side}_thigh_twist")
            parents.append(hip)
            heads = np.concatenate([heads, [(heads[hip] + heads[knee]) / 2]])
            frames = np.concatenate([frames, rot.axis_angle_to_matrix(rng.normal(size=(1, 3)))])
            parents[knee] = len(names) - 1
        order = _parents_first(parents)
        names, heads, frames = [names[i] for i in order], heads[order], frames[order]
        where = {old: new for new, old in enumerate(order)}
        parents = [where[parents[i]] if parents[i] >= 0 else -1 for i in order]
    rig = Rig(tuple(names), tuple(parents), frames, heads)
    return rig, preset.resolve(rig.bone_names)


def _parents_first(parents: list[int]) -> list[int]:
    """An order of the bones in which every parent comes before its children."""
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < len(parents):
        for b, p in enumerate(parents):
            if b not in placed and (p < 0 or p in placed):
                order.append(b)
                placed.add(b)
    return order


MATRIX: dict[str, Build] = {
    "smpl_shaped": Build("mixamo", prefix="mixamorig:"),
    "mixamo_studio": Build("mixamo", STUDIO, arm_drop=0.7, prefix="mixamorig:", seed=1),
    "ue5_mannequin": Build("ue5_mannequin", {**STUDIO, "hip": 1.1, "knee": 1.2}, arm_drop=0.8, root_bone="root",
                           seed=2),
    "rigify": Build("rigify", {"spine1": 1.3, "spine2": 0.9, "shoulder": 1.05}, seed=3),
    "a_pose": Build("mixamo", {"hip": 0.95, "knee": 1.05}, arm_drop=0.75, seed=4),
    "centimetres": Build("mixamo", STUDIO, scale=100.0, arm_drop=0.6, seed=5),
    "thigh_twist_bones": Build("mixamo", STUDIO, arm_drop=0.7, prefix="mixamorig:", thigh_twist=True, seed=6),
}
