"""Skeletons as data: joint names, parents and rest offsets, loaded from the toml files beside this module."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RIGS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy: names, parent indices (-1 for the root, parents before children) and rest offsets (m)."""

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3) joint position minus parent position at rest, metres
    foot_joints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n or self.offsets.shape != (n, 3):
            raise ValueError(f"skeleton {self.name!r}: names, parents and offsets disagree in length")
        for j, p in enumerate(self.parents):
            if not (p < j) or (j == 0) != (p == -1):
                raise ValueError(f"skeleton {self.name!r}: joint {j} has parent {p}; parents must precede children")
        self.offsets.setflags(write=False)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of the joint called `name`."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"skeleton {self.name!r} has no joint {name!r}") from None

    def children(self, j: int) -> list[int]:
        """Indices of the joints whose parent is `j`."""
        return [c for c, p in enumerate(self.parents) if p == j]

    def rest_positions(self) -> np.ndarray:
        """(J, 3) joint positions of the rest pose with the root at the origin."""
        pos = np.zeros((self.num_joints, 3))
        for j, p in enumerate(self.parents):
            if p >= 0:
                pos[j] = pos[p] + self.offsets[j]
        return pos

    def leg_length(self) -> float:
        """Mean hip-knee-ankle chain length of both legs (m): the scale used to map root translation between rigs."""
        total = 0.0
        for side in ("left", "right"):
            for joint in (f"{side}_knee", f"{side}_ankle"):
                total += float(np.linalg.norm(self.offsets[self.index(joint)]))
        return total / 2

    def scaled(self, factor: float) -> "Skeleton":
        """The same hierarchy with every offset multiplied by `factor`."""
        return Skeleton(self.name, self.joint_names, self.parents, self.offsets * factor, self.foot_joints)

    @classmethod
    def from_toml(cls, path: Path) -> "Skeleton":
        """Load a skeleton data file (see rigs/smpl.toml)."""
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        joints = data["joints"]
        return cls(
            name=data["name"],
            joint_names=tuple(j["name"] for j in joints),
            parents=tuple(int(j["parent"]) for j in joints),
            offsets=np.asarray([j["offset"] for j in joints], dtype=np.float64),
            foot_joints=tuple(data.get("foot_joints", ())),
        )


@functools.lru_cache(maxsize=None)
def smpl_skeleton() -> Skeleton:
    """The neutral SMPL skeleton (24 joints, y-up, metres)."""
    return Skeleton.from_toml(RIGS_DIR / "smpl.toml")


SMPL_JOINT_NAMES: tuple[str, ...] = smpl_skeleton().joint_names
NUM_SMPL_JOINTS = 24
