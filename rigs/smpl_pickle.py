"""Reader for AIST++ / EDGE-style SMPL motion pickles, without trusting the pickle.

Those files are dicts of numpy arrays: `smpl_poses` (T, 72) axis-angle, `smpl_trans` (T, 3) and `smpl_scaling` (1,)
(AIST++: translation in the scaled units, so metres = trans / scaling), sometimes EDGE's `pos` / `q` instead.
A pickle can run arbitrary code when loaded, so the unpickler below only builds plain containers and numpy arrays.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from rigs.motion import Motion, MotionFileError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle API
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")


_Z_TO_Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)


def _z_up_to_y_up(poses: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from rigs.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    poses = poses.copy()
    poses[:, :3] = matrix_to_axis_angle(_Z_TO_Y @ axis_angle_to_matrix(poses[:, :3]))
    return poses, trans @ _Z_TO_Y.T


def load_smpl_pickle(path: str | Path, fps: float = 60.0) -> Motion:
    """Read an AIST++ (60 fps) or EDGE-style SMPL pickle into a Motion (translation in metres, y up)."""
    path = Path(path)
    if not path.is_file():
        raise MotionFileError(path, "file not found")
    try:
        data = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise MotionFileError(path, f"not a readable SMPL pickle ({exc})") from None
    if not isinstance(data, dict):
        raise MotionFileError(path, f"expected a dict of arrays, found {type(data).__name__}")
    if "smpl_poses" in data:
        poses = np.asarray(data["smpl_poses"], dtype=np.float64)
        trans = np.asarray(data.get("smpl_trans"), dtype=np.float64)
        scaling = float(np.asarray(data.get("smpl_scaling", [1.0]), dtype=np.float64).reshape(-1)[0])
        if not np.isfinite(scaling) or scaling <= 0:
            raise MotionFileError(path, f"smpl_scaling must be positive, got {scaling}")
        trans = trans / scaling
    elif "q" in data and "pos" in data:  # EDGE's own output: z up, so undo its +90 degree turn about x
        poses = np.asarray(data["q"], dtype=np.float64)
        trans = np.asarray(data["pos"], dtype=np.float64)
        if poses.ndim == 2 and poses.shape[1] == 72 and trans.ndim == 2 and trans.shape[1] == 3:
            poses, trans = _z_up_to_y_up(poses, trans)
    else:
        raise MotionFileError(path, f"no SMPL pose keys (smpl_poses or q/pos) among {sorted(map(str, data))}")
    if poses.ndim != 2 or poses.shape[1] != 72:
        raise MotionFileError(path, f"poses must be (frames, 72) for 24 SMPL joints, got {poses.shape}")
    if trans.shape != (poses.shape[0], 3):
        raise MotionFileError(path, f"translation must be ({poses.shape[0]}, 3), got {trans.shape}")
    try:
        return Motion.from_axis_angle(poses, trans, fps=fps)
    except ValueError as exc:
        raise MotionFileError(path, str(exc)) from None
