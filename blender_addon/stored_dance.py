"""The dance saved inside the .blend: the Motion as generated and the settings that made it, on the armature object.

Keys alone are not enough after a reopen: Retarget and Video need the Motion (at its own 30 fps, independent of the
scene's rate) and Edit needs the song and the settings. ID-property arrays keep float32 data exactly and cost one
buffer copy each way; 60 s of dance is about 0.8 MB in the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import bpy
import numpy as np

from rigs.motion import Motion

KEY = "mace_dance"
FORMAT = 1


@dataclass
class DanceSettings:
    """How a stored dance was made (what Edit and a re-run need)."""

    song: str = ""  # as the user gave it (may be blend-relative, '//...')
    seed: int = 0
    beta: float = 1.0  # kept at the default of the time: a dance stored without it was made at beta 1
    steps: int = 0  # 0: the backend's choice (bridge.request LIBRARY_STEPS / GENERATION_STEPS)
    style: str = "auto"
    beat_sync: float = 1.0
    start_frame: int = 1
    time_start: float = 0.0  # the section of the song danced to, in seconds (time_end 0: the whole song)
    time_end: float = 0.0
    beat_frames: list[float] = field(default_factory=list)  # music beats, in motion frames
    beat_guidance: float = 8.0  # the sampler's pull onto the beats (backend.motion.beat_guidance); edits keep it
    novelty: float = 1.0  # library figures (0) to pure generation (1); a dance stored without it was made at 1
    in_place: bool = False  # danced on the spot, the travel kept beside it (root_motion): its edits stay in place
    loop: float = 0.0  # seconds of loop blend (0: not a loop); new dances (whole-song takes) read the Export box


def store(obj: bpy.types.Object, motion: Motion, settings: DanceSettings) -> None:
    """Save the dance and its settings on the armature object (replacing an earlier one)."""
    data = {
        "format": FORMAT,
        "fps": float(motion.fps),
        "frames": int(motion.num_frames),
        "joint_names": list(motion.joint_names),
        "rotations": np.ascontiguousarray(motion.rotations, dtype=np.float32).reshape(-1),
        "root_translation": np.ascontiguousarray(motion.root_translation, dtype=np.float32).reshape(-1),
        **{k: v for k, v in asdict(settings).items() if k != "beat_frames"},
        "beat_frames": np.asarray(settings.beat_frames, dtype=np.float32).reshape(-1),
    }
    for name in ("contacts", "root_motion", "betas"):
        value = getattr(motion, name)
        if value is not None:
            data[name] = np.ascontiguousarray(value, dtype=np.float32).reshape(-1)
    obj[KEY] = data


def has_dance(obj: bpy.types.Object | None) -> bool:
    """Whether the object carries a stored dance."""
    return obj is not None and KEY in obj.keys()


def _array(group, name: str, shape: tuple[int, ...]) -> np.ndarray:
    # a copy: np.asarray would view Blender's own buffer, which a file load or an undo step frees under the Motion
    values = np.array(group[name], dtype=np.float32, copy=True)
    if shape == (-1,):
        return values
    if values.size != int(np.prod(shape)):
        raise ValueError(f"the stored dance's '{name}' has {values.size} values, expected {int(np.prod(shape))}")
    return values.reshape(shape)


def _setting(value, default):
    """A stored setting as the type of its default (ID properties hand back their own array and number types)."""
    if isinstance(default, list):
        return [float(v) for v in value]
    return type(default)(value)


def load(obj: bpy.types.Object) -> tuple[Motion, DanceSettings]:
    """The stored Motion and settings (ValueError naming the object if it has none or it is damaged)."""
    if not has_dance(obj):
        raise ValueError(f"{obj.name} carries no MACE-Dance dance")
    g = obj[KEY]
    if int(g.get("format", 0)) > FORMAT:
        raise ValueError(f"the dance on {obj.name} was stored by a newer MACE-Dance add-on; update the add-on")
    try:
        frames, names = int(g["frames"]), [str(n) for n in g["joint_names"]]
        optional = {name: _array(g, name, shape) for name, shape in
                    (("contacts", (frames, 4)), ("root_motion", (frames, 3)), ("betas", (-1,))) if name in g}
        motion = Motion(_array(g, "rotations", (frames, len(names), 4)),
                        _array(g, "root_translation", (frames, 3)), fps=float(g["fps"]), joint_names=tuple(names),
                        **optional)
        defaults = DanceSettings()
        settings = DanceSettings(**{f.name: _setting(g[f.name], getattr(defaults, f.name))
                                    for f in fields(DanceSettings) if f.name in g})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the dance stored on {obj.name} is damaged ({exc}); generate it again") from None
    return motion, settings


def dance_source(context) -> bpy.types.Object | None:
    """The armature whose dance Retarget and Video use: the scene's latest dance, else the active object's."""
    s = context.scene.mace_dance
    obj = s.dance_armature
    if has_dance(obj) and obj.name in context.scene.objects:
        return obj
    active = context.active_object
    return active if has_dance(active) else None
