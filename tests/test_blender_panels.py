"""Every Dance-tab panel draws in every state a user meets, against Blender's own RNA: a property or operator name
that does not exist fails here (Blender itself only prints it and leaves a hole in the panel)."""

from __future__ import annotations

import pytest

from blender_fixtures import addon, bpy, build_armature, smooth_motion  # noqa: F401  (fixture)
from characters import MATRIX
from panel_recorder import Layout, draw_panel


def dance_panels() -> list:
    """The add-on's registered panels, parents first."""
    panels = [c for c in bpy.types.Panel.__subclasses__() if getattr(c, "bl_category", "") == "Dance"]
    return sorted(panels, key=lambda c: (bool(getattr(c, "bl_parent_id", "")), c.bl_idname))


def draw_all() -> dict[str, Layout]:
    return {cls.bl_idname: draw_panel(cls) for cls in dance_panels()}


def labels(layout: Layout, kind: str) -> list[str]:
    return [w[1] for w in layout.widgets() if w[0] == kind]


def test_panels_draw_in_every_state(addon):  # noqa: F811
    from blender_addon import results
    from rigs.retarget import place_on_floor

    drawn = draw_all()  # an empty scene, nothing selected
    assert {"DANCE_PT_main", "DANCE_PT_character", "DANCE_PT_export"} <= set(drawn)
    assert "Select the character's armature" in labels(drawn["DANCE_PT_character"], "label")
    assert "Generate Dance" in labels(drawn["DANCE_PT_main"], "button")

    smpl = results.apply_result(bpy.context, place_on_floor(smooth_motion(30, seed=1)))
    bpy.context.view_layer.objects.active = smpl
    draw_all()

    character = build_armature(MATRIX["mixamo_studio"])
    character.data.bones["mixamorig:LeftForeArm"].name = "Forearm_Twist_L"
    bpy.context.view_layer.objects.active = character
    assert bpy.ops.dance.bone_map_guess() == {"FINISHED"}
    drawn = draw_all()
    rows = [w for w in drawn["DANCE_PT_character"].widgets() if w[0] == "search"]
    assert len(rows) == 24 and ("search", "", "", False, None) in rows  # the left forearm's row waits for a bone
    assert "left_elbow" in labels(drawn["DANCE_PT_character"], "label")
    next(r for r in character.mace_dance_bone_map if r.joint == "left_wrist").bone = "Gone"
    drawn = draw_all()
    assert any(w[0] == "search" and w[2] == "Gone" and w[3] for w in drawn["DANCE_PT_character"].widgets())  # red
    assert "Export FBX" in labels(drawn["DANCE_PT_export"], "button")

    s = bpy.context.scene.mace_dance
    s.status, s.failed = "The song x.mp3 does not exist; choose it again in the panel's Song.", True
    assert any(w[0] == "label" and w[2] and "x.mp3" in w[1] for w in draw_all()["DANCE_PT_main"].widgets())


def test_a_missing_property_fails_the_recorder(addon):  # noqa: F811
    layout = Layout()
    with pytest.raises(AttributeError, match="no property 'no_such_setting'"):
        layout.prop(bpy.context.scene.mace_dance, "no_such_setting")
    with pytest.raises((AttributeError, KeyError, RuntimeError)):
        layout.operator("dance.no_such_operator")
