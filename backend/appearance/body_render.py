"""Body renders from the user's SMPL model (pyrender, headless) and occlusion-aware keypoints.

With a real body in the scene, a keypoint hidden behind the dancer's own body (a wrist behind the back, the far
shoulder in profile) can be told from a visible one: its depth lies behind the rendered surface at its pixel. 2D pose
detectors (the DWPose/ViTPose poses Wan-Animate was trained on) drop such keypoints as low-confidence, so hiding them
keeps our exact projections in the form the model knows. The renders double as a shaded preview of the dance.

Headless rendering: pyrender through EGL (Mesa's software EGL works without a GPU) or OSMesa; PYOPENGL_PLATFORM picks
one and we default to EGL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from backend.appearance.projector import Camera

# A keypoint sits inside the body: the surface in front of it is up to about a limb's or the pelvis's radius nearer
# the camera. Only a surface nearer than this counts as another body part in front of it.
OCCLUSION_MARGIN_M = 0.12


class BodyRenderError(RuntimeError):
    """Headless rendering is unavailable here; the message says what to install or set."""


@dataclass
class BodyRender:
    """Shaded body frames and their depth maps (metres along the camera axis, 0 where there is no body)."""

    color: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32


def _renderer(width: int, height: int):
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        import pyrender
    except ImportError as exc:
        raise BodyRenderError(f"body renders need pyrender (pip install -e .[ae]): {exc}") from None
    try:
        return pyrender, pyrender.OffscreenRenderer(width, height)
    except Exception as exc:  # noqa: BLE001 - the GL stack reports missing libraries in many ways
        raise BodyRenderError(f"no headless OpenGL ({os.environ['PYOPENGL_PLATFORM']}): {exc}; install Mesa's EGL "
                              "(libegl1) or OSMesa and set PYOPENGL_PLATFORM=egl or osmesa") from None


def camera_pose_gl(camera: Camera) -> np.ndarray:
    """The camera's pose as pyrender wants it: camera-to-world with OpenGL axes (y up, looking down -z)."""
    pose = np.eye(4)
    pose[:3, :3] = camera.rotation.T @ np.diag([1.0, -1.0, -1.0])
    pose[:3, 3] = -camera.rotation.T @ camera.translation
    return pose


def render_body(vertices: np.ndarray, faces: np.ndarray, camera: Camera,
                color: tuple[float, float, float] = (0.75, 0.72, 0.68)) -> BodyRender:
    """Render posed meshes (T, V, 3) through `camera`: shaded colour and depth per frame."""
    pyrender, renderer = _renderer(camera.width, camera.height)
    import trimesh

    try:
        scene = pyrender.Scene(bg_color=(0, 0, 0, 0), ambient_light=(0.35, 0.35, 0.35))
        cam = pyrender.IntrinsicsCamera(camera.fx, camera.fy, camera.cx, camera.cy, znear=0.05, zfar=100.0)
        pose = camera_pose_gl(camera)
        scene.add(cam, pose=pose)
        scene.add(pyrender.DirectionalLight(intensity=3.0), pose=pose)
        material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(*color, 1.0), metallicFactor=0.0,
                                                      roughnessFactor=0.8)
        node = None
        colors = np.zeros((len(vertices), camera.height, camera.width, 3), np.uint8)
        depths = np.zeros((len(vertices), camera.height, camera.width), np.float32)
        for t, v in enumerate(vertices):
            mesh = pyrender.Mesh.from_trimesh(trimesh.Trimesh(v, faces, process=False), material=material)
            if node is not None:
                scene.remove_node(node)
            node = scene.add(mesh)
            colors[t], depths[t] = renderer.render(scene)
    finally:
        renderer.delete()
    return BodyRender(colors, depths)


def occlusion_visible(uv: np.ndarray, depth: np.ndarray, maps: np.ndarray,
                      margin: float = OCCLUSION_MARGIN_M) -> np.ndarray:
    """(T, K) True where a keypoint is not hidden by the body: no rendered surface more than `margin` nearer.

    uv: (T, K, 2) pixels, depth: (T, K) keypoint depths, maps: (T, H, W) rendered depth (0 = empty).
    Keypoints outside the image count as visible here (the projector's own check handles the frame edges).
    """
    T, K = depth.shape
    H, W = maps.shape[1:]
    x = np.round(uv[..., 0]).astype(int)
    y = np.round(uv[..., 1]).astype(int)
    inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
    surface = np.zeros((T, K), np.float32)
    t_idx = np.broadcast_to(np.arange(T)[:, None], (T, K))
    surface[inside] = maps[t_idx[inside], y[inside], x[inside]]
    return ~(inside & (surface > 0) & (surface < depth - margin))


def body_keypoints(motion, camera: Camera, body) -> tuple[np.ndarray, np.ndarray, BodyRender]:
    """Projected OpenPose keypoints (T, 18, 2), their visibility with self-occlusion, and the body render."""
    from backend.appearance.projector import openpose_keypoints, project_motion

    uv, visible = project_motion(motion, camera)
    _, depth = camera.project(openpose_keypoints(motion))
    render = render_body(body.pose(motion), body.faces, camera)
    return uv, visible & occlusion_visible(uv, depth, render.depth), render


def contact_sheet(frames: np.ndarray, columns: int = 6, every: int = 1, gap: int = 4) -> np.ndarray:
    """Every `every`-th frame of (T, H, W, 3) laid out on a grid with a white gap and the frame number."""
    from PIL import Image, ImageDraw

    picked = list(range(0, len(frames), max(1, every)))
    if not picked:
        raise ValueError("no frames for a contact sheet")
    H, W = frames.shape[1:3]
    rows = -(-len(picked) // columns)
    cols = min(columns, len(picked))
    sheet = Image.new("RGB", (cols * W + (cols + 1) * gap, rows * H + (rows + 1) * gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, t in enumerate(picked):
        x, y = gap + (k % columns) * (W + gap), gap + (k // columns) * (H + gap)
        sheet.paste(Image.fromarray(frames[t]), (x, y))
        draw.text((x + 4, y + 4), f"{t}", fill=(255, 255, 255))
    return np.asarray(sheet)
