import numpy as np

from backend.appearance.projector import (OPENPOSE_18, Camera, draw_pose_frames, openpose_keypoints,
                                          project_motion)
from rigs import rotations as rot
from rigs.motion import Motion


def test_projection_matches_the_pinhole_formula():
    cam = Camera.frontal(width=480, height=832, distance=4.0, height_m=1.0, fov_y_deg=40.0)
    f = 0.5 * 832 / np.tan(np.radians(20.0))
    uv, z = cam.project(np.array([[0.5, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 2.0, 2.0]]))
    assert np.allclose(z, [4.0, 4.0, 2.0])
    assert np.allclose(uv[0], [240 + f * 0.5 / 4, 416])  # 0.5 m to the (dancer's) left shows right of centre
    assert np.allclose(uv[1], [240, 416])  # on the optical axis: the principal point
    assert np.allclose(uv[2], [240, 416 - f * 1.0 / 2])  # 1 m higher, 2 m closer


def test_blender_camera_equals_the_same_frontal_camera():
    theta = np.radians(90.0)  # a Blender camera at (0, -4, 1), rotated 90 degrees about x: looking along +y
    M = np.eye(4)
    M[:3, :3] = rot.axis_angle_to_matrix(np.array([theta, 0.0, 0.0]))
    M[:3, 3] = [0.0, -4.0, 1.0]
    front = Camera.frontal(width=640, height=640, distance=4.0, height_m=1.0, fov_y_deg=40.0)
    blender = Camera.from_blender(M, lens_mm=front.fx / 640 * 36.0, sensor_width_mm=36.0, width=640, height=640)
    pts = np.random.default_rng(0).normal(size=(20, 3)) * 0.5 + [0, 1, 0]
    assert np.allclose(blender.project(pts)[0], front.project(pts)[0], atol=1e-6)


def test_keypoints_follow_the_body():
    m = Motion.rest(1)
    kp = openpose_keypoints(m)[0]
    idx = {n: i for i, n in enumerate(OPENPOSE_18)}
    assert kp[idx["l_wrist"], 0] > 0 > kp[idx["r_wrist"], 0]  # SMPL left is +x
    assert kp[idx["nose"], 2] > kp[idx["l_ear"], 2]  # the nose is in front of the ears
    assert kp[idx["nose"], 1] > kp[idx["neck"], 1] > kp[idx["r_hip"], 1] > kp[idx["r_ankle"], 1]
    turned = Motion.from_axis_angle(np.zeros((1, 24, 3)) + np.array([0, np.pi, 0]) * (np.arange(24) == 0)[:, None],
                                    m.root_translation)
    assert openpose_keypoints(turned)[0, idx["nose"], 2] < kp[idx["neck"], 2]  # facing away: the nose went behind


def test_pose_frames_are_drawn_where_the_keypoints_project():
    cam = Camera.frontal(width=256, height=384)
    m = Motion.rest(2)
    uv, vis = project_motion(m, cam)
    assert vis.all()
    frames = draw_pose_frames(uv, vis, cam.width, cam.height)
    assert frames.shape == (2, 384, 256, 3) and frames.dtype == np.uint8
    for k in (0, 4, 7, 10, 13):
        x, y = np.round(uv[0, k]).astype(int)
        assert frames[0, y, x].max() > 100  # a joint dot is drawn on the projected keypoint
    assert frames[0, :20, :20].max() == 0  # background stays black
    behind = Camera.frontal(distance=-4.0)  # the dancer is behind this camera
    assert not project_motion(m, behind)[1].any()
