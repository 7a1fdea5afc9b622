"""3D-to-2D motion projector: SMPL joints through a pinhole camera to the pose frames Wan-Animate takes.

Wan-Animate's pose input is a video of skeletons drawn the way DWPose/OpenPose draw them (the paper re-detected 2D
poses with ViTPose; we project exactly, so nothing is re-detected). Layout: the 18 OpenPose/COCO body keypoints.
How each is obtained from SMPL (y up, metres):
- neck: midpoint of the two SMPL shoulders (OpenPose's neck sits between the shoulders);
- shoulders, elbows, wrists, hips, knees, ankles: the SMPL joints of the same names;
- nose, eyes, ears: the SMPL head joint plus fixed offsets in the head's own frame (from the neutral SMPL head).
The camera is OpenCV-style (x right, y down, z forward); `Camera.frontal` faces the dancer, `Camera.from_blender`
takes a Blender camera's intrinsics and world matrix (z up) as the add-on reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton

OPENPOSE_18 = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
               "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
_FROM_SMPL = {"r_shoulder": "right_shoulder", "r_elbow": "right_elbow", "r_wrist": "right_wrist",
              "l_shoulder": "left_shoulder", "l_elbow": "left_elbow", "l_wrist": "left_wrist", "r_hip": "right_hip",
              "r_knee": "right_knee", "r_ankle": "right_ankle", "l_hip": "left_hip", "l_knee": "left_knee",
              "l_ankle": "left_ankle"}
# Offsets from the SMPL head joint in the head's frame (m): +x left, +y up, +z forward (neutral SMPL face).
_FACE = {"nose": (0.0, 0.02, 0.11), "r_eye": (-0.032, 0.055, 0.085), "l_eye": (0.032, 0.055, 0.085),
         "r_ear": (-0.075, 0.03, -0.005), "l_ear": (0.075, 0.03, -0.005)}
# OpenPose limb pairs and colours (as the DWPose/ControlNet renderer draws them)
LIMBS = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
         (1, 0), (0, 14), (14, 16), (0, 15), (15, 17))
COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
          (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
          (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))


@dataclass
class Camera:
    """A pinhole camera: intrinsics in pixels and a world-to-camera transform (world y up, camera OpenCV)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray  # (3, 3) world -> camera
    translation: np.ndarray  # (3,) camera = rotation @ world + translation

    @classmethod
    def frontal(cls, width: int = 480, height: int = 832, distance: float = 4.0, height_m: float = 1.0,
                fov_y_deg: float = 40.0) -> "Camera":
        """A camera `distance` m in front of the origin at `height_m`, looking at the dancer (who faces +z)."""
        fy = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
        # Looking down world -z: image right is world +x (the dancer's left, as in a mirror), image down is -y.
        R = np.diag([1.0, -1.0, -1.0])
        centre = np.array([0.0, height_m, distance])
        return cls(fy, fy, width / 2, height / 2, width, height, R, -R @ centre)

    @classmethod
    def from_blender(cls, world_matrix: np.ndarray, lens_mm: float, sensor_width_mm: float, width: int,
                     height: int) -> "Camera":
        """From a Blender camera (z-up world matrix, horizontal sensor fit) to our y-up OpenCV camera."""
        M = np.asarray(world_matrix, dtype=np.float64)
        cam_to_world_blender = M[:3, :3]
        pos_blender = M[:3, 3]
        z_up_to_y_up = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
        # Blender cameras look down their -z with +y up; OpenCV looks down +z with +y down.
        blender_cam_to_cv = np.diag([1.0, -1.0, -1.0])
        R = blender_cam_to_cv @ cam_to_world_blender.T @ z_up_to_y_up.T
        centre = z_up_to_y_up @ pos_blender
        f = lens_mm / sensor_width_mm * width
        return cls(f, f, width / 2, height / 2, width, height, R, -R @ centre)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) world points -> (..., 2) pixel coordinates and (...,) depths (z in front of the camera)."""
        cam = points @ self.rotation.T + self.translation
        z = cam[..., 2]
        safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
        uv = np.stack([self.fx * cam[..., 0] / safe + self.cx, self.fy * cam[..., 1] / safe + self.cy], axis=-1)
        return uv, z


def openpose_keypoints(motion: Motion) -> np.ndarray:
    """(T, 18, 3) world positions of the OpenPose body keypoints of an SMPL motion."""
    sk = smpl_skeleton()
    glob, pos = motion.forward()
    out = np.zeros((motion.num_frames, 18, 3))
    idx = {n: i for i, n in enumerate(OPENPOSE_18)}
    for name, smpl_name in _FROM_SMPL.items():
        out[:, idx[name]] = pos[:, sk.index(smpl_name)]
    out[:, idx["neck"]] = (pos[:, sk.index("left_shoulder")] + pos[:, sk.index("right_shoulder")]) / 2
    head, head_rot = pos[:, sk.index("head")], glob[:, sk.index("head")]
    for name, offset in _FACE.items():
        out[:, idx[name]] = head + head_rot @ np.asarray(offset)
    return out


def project_motion(motion: Motion, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(T, 18, 2) pixel keypoints and (T, 18) visibility (in front of the camera and inside the frame)."""
    uv, z = camera.project(openpose_keypoints(motion))
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < camera.width) & (uv[..., 1] >= 0) & (uv[..., 1] < camera.height)
    return uv, (z > 0.05) & inside


def draw_pose_frames(keypoints: np.ndarray, visible: np.ndarray, width: int, height: int,
                     stick: int | None = None) -> np.ndarray:
    """OpenPose-style skeleton images on black: (T, height, width, 3) uint8."""
    from PIL import Image, ImageDraw

    stick = stick or max(2, round(min(width, height) / 128))
    frames = np.zeros((len(keypoints), height, width, 3), dtype=np.uint8)
    for t, (kp, vis) in enumerate(zip(keypoints, visible)):
        img = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(img)
        for (a, b), color in zip(LIMBS, COLORS):
            if vis[a] and vis[b]:
                draw.line([tuple(kp[a]), tuple(kp[b])], fill=tuple(int(c * 0.6) for c in color), width=stick)
        r = stick
        for k, color in enumerate(COLORS):
            if vis[k]:
                x, y = kp[k]
                draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
        frames[t] = np.asarray(img)
    return frames
