"""Control rigs (Rigify): which control bones an animator keys, and where each must be for a dance.

A generated Rigify rig deforms through DEF- bones that follow ORG- bones, which follow the controls (FK chains,
torso, hips, chest, neck, head) through MCH- helper bones and constraints. The dance is first retargeted onto the
ORG- bones as if they were a plain hierarchy; each control then takes its ORG- bone's change from rest:
control(t) = ORG(t) @ ORG_rest^-1 @ control_rest (4x4, armature space). Blender turns those matrices into the
controls' own channels (visual keying), whatever helper bones sit between them.
"""

from __future__ import annotations

import numpy as np

from rigs.motion import Motion
from rigs.retarget import RetargetPreset, motion_to_rig, rig_world_pose

from .armature import Y_UP_TO_Z_UP, rig_from_rest

# control bone -> the ORG bone it drives (Rigify's human metarig, generated with FK limbs)
RIGIFY_CONTROLS: dict[str, str] = {
    "torso": "ORG-spine", "hips": "ORG-spine", "chest": "ORG-spine.003",
    "spine_fk": "ORG-spine", "spine_fk.001": "ORG-spine.001", "spine_fk.002": "ORG-spine.002",
    "spine_fk.003": "ORG-spine.003", "neck": "ORG-spine.004", "head": "ORG-spine.006",
}
for _s in ("L", "R"):
    RIGIFY_CONTROLS.update({
        f"shoulder.{_s}": f"ORG-shoulder.{_s}", f"upper_arm_fk.{_s}": f"ORG-upper_arm.{_s}",
        f"forearm_fk.{_s}": f"ORG-forearm.{_s}", f"hand_fk.{_s}": f"ORG-hand.{_s}",
        f"thigh_fk.{_s}": f"ORG-thigh.{_s}", f"shin_fk.{_s}": f"ORG-shin.{_s}", f"foot_fk.{_s}": f"ORG-foot.{_s}",
        f"toe_fk.{_s}": f"ORG-toe.{_s}",
    })
# limb switches Rigify keeps as custom properties on these bones: 1.0 = FK, which the keyed controls drive
RIGIFY_FK_SWITCHES = tuple(f"{limb}_parent.{s}" for limb in ("upper_arm", "thigh") for s in ("L", "R"))


def org_parents(names: list[str], ancestors: list[str | None], heads: np.ndarray, tails: np.ndarray,
                tol: float = 1e-4) -> tuple[list[str], list[int]]:
    """The ORG- bones' logical hierarchy, parents first: (names in that order, parent index or -1).

    A generated rig re-parents its ORG- bones to controls and helpers. Most still have an ORG- ancestor up their
    parent chain (`ancestors`: the nearest one, or None), but the spine's are parented to its FK and tweak controls,
    which hang from the root: read as roots, the chest, neck, head and arms stayed at their rest place while the hips
    travelled. The metarig's chains stay connected in the ORG- bones' rest pose, so a bone without an ORG- ancestor
    takes the ORG- bone whose tail lies at its head (within `tol` of the rig's size), and stays a root without one.
    """
    heads, tails = np.asarray(heads, float), np.asarray(tails, float)
    size = max(float(np.ptp(np.concatenate([heads, tails]), axis=0).max()), 1e-9)
    index = {n: i for i, n in enumerate(names)}
    parent = []
    for i, up in enumerate(ancestors):
        if up is not None and up in index:
            parent.append(index[up])
            continue
        gap = np.linalg.norm(tails - heads[i], axis=1)
        gap[i] = np.inf
        j = int(np.argmin(gap))
        parent.append(j if gap[j] <= tol * size else -1)
    order, placed = [], set()

    def place(i: int, seen: frozenset = frozenset()) -> None:
        if i in placed:
            return
        if parent[i] >= 0 and parent[i] not in seen:  # a loop of tails and heads cannot hang a bone from itself
            place(parent[i], seen | {i})
        placed.add(i)
        order.append(i)

    for i in range(len(names)):
        place(i)
    new = {old: k for k, old in enumerate(order)}
    return [names[i] for i in order], [new[parent[i]] if parent[i] >= 0 and parent[i] in new and new[parent[i]] < new[i]
                                       else -1 for i in order]


def is_rigify(bone_names: list[str] | tuple[str, ...]) -> bool:
    """Whether an armature is a generated Rigify human (its controls and ORG- bones are there)."""
    names = set(bone_names)
    return all(c in names and o in names for c, o in RIGIFY_CONTROLS.items())


def org_targets(names: list[str], parents: list[int], rest: np.ndarray, motion: Motion) -> dict[str, np.ndarray]:
    """The dance on a rig's ORG- bones: bone name -> (T, 4, 4) armature-space matrices.

    `names`, `parents`, `rest` describe the ORG- bones only (parent: the nearest ORG- ancestor, -1 for none;
    rest: their `matrix_local`), in an order where parents come first.
    """
    rig = rig_from_rest(list(names), list(parents), rest)
    mapping = RetargetPreset.load("rigify").resolve(rig.bone_names)
    basis, root_loc = motion_to_rig(motion, rig, mapping)
    world, heads = rig_world_pose(rig, basis, mapping["pelvis"], root_loc)
    c = Y_UP_TO_Z_UP
    out = np.tile(np.eye(4), (motion.num_frames, len(names), 1, 1))
    out[:, :, :3, :3] = c @ world  # back to Blender's z-up armature space
    out[:, :, :3, 3] = heads @ c.T
    return {n: out[:, i] for i, n in enumerate(names)}


def control_targets(org: dict[str, np.ndarray], org_rest: dict[str, np.ndarray],
                    control_rest: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each control's (T, 4, 4) armature-space matrices: its ORG- bone's change from rest, applied to its own rest."""
    out = {}
    for control, bone in RIGIFY_CONTROLS.items():
        if control in control_rest:
            out[control] = org[bone] @ np.linalg.inv(org_rest[bone]) @ control_rest[control]
    return out
