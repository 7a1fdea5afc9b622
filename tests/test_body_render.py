"""The user's SMPL body: skinning follows the dance, headless renders line up with the projector, and keypoints
hidden by the body are left out."""

import numpy as np
import pytest

from backend.appearance.body_render import (BodyRenderError, body_keypoints, camera_pose_gl, contact_sheet,
                                            occlusion_visible, render_body)
from backend.appearance.projector import OPENPOSE_18, Camera, project_motion
from builders import fake_smpl_model, random_motion
from rigs import rotations as rot
from rigs.motion import Motion
from rigs.smpl_body import SMPLModelError, load_smpl_body
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()


def _renderable():
    try:
        render_body(np.zeros((1, 3, 3)), np.array([[0, 1, 2]]), Camera.frontal(32, 32))
    except BodyRenderError as exc:
        pytest.skip(f"no headless OpenGL here: {exc}")


def test_skinning_puts_each_joint_cube_on_the_dance(tmp_path):
    body = load_smpl_body(fake_smpl_model(tmp_path / "m.npz"))
    m = random_motion(12, seed=2)
    verts = body.pose(m).reshape(12, 24, 8, 3)
    np.testing.assert_allclose(verts.mean(axis=2), m.joint_positions(), atol=1e-9)
    # each cube turns with its joint: corner offsets are the rest offsets rotated by the joint's global rotation
    glob, _ = m.forward()
    rest = body.vertices.reshape(24, 8, 3) - body.joints[:, None]
    np.testing.assert_allclose(verts - verts.mean(axis=2, keepdims=True), np.einsum("tjab,jvb->tjva", glob, rest),
                               atol=1e-9)


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(SMPLModelError, match="not found"):
        load_smpl_body(tmp_path / "none.npz")
    np.savez(tmp_path / "bad.npz", v_template=np.zeros((5, 3)))
    with pytest.raises(SMPLModelError, match="missing f, weights, J_regressor"):
        load_smpl_body(tmp_path / "bad.npz")
    np.savez(tmp_path / "faces.npz", v_template=np.zeros((8, 3)), f=np.array([[0, 1, 99]]),
             weights=np.zeros((8, 24)), J_regressor=np.zeros((24, 8)))
    with pytest.raises(SMPLModelError, match="faces"):
        load_smpl_body(tmp_path / "faces.npz")


def test_occlusion_test_on_a_known_depth_map():
    maps = np.zeros((1, 10, 10), np.float32)
    maps[0, :, :5] = 2.0  # a surface 2 m away on the left half
    uv = np.array([[[2.0, 5.0], [2.0, 5.0], [7.0, 5.0], [-3.0, 5.0]]])
    depth = np.array([[3.0, 2.05, 3.0, 3.0]])
    vis = occlusion_visible(uv, depth, maps, margin=0.12)
    assert vis.tolist() == [[False, True, True, True]]  # behind it / its own surface / beside it / off-image


def test_renders_line_up_with_the_projection_and_hide_the_far_side(tmp_path):
    _renderable()
    big = {SK.index(n): 0.09 for n in ("pelvis", "spine1", "spine2", "spine3", "left_shoulder", "right_shoulder",
                                        "left_hip", "right_hip")}
    body = load_smpl_body(fake_smpl_model(tmp_path / "m.npz", half=0.03, halves=big))
    q = np.zeros((1, 24, 4))
    q[..., 0] = 1
    m = Motion(q, np.array([[0.0, 0.95, 0.0]]))
    front = Camera.frontal(160, 240, distance=3.0)
    uv, visible = project_motion(m, front)
    out = render_body(body.pose(m), body.faces, front)
    assert out.color.shape == (1, 240, 160, 3) and out.depth.shape == (1, 240, 160)
    # the body is where the projector puts the joints, at the distance the camera says
    for name in ("r_knee", "l_knee", "r_ankle", "l_wrist", "r_hip"):
        x, y = np.round(uv[0, OPENPOSE_18.index(name)]).astype(int)
        assert out.depth[0, y, x] > 0, name
        assert out.color[0, y, x].max() > 40, name
    pelvis_px = front.project(m.joint_positions()[0, 0])[0].round().astype(int)
    assert abs(out.depth[0, pelvis_px[1], pelvis_px[0]] - (3.0 - 0.09)) < 0.02  # the pelvis cube's front face
    assert out.depth[0, 2, 2] == 0 and out.color[0, 2, 2].max() == 0  # background
    # from the dancer's right side, the right shoulder cube hides the left shoulder, and not the other way round
    side = np.eye(4)
    side[:3, :3] = rot.axis_angle_to_matrix(np.array([0.0, -np.pi / 2, 0.0]))  # GL camera: -z looks at +x
    side[:3, 3] = [-3.0, 1.0, 0.0]  # on the dancer's right (-x), looking at +x
    cv = np.diag([1.0, -1.0, -1.0])
    R = cv @ side[:3, :3].T
    right_cam = Camera(front.fx, front.fy, 80, 120, 160, 240, R, -R @ side[:3, 3])
    np.testing.assert_allclose(camera_pose_gl(right_cam)[:3, 3], side[:3, 3], atol=1e-9)
    uv, vis, render = body_keypoints(m, right_cam, body)
    assert vis[0, OPENPOSE_18.index("r_shoulder")] and not vis[0, OPENPOSE_18.index("l_shoulder")]
    assert vis[0, OPENPOSE_18.index("r_hip")] and not vis[0, OPENPOSE_18.index("l_hip")]
    # without a body, the projector alone keeps both
    assert project_motion(m, right_cam)[1][0, OPENPOSE_18.index("l_shoulder")]


def test_contact_sheet_layout():
    frames = np.stack([np.full((20, 30, 3), 10 * t, np.uint8) for t in range(7)])
    sheet = contact_sheet(frames, columns=3, every=2, gap=4)  # frames 0, 2, 4, 6 -> 2 rows of 3
    assert sheet.shape == (2 * 20 + 3 * 4, 3 * 30 + 4 * 4, 3)
    assert (sheet[4 + 15, 4 + 30 + 4 + 20] == 20).all()  # second tile is frame 2
    assert (sheet[0, 0] == 255).all()
    with pytest.raises(ValueError, match="no frames"):
        contact_sheet(frames[:0])


def test_poses_command_writes_contact_sheets(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    random_motion(30, seed=1).save_npz(tmp_path / "dance.npz")
    cmd = [sys.executable, "-m", "backend.cli", "poses", str(tmp_path / "dance.npz"), "--width", "40", "--height",
           "64", "--every", "10", "--columns", "2", "-o", str(tmp_path / "out")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    sheet = np.asarray(Image.open(tmp_path / "out" / "pose_sheet.png"))
    assert sheet.shape == (2 * 64 + 3 * 4, 2 * 40 + 3 * 4, 3)  # frames 0, 10, 20 on a 2-column grid
    bad = subprocess.run(cmd + ["--smpl-model", str(tmp_path / "missing.npz")], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "SMPL model file not found" in bad.stderr and "Traceback" not in bad.stderr
    _renderable()
    fake_smpl_model(tmp_path / "m.npz")
    res = subprocess.run(cmd + ["--smpl-model", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    body = np.asarray(Image.open(tmp_path / "out" / "body_sheet.png"))
    assert body.shape == sheet.shape and body[4:68, 4:44].max() > 40  # the first tile shows a lit body


def test_video_with_a_body_model_leaves_hidden_keypoints_out(tmp_path, monkeypatch):
    pytest.importorskip("diffusers", reason="the 'ae' extra is not installed")
    _renderable()
    from PIL import Image

    from backend.appearance import pipeline
    from backend.appearance.pipeline import AppearanceExpert, VideoOptions

    drawn = []
    original = pipeline.draw_pose_frames
    monkeypatch.setattr(pipeline, "draw_pose_frames",
                        lambda kp, vis, *a, **k: drawn.append(vis) or original(kp, vis, *a, **k))
    big = {SK.index(n): 0.09 for n in ("pelvis", "spine1", "spine2", "spine3", "left_hip", "right_hip")}
    body = load_smpl_body(fake_smpl_model(tmp_path / "m.npz", half=0.04, halves=big))
    m = random_motion(5, seed=4, scale=0.1, drift=0.0)
    # a camera on the dancer's right: the left side is behind the body
    R = np.diag([1.0, -1.0, -1.0]) @ rot.axis_angle_to_matrix(np.array([0.0, -np.pi / 2, 0.0])).T
    cam = Camera(40.0, 40.0, 8, 8, 16, 16, R, -R @ np.array([-3.0, 1.0, 0.0]))
    ref = Image.fromarray(np.full((16, 16, 3), 128, np.uint8))
    options = VideoOptions(width=16, height=16, segment_frames=9, steps=1)
    expert = AppearanceExpert.tiny()
    plain = expert.render(m, ref, camera=cam, options=options)
    with_body = expert.render(m, ref, camera=cam, options=options, body=body)
    assert plain.body is None and with_body.body.shape == (5, 16, 16, 3)
    assert drawn[0].sum() > drawn[1].sum() and not drawn[1][:, OPENPOSE_18.index("l_hip")].any()
    assert (drawn[1] <= drawn[0]).all()  # only ever hides
