"""The README's picture of the Dance tab's Character and Export panels, drawn from a real bpy session (run with the
main environment: .venv/bin/python scripts/panel_picture.py): a dance applied, a studio character whose left forearm
has a name of its own selected, its bone map filled from the guess (that row empty, waiting for the animator) and
the Export box with the Unreal preset. Background bpy has no window, so tests/panel_recorder.py records what each
panel's draw() asks of Blender's RNA and draws that."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "panel_character_export.png")
    args = parser.parse_args()

    import bpy

    import blender_addon
    from blender_addon import results
    from blender_fixtures import build_armature, smooth_motion
    from characters import MATRIX
    from panel_recorder import draw_panel, picture
    from rigs.retarget import place_on_floor

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    try:
        bpy.context.scene.render.fps = 30
        results.apply_result(bpy.context, place_on_floor(smooth_motion(60, seed=1)))
        character = build_armature(MATRIX["mixamo_studio"])
        character.data.bones["mixamorig:LeftForeArm"].name = "Forearm_Twist_L"
        bpy.context.view_layer.objects.active = character
        bpy.context.scene.mace_dance_bones.save_name = "our_studio"
        bpy.ops.dance.bone_map_guess()
        export = bpy.context.scene.mace_dance_export
        engine = export.bl_rna.properties.get("engine")
        if engine is not None:
            export.engine = next(i.identifier for i in engine.enum_items if "unreal" in i.identifier.lower())
        panels = {c.bl_idname: c for c in bpy.types.Panel.__subclasses__() if getattr(c, "bl_category", "") == "Dance"}
        shown = [("Character", draw_panel(panels["DANCE_PT_character"])),
                 ("Export", draw_panel(panels["DANCE_PT_export"]))]
        picture(shown, str(args.out))
        print(f"wrote {args.out}")
    finally:
        blender_addon.unregister()


if __name__ == "__main__":
    main()
