"""Game-ready export from the panel (issue 31, item 4): engine presets that re-import with Blender's defaults to the
same joints, the chosen take or all takes one file each, the in-place dance's travel on a root bone, and the
in-place / loop options reaching Generate's request. Runs in every supported Blender (scripts/test)."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the bpy wheel is not installed (scripts/test installs the 'blender' extra)")

from blender_addon import results, stored_dance, takes  # noqa: E402
from blender_addon.core.export_presets import PRESETS, ROOT_BONE  # noqa: E402
from blender_fixtures import (addon, build_mixamo_character, drive, smooth_motion, song, tiny_model,  # noqa: E402,F401
                              world_heads)
from rigs.skeleton import smpl_skeleton  # noqa: E402

SK = smpl_skeleton()
FRAMES = (0, 13, 29)


def heads(obj, frames=FRAMES):
    return {f: world_heads(obj, 1 + f) for f in frames}


def reimport(path):
    """The file in a fresh, empty scene through Blender's FBX importer with its defaults; the armature it made."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.fbx(filepath=str(path))
    return next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")


def fbx_units(path, armature: str) -> tuple[int, float, float]:
    """(up axis, unit scale factor, the armature node's scale) as written in the file (0 x, 1 y, 2 z)."""
    from io_scene_fbx import parse_fbx

    root, _version = parse_fbx.parse(str(path))

    def props(elem):
        p70 = next(e for e in elem.elems if e.id == b"Properties70")
        return {p.props[0]: p.props[4:] for p in p70.elems}

    settings = props(next(e for e in root.elems if e.id == b"GlobalSettings"))
    objects = next(e for e in root.elems if e.id == b"Objects")
    node = next(e for e in objects.elems if e.id == b"Model" and e.props[1].split(b"\x00")[0] == armature.encode())
    return settings[b"UpAxis"][0], settings[b"UnitScaleFactor"][0], props(node)[b"Lcl Scaling"][0]


# what each engine reads: Unreal z up in centimetres with the armature at scale 1 (Epic's Send to Unreal), Unity and
# Godot y up in metres (unit scale factor 100) at scale 1, Blender's defaults y up with the armature node scaled 100
UNITS = {"BLENDER": (1, 1.0, 100.0), "UNREAL": (2, 1.0, 1.0), "UNITY": (1, 100.0, 1.0), "GODOT": (1, 100.0, 1.0)}


def joint_error(obj, expected, frames=FRAMES):
    return max(max(np.abs(world_heads(obj, 1 + f)[n] - expected[f][n]).max() for n in SK.joint_names)
               for f in frames)


@pytest.mark.parametrize("engine", list(PRESETS))
def test_each_engine_preset_reimports_to_the_same_joints(addon, tmp_path, engine):
    """An FBX exported with each engine preset re-imports with the importer's defaults to the same joint positions
    (1 mm), where the object stands; Unreal's arrives in centimetres with the armature at scale 1."""
    obj = results.apply_result(bpy.context, smooth_motion(30, seed=4))
    obj.location = (1.5, -0.5, 0.0)
    obj.rotation_euler = (0.0, 0.0, 0.6)  # the character placed and turned in the scene
    before = heads(obj)
    e = bpy.context.scene.mace_dance_export
    e.engine = engine
    path = tmp_path / f"{engine}.fbx"
    assert bpy.ops.dance.export_game(filepath=str(path)) == {"FINISHED"}
    assert bpy.context.scene.unit_settings.scale_length == 1.0  # Unreal's centimetres only while exporting
    assert len(bpy.data.objects) == 2 and obj.name == "SMPL"  # no export copy left behind, the name given back
    up, unit, node_scale = fbx_units(path, "SMPL")
    assert (up, unit) == UNITS[engine][:2] and abs(node_scale - UNITS[engine][2]) < 1e-3, (up, unit, node_scale)
    imported = reimport(path)
    err = joint_error(imported, before)
    assert err < 1e-3, (engine, err)
    scale = 0.01 if engine == "UNREAL" else 1.0  # Unreal's file: 1 unit = 1 cm, the armature node at scale 1
    assert np.allclose(imported.scale, scale, rtol=1e-4), (engine, tuple(imported.scale))
    assert not any(b.name.endswith("_end") for b in imported.data.bones)  # no leaf bones
    assert len(bpy.data.actions) == 1


def test_the_chosen_take_and_all_takes_one_file_each(addon, tmp_path):
    """Export writes the take chosen in the panel (not the one playing), and All takes writes one file per take,
    named after it, each with that take's dance; the armature still plays what it played."""
    ctx = bpy.context
    settings = stored_dance.DanceSettings(seed=1)
    obj = results.apply_result(ctx, smooth_motion(30, seed=1))
    ctx.view_layer.objects.active = obj
    expected = {}
    for n in (1, 2, 3):
        takes.add_take(ctx, obj, n, smooth_motion(30, seed=10 + n), settings)
        expected[n] = heads(obj)
    playing = obj.animation_data.action
    assert takes.playing_take(obj) == 3
    e = ctx.scene.mace_dance_export
    e.take = "1"
    one = tmp_path / "single.fbx"
    assert bpy.ops.dance.export_game(filepath=str(one)) == {"FINISHED"}
    e.take = "ALL"
    assert bpy.ops.dance.export_game(filepath=str(tmp_path / "dance.fbx")) == {"FINISHED"}
    assert obj.animation_data.action == playing and all(t.mute for _, _, t in takes.take_actions(obj))
    files = sorted(p.name for p in tmp_path.glob("dance*.fbx"))
    assert files == ["dance_take_1.fbx", "dance_take_2.fbx", "dance_take_3.fbx"], files
    assert joint_error(reimport(one), expected[1]) < 1e-3
    for n in (1, 2, 3):
        imported = reimport(tmp_path / f"dance_take_{n}.fbx")
        assert joint_error(imported, expected[n]) < 1e-3, n
        assert len(bpy.data.actions) == 1  # that take only


def test_bvh_export_follows_the_chosen_take_too(addon, tmp_path):
    """Export BVH writes the take chosen in the panel (Blender's BVH exporter writes the playing one), and All takes
    one .bvh per take; BVH's y up reads back with the importer's defaults."""
    ctx = bpy.context
    obj = results.apply_result(ctx, smooth_motion(30, seed=1))
    ctx.view_layer.objects.active = obj
    expected = {}
    for n in (1, 2):
        takes.add_take(ctx, obj, n, smooth_motion(30, seed=20 + n), stored_dance.DanceSettings(seed=n))
        expected[n] = heads(obj)
    playing = obj.animation_data.action
    e = ctx.scene.mace_dance_export
    e.take = "1"
    assert bpy.ops.dance.export_game(filepath=str(tmp_path / "one.bvh"), format="BVH") == {"FINISHED"}
    e.take = "ALL"
    assert bpy.ops.dance.export_game(filepath=str(tmp_path / "dance.bvh"), format="BVH") == {"FINISHED"}
    assert obj.animation_data.action == playing
    assert sorted(p.name for p in tmp_path.glob("dance*")) == ["dance_take_1.bvh", "dance_take_2.bvh"]
    for name, n in (("one.bvh", 1), ("dance_take_2.bvh", 2)):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps = 30
        bpy.ops.import_anim.bvh(filepath=str(tmp_path / name))
        imported = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
        assert joint_error(imported, expected[n]) < 1e-3, name


def in_place(motion):
    from backend.motion.gameready import in_place as take_out

    return take_out(motion)


@pytest.mark.parametrize("engine", ["UNREAL", "GODOT"])
def test_root_motion_keys_the_travel_on_a_root_bone_at_the_floor(addon, tmp_path, engine):
    """An in-place dance exported with Root motion: a root bone on the floor under every other bone carries the
    travel, so the file re-imports to the dance as performed; Unreal's armature node is 'Armature' (its importer
    drops that node, leaving the root bone at the top of the skeleton)."""
    ctx = bpy.context
    full = smooth_motion(30, seed=6)  # travels about 0.2 m/s forward and sways sideways
    performed = heads(results.apply_result(ctx, full))
    ctx.view_layer.objects.active = None
    obj = results.apply_result(ctx, in_place(full))
    ctx.view_layer.objects.active = obj
    assert joint_error(obj, performed) > 0.1  # on the spot in Blender
    e = ctx.scene.mace_dance_export
    e.engine, e.root_motion = engine, True
    path = tmp_path / "root.fbx"
    assert bpy.ops.dance.export_game(filepath=str(path)) == {"FINISHED"}
    assert ROOT_BONE not in obj.data.bones  # the user's armature is left as it was
    name = obj.name
    imported = reimport(path)
    assert imported.name == ("Armature" if engine == "UNREAL" else name)
    assert imported.data.bones[ROOT_BONE].parent is None
    assert imported.data.bones["pelvis"].parent.name == ROOT_BONE
    assert joint_error(imported, performed) < 1e-3
    for f in FRAMES:  # the root stays on the floor
        assert abs(world_heads(imported, 1 + f)[ROOT_BONE][2]) < 1e-4


def test_root_motion_takes_the_travel_out_of_a_travelling_dance(addon, tmp_path):
    """A dance not made in place: Root motion takes the travel out of its keys at export, so the pelvis dances on the
    spot above a root bone that travels, and the file still re-imports to the dance as performed."""
    obj = results.apply_result(bpy.context, smooth_motion(30, seed=7))
    bpy.context.view_layer.objects.active = obj
    performed = heads(obj)
    e = bpy.context.scene.mace_dance_export
    e.engine, e.root_motion = "UNITY", True
    path = tmp_path / "travel.fbx"
    assert bpy.ops.dance.export_game(filepath=str(path)) == {"FINISHED"}
    imported = reimport(path)
    assert joint_error(imported, performed) < 1e-3
    rel = np.array([(lambda h: h["pelvis"] - h[ROOT_BONE])(world_heads(imported, 1 + f)) for f in range(30)])
    assert np.abs(rel[:, :2] - rel[0, :2]).max() < 1e-4  # over the floor the pelvis stays above the root
    assert np.ptp(rel[:, 2]) > 0.01  # and keeps its bounce
    root = np.array([world_heads(imported, 1 + f)[ROOT_BONE] for f in range(30)])
    assert np.linalg.norm(root[-1] - root[0]) > 0.1 and np.abs(root[:, 2]).max() < 1e-4  # travels, on the floor


def test_an_imported_y_up_character_exports_its_travel_on_the_root(addon, tmp_path):
    """A Mixamo character as Blender's FBX importer leaves it (y-up armature in centimetres, object turned 90 degrees
    and scaled 0.01), its hips keyed travelling: Unreal's preset with Root motion keeps its joints where they were and
    puts the travel over the floor, not the bounce, on the root."""
    obj, names = build_mixamo_character(as_imported=True)
    hips = obj.pose.bones["mixamorig:" + names["pelvis"]]
    arm = obj.pose.bones["mixamorig:" + names["left_shoulder"]]
    for f in range(30):  # 1.5 m across and 1 m forward over the floor, bobbing 5 cm, an arm swinging
        world = np.array([0.05 * f, -0.03 * f, 0.05 * np.sin(f / 3)])
        rest = np.array(obj.matrix_world)[:3, :3] @ np.array(hips.bone.matrix_local)[:3, :3]
        hips.location = np.linalg.solve(rest, world)
        hips.keyframe_insert("location", frame=1 + f)
        arm.rotation_quaternion = (np.cos(f / 20), np.sin(f / 20), 0.0, 0.0)
        arm.keyframe_insert("rotation_quaternion", frame=1 + f)
    before = heads(obj)
    e = bpy.context.scene.mace_dance_export
    e.engine, e.root_motion = "UNREAL", True
    path = tmp_path / "mixamo.fbx"
    assert bpy.ops.dance.export_game(filepath=str(path)) == {"FINISHED"}
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    bpy.ops.import_scene.fbx(filepath=str(path))
    imported = bpy.data.objects["Armature"]
    for f in FRAMES:
        got = world_heads(imported, 1 + f)
        # (the bounce was lost while the root bone pointed up at the hips: the importer connected them)
        assert max(np.abs(got[n] - before[f][n]).max() for n in before[f]) < 1e-3, f
        assert np.allclose(got[ROOT_BONE], [0.05 * f, -0.03 * f, 0.0], atol=1e-3), (f, got[ROOT_BONE])


def test_root_motion_refuses_a_rig_that_has_a_root_bone(addon, tmp_path):
    obj = results.apply_result(bpy.context, smooth_motion(20, seed=2))
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    obj.data.edit_bones.new(ROOT_BONE).tail = (0.0, 0.1, 0.0)
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.context.scene.mace_dance_export.root_motion = True
    with pytest.raises(RuntimeError, match="already has a bone called 'root'"):
        bpy.ops.dance.export_game(filepath=str(tmp_path / "x.fbx"))
    s = bpy.context.scene.mace_dance
    assert s.failed and "without Root motion" in s.status  # the panel's red box says what to do
    assert not (tmp_path / "x.fbx").exists() and len(bpy.data.objects) == 2  # nothing written, no copy left


def test_split_travel_keeps_the_bounce_with_the_body():
    """The travel over the floor goes to the root, the bounce stays on the bone, for a y-up armature too."""
    from blender_addon.core.export_presets import split_travel

    rng = np.random.default_rng(0)
    rest = np.linalg.qr(rng.normal(size=(3, 3)))[0]  # any rest orientation of the top bone
    up = np.array([0.0, 1.0, 0.0])  # an imported character's armature space: y up
    loc = rng.normal(size=(10, 3))
    travel, on_spot = split_travel(loc, rest, up)
    assert np.allclose(travel[0], 0.0) and np.allclose(travel @ up, 0.0)
    assert np.allclose(on_spot @ rest.T + travel, loc @ rest.T)  # together: the bone where it was
    moved = (on_spot - on_spot[:1]) @ rest.T
    assert np.allclose(moved - np.outer(moved @ up, up), 0.0)  # on the spot: only up and down


def test_in_place_and_loop_reach_generates_request(addon, song, monkeypatch):
    from blender_addon import jobs

    sent = {}
    monkeypatch.setattr(jobs, "start_job", lambda context, path, options, *a, **kw: sent.update(options))
    s, e = bpy.context.scene.mace_dance, bpy.context.scene.mace_dance_export
    s.audio_path = str(song)
    assert bpy.ops.dance.generate() == {"FINISHED"}
    assert "in_place" not in sent and "loop" not in sent  # off by default: the request's own defaults
    e.in_place, e.loop = True, 1.0
    assert bpy.ops.dance.generate() == {"FINISHED"}
    assert sent["in_place"] is True and sent["loop"] == 1.0
    assert bpy.types.DANCE_PT_export.bl_parent_id == "DANCE_PT_main"  # the Export box in the Dance tab


def test_an_in_place_loop_from_generate_exports_its_travel_on_the_root(addon, tiny_model, song, tmp_path,
                                                                         monkeypatch):
    """Generate with In place and a loop blend (through the local backend): the armature dances on the spot, the
    travel is kept with the stored dance, and Root motion puts exactly that travel on the exported root bone."""
    from blender_addon.core.armature import Y_UP_TO_Z_UP

    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    s, e = bpy.context.scene.mace_dance, bpy.context.scene.mace_dance_export
    s.audio_path, s.steps = str(song), 2
    e.in_place, e.loop = True, 2.0  # more than half the 3-s song: refused in one sentence in the panel
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    assert s.failed and "the loop blend (2 s) must be at most half the dance" in s.status, s.status
    e.loop = 1.0
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied"), s.status
    obj = bpy.data.objects["SMPL"]
    motion, _ = stored_dance.load(obj)
    assert motion.root_motion is not None and np.abs(motion.root_translation[:, [0, 2]]
                                                     - motion.root_translation[0, [0, 2]]).max() < 1e-6
    bpy.context.view_layer.objects.active = obj
    e.engine, e.root_motion = "UNREAL", True
    path = tmp_path / "in_place.fbx"
    assert bpy.ops.dance.export_game(filepath=str(path)) == {"FINISHED"}
    imported = reimport(path)
    frames = range(0, motion.num_frames, 10)
    root = np.array([world_heads(imported, 1 + f)[ROOT_BONE] for f in frames])
    expected = motion.root_motion[list(frames)] @ Y_UP_TO_Z_UP.T
    assert np.abs(expected).max() > 0.01, np.abs(expected).max()  # the tiny model's dance does travel
    assert np.abs(root - expected).max() < 1e-3


def test_edits_takes_and_comps_of_an_in_place_dance_stay_in_place(addon, song, monkeypatch):
    """An edit of a dance made in place regenerated frames that travelled again (nothing told the backend); its
    edits, takes and repeats keep in place, and whole-song takes keep the loop blend too."""
    from dataclasses import replace

    from blender_addon import jobs
    from blender_addon.launch import panel_settings

    sent = []
    monkeypatch.setattr(jobs, "start_job", lambda context, path, options, *a, **kw: sent.append(dict(options)))
    s, e = bpy.context.scene.mace_dance, bpy.context.scene.mace_dance_export
    s.audio_path = str(song)
    e.in_place, e.loop = True, 1.0
    settings = panel_settings(bpy.context)
    assert settings.in_place and settings.loop == 1.0
    m = smooth_motion(60, seed=2)
    obj = results.apply_result(bpy.context, m, settings=replace(settings, song=str(song)))
    assert stored_dance.load(obj)[1].in_place  # kept with the dance, through save and reopen like its other settings
    e.in_place, e.loop = False, 0.0  # the Export box changed since: the dance's own settings count
    bpy.context.view_layer.objects.active = obj
    s.edit_mode, s.edit_start, s.edit_end = "RANGE", 20, 40
    assert bpy.ops.dance.edit() == {"FINISHED"}
    assert sent[-1]["in_place"] is True and "loop" not in sent[-1]  # an edit keeps the frames that already loop
    s.takes_range = True
    assert bpy.ops.dance.takes() == {"FINISHED"}
    assert sent[-1]["in_place"] is True and "loop" not in sent[-1]
    s.takes_range, e.in_place, e.loop = False, True, 1.0  # whole-song takes are new dances, as Generate makes them
    assert bpy.ops.dance.takes() == {"FINISHED"}
    assert sent[-1]["in_place"] is True and sent[-1]["loop"] == 1.0


@pytest.mark.parametrize("engine", sorted(PRESETS))
def test_the_file_carries_the_rest_pose_not_the_frame_showing(addon, tmp_path, engine):
    """An armature exported without a mesh was written in the pose of the frame on screen: a re-import (or an engine
    building its skeleton from the file) got a frame of the dance as its rest pose, limbs 22 cm off. The scene keeps
    its frame, action and pose after the export."""
    obj = results.apply_result(bpy.context, smooth_motion(40, seed=3))
    rest = {b.name: np.array(b.head_local) for b in obj.data.bones}
    bpy.context.scene.frame_set(25)
    shown = {pb.name: np.array(pb.head) for pb in obj.pose.bones}
    action = obj.animation_data.action
    e = bpy.context.scene.mace_dance_export
    e.engine = engine
    path = tmp_path / "rest.fbx"
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.dance.export_game(filepath=str(path)) == {"FINISHED"}
    assert bpy.context.scene.frame_current == 25 and obj.animation_data.action == action
    assert max(np.abs(np.array(pb.head) - shown[pb.name]).max() for pb in obj.pose.bones) < 1e-6
    imported = reimport(path)
    mw = np.array(imported.matrix_world)
    heads = {b.name: (mw @ np.append(b.head_local, 1.0))[:3] for b in imported.data.bones if b.name in rest}
    assert len(heads) == 24
    pelvis = heads["pelvis"] - rest["pelvis"]  # the object may sit elsewhere: compare the skeleton's shape
    worst = max(np.abs(heads[n] - rest[n] - pelvis).max() for n in heads)
    assert worst < 1e-3, worst
