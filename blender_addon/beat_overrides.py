"""The panel's word on the beat, sent with every dance the add-on asks for: tempo, meter, downbeat, and the beat
markers the animator has moved (as a beat map in the song's seconds). The conversions live in core/beats.py."""

from __future__ import annotations

import numpy as np

from . import stored_dance
from .core.beats import beat_map_problem, is_beat_marker, marker_song_seconds, tempo_fields

# where the beat markers on the timeline were placed (scene frame of the section's start, the section's start in the
# song): the markers keep meaning those song times even if the panel's Start frame or section change later
ANCHOR = "mace_dance_beats"


def beat_markers(scene) -> list:
    """The add-on's beat markers on the timeline (beat1, beat2, ...), not section, key or the user's own markers."""
    return [m for m in scene.timeline_markers if is_beat_marker(m.name)]


def remember_anchor(scene, start_frame: int, section_start: float) -> None:
    """Record where the beat markers just placed start (the scene frame playing the song at `section_start` s)."""
    scene[ANCHOR] = {"start_frame": int(start_frame), "time_start": float(section_start)}


def _anchor(scene, settings: stored_dance.DanceSettings) -> tuple[int, float]:
    """(start frame, section start s) of the beat markers: as placed, else the dance's own (markers of older files)."""
    placed = scene.get(ANCHOR)
    if placed is not None and "start_frame" in placed and "time_start" in placed:
        return int(placed["start_frame"]), float(placed["time_start"])
    return int(settings.start_frame), float(settings.time_start)


def _section(settings: stored_dance.DanceSettings) -> tuple[float, float] | None:
    """The dance's section in the song (s), or None for the whole song (its length is the backend's to check)."""
    return (settings.time_start, settings.time_end) if settings.time_end > settings.time_start else None


def marker_beat_map(scene, settings: stored_dance.DanceSettings) -> np.ndarray:
    """The beat markers' times in the song (s), at the scene's frame rate (ValueError: a sentence for the panel)."""
    from .scene import scene_fps

    start_frame, section_start = _anchor(scene, settings)
    times = marker_song_seconds([m.frame for m in beat_markers(scene)], scene_fps(scene), start_frame,
                                section_start)
    problem = beat_map_problem(times, _section(settings))
    if problem:
        raise ValueError(problem)
    return times


def request_overrides(context, settings: stored_dance.DanceSettings) -> dict:
    """The panel's beat overrides as DanceRequest fields for a dance on `settings`' song section (ValueError: one
    sentence for the panel)."""
    s = context.scene.mace_dance
    fields = tempo_fields(s.bpm, s.meter, s.use_downbeat, s.downbeat, _section(settings))
    if s.use_beat_markers:
        fields["beat_map"] = marker_beat_map(context.scene, settings)
    return fields
