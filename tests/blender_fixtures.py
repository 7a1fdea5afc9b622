"""Fixtures and helpers shared by the add-on suites (tests/test_blender_*.py), which run in every supported Blender."""

from __future__ import annotations

import time

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the bpy wheel is not installed (scripts/test installs the 'blender' extra)")

import blender_addon  # noqa: E402
from blender_addon import jobs  # noqa: E402
from rigs.skeleton import smpl_skeleton  # noqa: E402

SK = smpl_skeleton()


@pytest.fixture
def addon():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    bpy.context.scene.render.fps = 30
    yield
    blender_addon.unregister()  # also unregisters the timer and stops the backend: the process can exit


def world_heads(obj, frame):
    bpy.context.scene.frame_set(frame)
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mw = np.array(ev.matrix_world)
    return {pb.name: (mw @ np.append(np.array(pb.head), 1.0))[:3] for pb in ev.pose.bones}


def build_mixamo_character(as_imported: bool = False):
    """A Mixamo-named armature, 1.2x SMPL's size with A-pose arms and arbitrary bone rolls; `as_imported`: as
    Blender's FBX importer leaves one (armature space y up in centimetres, the object rotated 90 degrees about x and
    scaled 0.01), standing at the same place in the world."""
    from blender_addon.core.armature import smpl_bone_layout
    from rigs import rotations as rot
    from rigs.retarget import RetargetPreset

    names = RetargetPreset.load("mixamo").bones
    data = bpy.data.armatures.new("Character")
    obj = bpy.data.objects.new("Character", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    layout = smpl_bone_layout(scale=1.2)
    heads = np.array([h for _, _, h, _ in layout])
    tails = np.array([t for _, _, _, t in layout])
    for side, sign in (("left", 1), ("right", -1)):  # A-pose: arms 40 degrees down from the shoulder
        s = SK.index(f"{side}_shoulder")
        r = rot.axis_angle_to_matrix(np.array([0.0, sign * 0.7, 0.0]))  # about Blender's forward axis
        for j in range(24):
            chain = j
            while chain >= 0 and chain != s:
                chain = SK.parents[chain]
            if chain == s:
                heads[j] = heads[s] + r @ (heads[j] - heads[s])
                tails[j] = heads[s] + r @ (tails[j] - heads[s])
    if as_imported:  # world = R_x(90) * 0.01 @ armature: the bones in armature space are its inverse
        to_arm = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]) * 100.0
        heads, tails = heads @ to_arm.T, tails @ to_arm.T
        obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
        obj.scale = (0.01, 0.01, 0.01)
    bones = []
    for j, (name, parent, _, _) in enumerate(layout):
        eb = data.edit_bones.new("mixamorig:" + names.get(name, f"extra_{name}"))
        eb.head, eb.tail = heads[j].tolist(), tails[j].tolist()
        eb.roll = 0.3 * j  # arbitrary bone rolls, as real rigs have
        if parent >= 0:
            eb.parent = bones[parent]
        bones.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj, names


def build_armature(build, as_imported: bool = False, object_scale: float = 1.0):
    """The character `build` as a Blender armature: bones from tests/characters.py (tails at the child, rolls of
    its own); `as_imported` leaves it as Blender's FBX importer leaves a Mixamo file (armature space y up in cm,
    the object turned 90 degrees about x and scaled 0.01); `object_scale` scales the object."""
    from blender_addon.core.armature import Y_UP_TO_Z_UP
    from characters import rest_heads
    from rigs.retarget import RetargetPreset

    preset = RetargetPreset.load(build.preset)
    heads = rest_heads(build) @ Y_UP_TO_Z_UP.T  # Blender: z up
    names = [build.prefix + preset.bones.get(n, f"extra_{n}") for n in SK.joint_names]
    data = bpy.data.armatures.new("Character")
    obj = bpy.data.objects.new("Character", data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    to_arm = np.eye(3)
    if as_imported:
        to_arm = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]) * 100.0
        obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
        obj.scale = (0.01, 0.01, 0.01)
    else:
        obj.scale = (object_scale,) * 3
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    root = None
    if build.root_bone:
        root = data.edit_bones.new(build.root_bone)
        root.head = (to_arm @ np.array([heads[0, 0], heads[0, 1], 0.0])).tolist()
        root.tail = (to_arm @ np.array([heads[0, 0], heads[0, 1] + 0.1, 0.0])).tolist()
    for j, name in enumerate(names):
        kids = SK.children(j)
        p = SK.parents[j]
        if len(kids) == 1 or SK.joint_names[j] in ("pelvis", "spine3"):
            tail = heads[kids[0] if SK.joint_names[j] != "spine3" else SK.index("neck")]
            if SK.joint_names[j] == "pelvis":
                tail = heads[SK.index("spine1")]
        else:  # a leaf continues its parent's direction
            d = heads[j] - heads[p]
            tail = heads[j] + d / np.linalg.norm(d) * 0.08
        eb = data.edit_bones.new(name)
        eb.head, eb.tail = (to_arm @ heads[j]).tolist(), (to_arm @ tail).tolist()
        eb.roll = 0.37 * j - 1.0
        eb.parent = bones[p] if p >= 0 else root
        bones.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


@pytest.fixture
def rigify_rig(addon):
    import addon_utils

    if not any(m.__name__ == "rigify" for m in addon_utils.modules()):
        pytest.skip("this Blender has no Rigify")
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    meta = bpy.context.active_object
    bpy.ops.pose.rigify_generate()
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o != meta)
    bpy.data.objects.remove(meta)
    yield rig
    addon_utils.disable("rigify", default_set=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    from backend.motion.checkpoint import save_model
    from backend.motion.model import Denoiser, DenoiserConfig
    from backend.motion.representation import Normalizer

    torch.manual_seed(0)
    cfg = DenoiserConfig(d_model=32, n_blocks=2, n_music_layers=1, n_heads=2, d_state=8, headdim=16, chunk_size=16,
                         attn_window=4, dropout=0.0)
    norm = Normalizer(np.zeros(151, np.float32), np.ones(151, np.float32), np.zeros(35, np.float32),
                      np.ones(35, np.float32))
    norm.motion_mean[4 + 1] = 0.95  # stand at the SMPL pelvis height
    return save_model(tmp_path_factory.mktemp("model"), Denoiser(cfg).eval(), norm)


@pytest.fixture
def song(tmp_path):
    from backend.music.demo import write_demo_wav

    path = tmp_path / "song.wav"
    write_demo_wav(path, seconds=3.0)
    return path


def smooth_motion(frames: int, seed: int = 0):
    """A dance-like motion: low-frequency joint swings and a drifting, bobbing root (resampling-friendly)."""
    from rigs.motion import Motion

    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 30.0
    # up to 0.25 rad at up to 1 Hz per joint axis: wrists reach ~3 m/s, as in brisk dancing
    amp = rng.uniform(0.05, 0.25, (1, 24, 3))
    freq, phase = rng.uniform(0.3, 1.0, (1, 24, 3)), rng.uniform(0, 6, (1, 24, 3))
    aa = amp * np.sin(2 * np.pi * freq * t + phase)
    tt = t[:, 0, 0]
    root = np.stack([0.3 * np.sin(0.5 * tt), 0.93 + 0.03 * np.sin(4 * tt), 0.2 * tt], axis=1)
    return Motion.from_axis_angle(aa, root)


def generate_tiny_dance(tiny_model, song, monkeypatch):
    """Generate a dance with the tiny model through the local backend; returns the panel settings and the armature
    (made active)."""
    monkeypatch.setenv("MACE_DANCE_MODEL_DIR", str(tiny_model))
    s = bpy.context.scene.mace_dance
    s.audio_path, s.steps = str(song), 2
    assert bpy.ops.dance.generate() == {"FINISHED"}
    drive()
    assert s.status.startswith("applied"), s.status
    obj = bpy.data.objects["SMPL"]
    bpy.context.view_layer.objects.active = obj
    return s, obj


def drive(seconds=120):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if jobs.tick() is None:
            return
        time.sleep(0.02)
    raise AssertionError("the job did not finish")


