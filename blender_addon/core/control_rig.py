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
