"""Unpaired motion (no music): the BVH clips in ../shared/data, retargeted onto SMPL at 30 fps."""

from __future__ import annotations

from pathlib import Path

from backend.data.tang2018 import foot_contacts
from rigs.bvh import read_bvh
from rigs.motion import Motion
from rigs.retarget import RetargetPreset, bvh_to_motion

# (folder, file pattern, retarget preset)
SOURCES = (
    ("bandai_namco_motion_dataset1_dance", "*.bvh", "bandai_namco"),
    ("cmu_mocap_salsa_bvh", "*.bvh", "cmu_bvh"),
)


def load_unpaired(data_dir: str | Path, fps: float = 30.0) -> dict[str, Motion]:
    """Every BVH clip under the known folders, as SMPL Motions with foot contacts, keyed by file name."""
    out: dict[str, Motion] = {}
    for folder, pattern, preset in SOURCES:
        for path in sorted((Path(data_dir) / folder).glob(pattern)):
            motion = bvh_to_motion(read_bvh(path), RetargetPreset.load(preset), fps=fps)
            motion.contacts = foot_contacts(motion)
            out[path.name] = motion
    return out
