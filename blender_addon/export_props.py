"""The Export box's settings (Scene.mace_dance_export): engine preset, which take, root motion, and the game-ready
options Generate sends (in place, loop)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, PointerProperty

from bridge.request import spec_of

from .core.export_presets import PRESETS

PLAYING, ALL = "PLAYING", "ALL"
_take_items: list[tuple[str, str, str]] = []  # Blender reads dynamic enum strings after the callback returns: keep them


def take_items(self, context) -> list[tuple[str, str, str]]:
    """The active armature's takes to choose from: the action it plays, each take, or all takes one file each."""
    from .takes import take_actions

    obj = getattr(context, "active_object", None) if context is not None else None
    takes = take_actions(obj) if obj is not None and obj.type == "ARMATURE" else []
    _take_items[:] = [(PLAYING, "Playing action", "The action the armature plays now")]
    _take_items.extend((str(n), track.name, f"Take {n} only ({action.name})") for n, action, track in takes)
    if takes:
        _take_items.append((ALL, "All takes", "Every take, one file each, named after the take"))
    return _take_items


class ExportSettings(bpy.types.PropertyGroup):
    """What the animator picks in the Export box."""

    engine: EnumProperty(name="Engine", default="BLENDER", description="Axes, scale and bone options for the engine",
                         items=[(p.key, p.label, p.description) for p in PRESETS.values()])
    take: EnumProperty(name="Take", items=take_items, description="Which action goes into the file")
    root_motion: BoolProperty(name="Root motion", default=False,
                              description="Key an in-place dance's travel on a root bone at the floor (for engines' "
                                          "root motion); the body dances on the spot above it")
    simplify: FloatProperty(name="Simplify keys", default=0.0, min=0.0, max=100.0,
                            description="FBX key reduction (0 keeps every key)")
    in_place: BoolProperty(name="In place", default=False,
                           description="Generate: " + spec_of("in_place").help + " (Export's Root motion keys it)")
    loop: FloatProperty(name="Loop blend (s)", default=0.0, min=0.0, max=spec_of("loop").high,
                        description="Generate: a seamless loop, blending this many seconds across the seam "
                                    "(0: no loop; at most half the dance)")


def generate_options(scene: bpy.types.Scene) -> dict:
    """The game-ready DanceRequest fields Generate sends (bridge.request in_place, loop)."""
    e = scene.mace_dance_export
    return {"in_place": bool(e.in_place), "loop": float(e.loop)}


def register() -> None:
    bpy.utils.register_class(ExportSettings)
    bpy.types.Scene.mace_dance_export = PointerProperty(type=ExportSettings)


def unregister() -> None:
    del bpy.types.Scene.mace_dance_export
    bpy.utils.unregister_class(ExportSettings)
