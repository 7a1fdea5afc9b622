"""Bone maps from SMPL joints to other rigs' bone names: the shipped presets (rigs/presets/*.toml) and the user's own.

A studio fixes a guessed map once (one wrong bone, a naming scheme of its own) and saves it as a preset; the
add-on's bone-map editor and every command that takes a preset name read the same folder:
$MACE_DANCE_RIG_PRESETS, else $XDG_CONFIG_HOME/mace-dance/rig_presets (~/.config/... when unset). A user preset
of a shipped preset's name takes its place.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rigs.skeleton import RIGS_DIR, smpl_skeleton

PRESETS_DIR = RIGS_DIR / "presets"
REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RetargetError(ValueError):
    """A rig or bone map cannot be used for retargeting; the message says which bones are missing."""


def user_presets_dir() -> Path:
    """The folder of the user's own presets (it may not exist yet)."""
    explicit = os.environ.get("MACE_DANCE_RIG_PRESETS")
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "mace-dance" / "rig_presets"


def _preset_paths() -> dict[str, Path]:
    """Preset name -> file, the user's shadowing the shipped ones."""
    paths = {p.stem: p for p in PRESETS_DIR.glob("*.toml")}
    user = user_presets_dir()
    if user.is_dir():
        paths.update({p.stem: p for p in user.glob("*.toml")})
    return paths


def _bare(name: str) -> str:
    """A bone name without namespace or deform/control prefixes, lower case: 'mixamorig:LeftArm' -> 'leftarm'."""
    name = name.rsplit(":", 1)[-1].rsplit("|", 1)[-1]
    name = re.sub(r"^(DEF|ORG|MCH)[-_.]", "", name)
    return name.lower()


@dataclass(frozen=True)
class RetargetPreset:
    """A bone-name map from SMPL joints to a family of rigs (a shipped or a user preset)."""

    name: str
    description: str
    bones: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.bones) - set(smpl_skeleton().joint_names)
        if unknown:
            raise RetargetError(f"preset {self.name!r} maps unknown SMPL joints {sorted(unknown)}")

    @classmethod
    def load(cls, name: str) -> "RetargetPreset":
        """Load a preset by name (see `list_presets`)."""
        path = _preset_paths().get(name)
        if path is None:
            raise RetargetError(f"no retarget preset {name!r}; available: {', '.join(list_presets())}")
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
            bones = {str(k): str(v) for k, v in dict(data["bones"]).items()}
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RetargetError(f"the retarget preset file {path} cannot be read: {exc}") from None
        return cls(path.stem, str(data.get("description", "")), bones)  # the file's name is the preset's

    def save(self, folder: Path | None = None) -> Path:
        """Write the preset as <folder>/<name>.toml (the user's presets folder by default); returns the file."""
        if not _NAME.match(self.name):
            raise RetargetError(f"a preset name is letters, digits, '_', '-' or '.' (up to 64), got {self.name!r}")
        folder = user_presets_dir() if folder is None else folder
        folder.mkdir(parents=True, exist_ok=True)
        order = {n: i for i, n in enumerate(smpl_skeleton().joint_names)}
        lines = [f"name = {_toml_string(self.name)}", f"description = {_toml_string(self.description)}", "",
                 "[bones]"]
        lines += [f"{joint} = {_toml_string(bone)}"
                  for joint, bone in sorted(self.bones.items(), key=lambda kv: order[kv[0]])]
        text = "\n".join(lines) + "\n"
        if tomllib.loads(text)["bones"] != self.bones:  # what is written must read back as it is
            raise RetargetError(f"the bone map of preset {self.name!r} cannot be written as TOML exactly")
        path = folder / f"{self.name}.toml"
        tmp = path.with_suffix(".toml.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # a crash mid-write leaves the old preset, not half or none of a file
        return path

    def resolve(self, bone_names: tuple[str, ...] | list[str]) -> dict[str, int]:
        """SMPL joint -> index into `bone_names`, matching exact names first, then names without prefixes."""
        exact = {n: i for i, n in enumerate(bone_names)}
        bare: dict[str, int] = {}
        for i, n in enumerate(bone_names):
            bare.setdefault(_bare(n), i)
        out = {}
        for joint, bone in self.bones.items():
            if bone in exact:
                out[joint] = exact[bone]
            elif _bare(bone) in bare:
                out[joint] = bare[_bare(bone)]
        return out


def _toml_string(text: str) -> str:
    """`text` as a TOML basic string: quotes, backslashes and control characters escaped, everything else as is
    (JSON's escapes wrote characters beyond U+FFFF as surrogate pairs, which TOML refuses)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def list_presets() -> list[str]:
    """Names of the shipped and the user's retarget presets."""
    return sorted(_preset_paths())


def guess_preset(bone_names: tuple[str, ...] | list[str]) -> tuple[RetargetPreset, dict[str, int]]:
    """The preset that maps the most SMPL joints onto these bone names, with its resolved map."""
    best = None
    for name in list_presets():
        try:
            preset = RetargetPreset.load(name)
        except RetargetError:  # a broken user preset must not stop the guess for every other rig
            continue
        mapping = preset.resolve(bone_names)
        if best is None or len(mapping) > len(best[1]):
            best = (preset, mapping)
    if best is None or not all(j in best[1] for j in REQUIRED):
        raise RetargetError("no preset matches this rig's bone names (need at least the hips, knees and ankles)")
    return best


def bone_map(rows: dict[str, str], bone_names: tuple[str, ...] | list[str]) -> dict[str, int]:
    """An edited map (SMPL joint -> bone name, '' for none) as indices into `bone_names`, checked: every named bone
    exists, no bone serves two joints, and the legs are mapped; each problem is one sentence naming the row."""
    index = {n: i for i, n in enumerate(bone_names)}
    joints = set(smpl_skeleton().joint_names)
    out: dict[str, int] = {}
    used: dict[str, str] = {}
    for joint, bone in rows.items():
        if joint not in joints:
            raise RetargetError(f"the bone map has a row for {joint!r}, which is not an SMPL joint")
        if not bone:
            continue
        if bone not in index:
            raise RetargetError(f"the bone map gives {joint} the bone {bone!r}, which this armature does not have")
        if bone in used:
            raise RetargetError(f"the bone map gives {bone!r} to both {used[bone]} and {joint}; a bone can carry "
                                "one joint")
        used[bone] = joint
        out[joint] = index[bone]
    missing = [j for j in REQUIRED if j not in out]
    if missing:
        raise RetargetError(f"the bone map needs a bone for {', '.join(missing)}")
    return out
