"""Game-engine presets for the FBX export, and the pure arithmetic of a game-ready export (no bpy: tested anywhere).

Each preset is the set of Blender FBX exporter arguments the engine's own tooling or documentation uses for Blender
files; the exporter writes the axis and unit conventions into the file, so Blender's importer (defaults) reads every
preset back to the same joint positions (tests/test_blender_export.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .armature import Y_UP_TO_Z_UP


@dataclass(frozen=True)
class EnginePreset:
    """The exporter arguments for one engine (bpy.ops.export_scene.fbx names), with where they come from."""

    key: str
    label: str
    description: str
    axis_forward: str
    axis_up: str
    global_scale: float
    apply_unit_scale: bool
    apply_scale_options: str
    add_leaf_bones: bool
    primary_bone_axis: str
    secondary_bone_axis: str
    armature_nodetype: str
    # the scene's unit scale while exporting, the rig (an export copy) scaled by its inverse: Unreal reads the file's
    # numbers as centimetres and wants the armature node at scale 1, so Epic's exporter sets 0.01 and scales the rig
    # by 100 ("Automatically scale bones"); 1.0 exports the scene as it is
    unit_scale: float = 1.0
    # the armature object's node name in the file when a root bone is added ("": the object's own name); Unreal's
    # importer drops a node named "Armature", so the root bone, not the object, leads its skeleton (root motion)
    root_node_name: str = ""
    source: str = ""

    @property
    def rig_scale(self) -> float:
        """How much the export copy's bones and location keys grow (1.0: no copy needed for scale)."""
        return 1.0 / self.unit_scale

    def fbx_options(self) -> dict[str, object]:
        """The preset as keyword arguments of bpy.ops.export_scene.fbx."""
        return {"axis_forward": self.axis_forward, "axis_up": self.axis_up, "global_scale": self.global_scale,
                "apply_unit_scale": self.apply_unit_scale, "apply_scale_options": self.apply_scale_options,
                "add_leaf_bones": self.add_leaf_bones, "primary_bone_axis": self.primary_bone_axis,
                "secondary_bone_axis": self.secondary_bone_axis, "armature_nodetype": self.armature_nodetype}


PRESETS: dict[str, EnginePreset] = {p.key: p for p in (
    # what the add-on always wrote: the exporter's defaults (-Z forward, Y up, metres at FBX's centimetre scale on the
    # armature node), leaf bones off so a re-import has no '_end' bones
    EnginePreset("BLENDER", "Blender", "Blender's exporter defaults, leaf bones off (what Export FBX always wrote)",
                 axis_forward="-Z", axis_up="Y", global_scale=1.0, apply_unit_scale=True,
                 apply_scale_options="FBX_SCALE_NONE", add_leaf_bones=False, primary_bone_axis="Y",
                 secondary_bone_axis="X", armature_nodetype="NULL", source="Blender's FBX exporter defaults"),
    # Epic's own Blender add-on, Send to Unreal (EpicGamesExt/BlenderTools, send2ue/resources/setting_templates/
    # default.json): Y forward / Z up (Unreal is z up, no axis change), scale 1 with unit scale applied and
    # FBX_SCALE_NONE, no leaf bones, Y/X bone axes, armature as a Null, and its "Automatically scale bones" (scene
    # unit scale 0.01, rig scaled 100x) so the armature arrives at scale 1 in centimetres
    EnginePreset("UNREAL", "Unreal", "Z up, centimetres, armature at scale 1, no leaf bones (Epic's Send to Unreal)",
                 axis_forward="Y", axis_up="Z", global_scale=1.0, apply_unit_scale=True,
                 apply_scale_options="FBX_SCALE_NONE", add_leaf_bones=False, primary_bone_axis="Y",
                 secondary_bone_axis="X", armature_nodetype="NULL", unit_scale=0.01, root_node_name="Armature",
                 source="EpicGamesExt/BlenderTools send2ue default.json"),
    # Unity's own .blend importer (Editor/Data/Tools/Unity-BlenderToFBX.py) exports with apply_scale_options
    # FBX_SCALE_ALL and the default -Z forward / Y up, which its ModelImporter converts (bakeAxisConversion: Unity
    # is y up, z forward); leaf bones off: the Humanoid avatar has no use for the '_end' bones
    EnginePreset("UNITY", "Unity", "Y up, -Z forward, all scalings as FBX units (Unity's own Blender importer)",
                 axis_forward="-Z", axis_up="Y", global_scale=1.0, apply_unit_scale=True,
                 apply_scale_options="FBX_SCALE_ALL", add_leaf_bones=False, primary_bone_axis="Y",
                 secondary_bone_axis="X", armature_nodetype="NULL", source="Unity-BlenderToFBX.py, Unity manual "
                                                                            "ModelImporter.bakeAxisConversion"),
    # Godot's FBX importer (ufbx) docs, modules/fbx/doc_classes/FBXDocument.xml: "When exporting FBX from Blender, use
    # the 'FBX Units Scale' option"; ufbx converts the file's axes to Godot's y up, so the exporter's -Z / Y stay
    EnginePreset("GODOT", "Godot", "Y up, -Z forward, FBX Units Scale (Godot's FBX import docs)",
                 axis_forward="-Z", axis_up="Y", global_scale=1.0, apply_unit_scale=True,
                 apply_scale_options="FBX_SCALE_UNITS", add_leaf_bones=False, primary_bone_axis="Y",
                 secondary_bone_axis="X", armature_nodetype="NULL", source="godotengine/godot FBXDocument.xml"),
)}

ROOT_BONE = "root"  # the bone that carries the travel for engines' root motion (Unreal's and Mixamo-to-UE name)


def preset(key: str) -> EnginePreset:
    """The preset called `key` (ValueError naming the choices otherwise)."""
    try:
        return PRESETS[key.upper()]
    except KeyError:
        raise ValueError(f"unknown engine preset '{key}'; choose one of {', '.join(PRESETS)}") from None


def take_file_path(path: str, take_name: str, ext: str = ".fbx") -> str:
    """Where batch export writes one take: beside `path`, named `<stem>_<take>` (characters files refuse dropped)."""
    p = Path(path)
    clean = re.sub(r"[^\w.-]+", "_", take_name).strip("._") or "take"
    return str(p.with_name(f"{p.stem}_{clean}{ext}"))


def travel_keys(root_motion: np.ndarray, motion_fps: float, start_frame: int, scene_fps: float,
                frames: np.ndarray) -> np.ndarray:
    """The in-place dance's travel (the Motion's `root_motion`, y up) at scene `frames`, in Blender's z-up axes: the
    root bone's location keys (its rest frame is the armature's)."""
    rm = np.asarray(root_motion, dtype=np.float64).reshape(-1, 3)
    t = (np.asarray(frames, dtype=np.float64) - start_frame) * motion_fps / scene_fps
    src = np.arange(len(rm), dtype=np.float64)
    travel = np.stack([np.interp(t, src, rm[:, k]) for k in range(3)], axis=1)  # held at both ends
    return travel @ Y_UP_TO_Z_UP.T


def split_travel(loc: np.ndarray, rest: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A top bone's location keys ((N, 3), in its rest frame `rest`, 3x3 in armature space) split into the travel
    over the floor (armature space, 0 at the first key: the root bone's keys) and the keys that dance on the spot
    above it; `up` is the world's up in armature space (an imported character's armature may be y up)."""
    loc = np.asarray(loc, dtype=np.float64)
    rest = np.asarray(rest, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    delta = (loc - loc[:1]) @ rest.T  # the bone's move in armature space
    travel = delta - np.outer(delta @ up, up)  # its bounce stays with the body
    return travel, loc - travel @ rest  # rest^T @ travel, row by row
