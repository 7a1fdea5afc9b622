"""The Motion type: the one representation of a dance that every boundary passes around."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rigs import rotations as rot
from rigs.kinematics import forward_kinematics, joint_positions
from rigs.skeleton import SMPL_JOINT_NAMES, Skeleton, smpl_skeleton

NPZ_FORMAT_VERSION = 1


class MotionFileError(ValueError):
    """A motion file could not be read: the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def _require(cond: bool, problem: str) -> None:
    if not cond:
        raise ValueError(problem)


@dataclass
class Motion:
    """A skeletal motion on the SMPL skeleton (or another named skeleton with the same layout rules).

    rotations: (T, J, 4) float32 unit quaternions (w, x, y, z), each joint relative to its parent; the root's is global.
    root_translation: (T, 3) float32 world position of the root joint in metres; y is up and the floor is y = 0.
    fps: frames per second.
    joint_names: the rig's joint names, in the order of the rotations' second axis.
    betas: optional (10,) SMPL shape coefficients.
    contacts: optional (T, 4) foot-contact probabilities in [0, 1] for the skeleton's foot joints
        (left ankle, right ankle, left toe, right toe).
    root_motion: optional (T, 3) travel taken out of an in-place motion (x, 0, z), for game engines' root bones:
        the dance as performed is root_translation + root_motion.
    """

    rotations: np.ndarray
    root_translation: np.ndarray
    fps: float = 30.0
    joint_names: tuple[str, ...] = SMPL_JOINT_NAMES
    betas: np.ndarray | None = None
    contacts: np.ndarray | None = field(default=None)
    root_motion: np.ndarray | None = None

    def __post_init__(self) -> None:
        rotations = np.asarray(self.rotations, dtype=np.float32)
        trans = np.asarray(self.root_translation, dtype=np.float32)
        self.joint_names = tuple(str(n) for n in self.joint_names)
        _require(rotations.ndim == 3 and rotations.shape[2] == 4,
                 f"rotations must have shape (frames, joints, 4) quaternions, got {rotations.shape}")
        frames, joints = rotations.shape[:2]
        _require(frames >= 1, "a motion needs at least one frame")
        _require(joints == len(self.joint_names),
                 f"rotations have {joints} joints but the rig names {len(self.joint_names)}")
        _require(trans.shape == (frames, 3),
                 f"root_translation must have shape ({frames}, 3), got {trans.shape}")
        _require(bool(np.isfinite(rotations).all()), "rotations contain NaN or infinite values")
        _require(bool(np.isfinite(trans).all()), "root_translation contains NaN or infinite values")
        norms = rot.vector_norm(rotations)
        _require(bool((norms > 1e-6).all()), "rotations contain zero-length quaternions")
        _require(float(self.fps) > 0 and np.isfinite(self.fps), f"fps must be positive, got {self.fps}")
        self.fps = float(self.fps)
        # Renormalise only where needed so that saving and loading is bit-exact.
        off = np.abs(norms - 1.0) > 1e-6
        self.rotations = np.where(off[..., None], rotations / norms[..., None], rotations).astype(np.float32)
        self.root_translation = trans
        if self.betas is not None:
            betas = np.asarray(self.betas, dtype=np.float32).reshape(-1)
            _require(bool(np.isfinite(betas).all()), "betas contain NaN or infinite values")
            self.betas = betas
        if self.contacts is not None:
            contacts = np.asarray(self.contacts, dtype=np.float32)
            _require(contacts.shape == (frames, 4), f"contacts must have shape ({frames}, 4), got {contacts.shape}")
            _require(bool(np.isfinite(contacts).all()), "contacts contain NaN or infinite values")
            self.contacts = np.clip(contacts, 0.0, 1.0)
        if self.root_motion is not None:
            rm = np.asarray(self.root_motion, dtype=np.float32)
            _require(rm.shape == (frames, 3), f"root_motion must have shape ({frames}, 3), got {rm.shape}")
            _require(bool(np.isfinite(rm).all()), "root_motion contains NaN or infinite values")
            self.root_motion = rm

    # --- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_matrices(cls, matrices: np.ndarray, root_translation: np.ndarray, **kwargs) -> "Motion":
        """Build from (T, J, 3, 3) local rotation matrices."""
        return cls(rot.matrix_to_quaternion(np.asarray(matrices, dtype=np.float64)), root_translation, **kwargs)

    @classmethod
    def from_axis_angle(cls, axis_angle: np.ndarray, root_translation: np.ndarray, **kwargs) -> "Motion":
        """Build from (T, J, 3) or (T, J*3) axis-angle poses (the SMPL `poses` layout)."""
        aa = np.asarray(axis_angle, dtype=np.float64)
        if aa.ndim == 2:
            aa = aa.reshape(aa.shape[0], -1, 3)
        return cls(rot.axis_angle_to_quaternion(aa), root_translation, **kwargs)

    @classmethod
    def from_rotation_6d(cls, d6: np.ndarray, root_translation: np.ndarray, **kwargs) -> "Motion":
        """Build from (T, J, 6) continuous 6D rotations (any 6-vectors; they are orthonormalised)."""
        return cls.from_matrices(rot.rotation_6d_to_matrix(np.asarray(d6, dtype=np.float64)), root_translation, **kwargs)

    @classmethod
    def rest(cls, frames: int = 1, fps: float = 30.0) -> "Motion":
        """The SMPL rest pose standing on the floor for `frames` frames."""
        q = np.zeros((frames, 24, 4), dtype=np.float32)
        q[..., 0] = 1
        height = -smpl_skeleton().rest_positions()[:, 1].min()
        return cls(q, np.tile([0.0, height, 0.0], (frames, 1)), fps=fps)

    # --- views -------------------------------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.rotations.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def matrices(self) -> np.ndarray:
        """(T, J, 3, 3) local rotation matrices (float64)."""
        return rot.quaternion_to_matrix(self.rotations.astype(np.float64))

    def axis_angle(self) -> np.ndarray:
        """(T, J, 3) local axis-angle rotations."""
        return rot.quaternion_to_axis_angle(self.rotations.astype(np.float64))

    def rotation_6d(self) -> np.ndarray:
        """(T, J, 6) local continuous 6D rotations."""
        return rot.matrix_to_rotation_6d(self.matrices())

    def skeleton(self) -> Skeleton:
        """The skeleton this motion's joint names refer to (SMPL unless the names say otherwise)."""
        smpl = smpl_skeleton()
        if self.joint_names != smpl.joint_names:
            raise ValueError("this motion is not on the SMPL skeleton; pass its Skeleton explicitly")
        return smpl

    def forward(self, skeleton: Skeleton | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Global joint rotations (T, J, 3, 3) and positions (T, J, 3) by forward kinematics."""
        sk = skeleton or self.skeleton()
        return forward_kinematics(self.matrices(), self.root_translation.astype(np.float64), sk.offsets, sk.parents)

    def joint_positions(self, skeleton: Skeleton | None = None) -> np.ndarray:
        """(T, J, 3) world joint positions in metres."""
        sk = skeleton or self.skeleton()
        return joint_positions(self.matrices(), self.root_translation.astype(np.float64), sk.offsets, sk.parents)

    # --- editing -----------------------------------------------------------------------------------------------

    def slice(self, start: int, stop: int | None = None) -> "Motion":
        """Frames [start, stop) as a new Motion."""
        stop = self.num_frames if stop is None else stop
        if not 0 <= start < stop <= self.num_frames:
            raise ValueError(f"frame range [{start}, {stop}) is outside 0..{self.num_frames}")
        cut = lambda a: None if a is None else a[start:stop]  # noqa: E731
        return replace(self, rotations=self.rotations[start:stop], root_translation=self.root_translation[start:stop],
                       contacts=cut(self.contacts), root_motion=cut(self.root_motion))

    def resample(self, fps: float, cover: bool = False) -> "Motion":
        """The same motion at another frame rate: slerp for rotations, linear for translation and contacts.

        The last frame lies at or before the motion's end; with `cover` at or after it (holding the final pose), so
        the result spans the whole duration and resampling back never comes up a frame short.
        """
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if abs(fps - self.fps) < 1e-9:
            return replace(self)
        span = (self.num_frames - 1) * fps / self.fps
        last = np.ceil(span - 1e-6) if cover else np.floor(span + 1e-6)
        n_out = max(1, int(last) + 1)
        return replace(self.at_times(np.arange(n_out) * (self.fps / fps)), fps=fps)

    def at_times(self, t: np.ndarray) -> "Motion":
        """Frames sampled at fractional source-frame coordinates `t` (slerp rotations, lerp the rest), same fps."""
        t = np.clip(np.asarray(t, dtype=np.float64).reshape(-1), 0.0, self.num_frames - 1)
        i0 = np.clip(np.floor(t).astype(int), 0, self.num_frames - 1)
        i1 = np.clip(i0 + 1, 0, self.num_frames - 1)
        frac = t - i0
        q = rot.quaternion_slerp(self.rotations[i0], self.rotations[i1],
                                 np.broadcast_to(frac[:, None], (len(t), self.num_joints)))
        lerp = lambda a: a[i0] + (a[i1] - a[i0]) * frac[:, None]  # noqa: E731
        contacts = None if self.contacts is None else lerp(self.contacts)
        root_motion = None if self.root_motion is None else lerp(self.root_motion.astype(np.float64))
        return replace(self, rotations=q, root_translation=lerp(self.root_translation.astype(np.float64)),
                       contacts=contacts, root_motion=root_motion)

    # --- files -------------------------------------------------------------------------------------------------

    def save_npz(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write the motion as a pickle-free .npz file.

        `meta`: a small JSON-able dict about the file (the song it was danced to, its section), stored as one JSON
        string ('meta'); readers that do not know it skip it (see `read_meta`)."""
        path = Path(path)
        arrays = {
            "format_version": np.asarray(NPZ_FORMAT_VERSION, dtype=np.int32),
            "fps": np.asarray(self.fps, dtype=np.float64),
            "rotations": self.rotations,
            "root_translation": self.root_translation,
            "joint_names": np.asarray(self.joint_names, dtype=np.str_),
        }
        if self.betas is not None:
            arrays["betas"] = self.betas
        if self.contacts is not None:
            arrays["contacts"] = self.contacts
        if self.root_motion is not None:
            arrays["root_motion"] = self.root_motion
        if meta:
            arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True), dtype=np.str_)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(path)  # a crash mid-write never leaves a half file under the real name
        return path

    @classmethod
    def load_npz(cls, path: str | Path) -> "Motion":
        """Read a .npz written by `save_npz`; any problem raises MotionFileError naming the file."""
        path = Path(path)
        if not path.is_file():
            raise MotionFileError(path, "file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
                missing = {"fps", "rotations", "root_translation", "joint_names"} - keys
                if missing:
                    raise MotionFileError(path, f"not a motion file: missing {sorted(missing)}")
                version = int(data["format_version"]) if "format_version" in keys else 1
                if version > NPZ_FORMAT_VERSION:
                    raise MotionFileError(path, f"written by a newer version (format {version})")
                fields = {k: data[k] for k in ("rotations", "root_translation")}
                fps = float(data["fps"])
                names = tuple(str(n) for n in data["joint_names"])
                betas = data["betas"] if "betas" in keys else None
                contacts = data["contacts"] if "contacts" in keys else None
                root_motion = data["root_motion"] if "root_motion" in keys else None
        except MotionFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
            raise MotionFileError(path, f"unreadable or truncated .npz ({exc})") from None
        try:
            return cls(fields["rotations"], fields["root_translation"], fps=fps, joint_names=names, betas=betas,
                       contacts=contacts, root_motion=root_motion)
        except ValueError as exc:
            raise MotionFileError(path, str(exc)) from None

    @staticmethod
    def read_meta(path: str | Path) -> dict:
        """The `meta` dict a file was saved with ({} for files without one, as written before it existed)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "meta" not in data.files:
                    return {}
                meta = json.loads(str(data["meta"]))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
            raise MotionFileError(path, f"unreadable metadata ({exc})") from None
        if not isinstance(meta, dict):
            raise MotionFileError(path, "its metadata is not a table of values")
        return meta
