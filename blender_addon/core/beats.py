"""The animator's word on the beat, without Blender: the panel's tempo, meter and downbeat as request fields, and the
add-on's beat markers (which the animator may have moved) as a beat map in the song's seconds."""

from __future__ import annotations

import re

import numpy as np

from bridge.request import spec_of

MARKER_PREFIX = "beat"  # the add-on names its beat markers beat1, beat2, ... (scene.add_beat_markers)
_BEAT_MARKER = re.compile(MARKER_PREFIX + r"[0-9]+")
METERS = ("AUTO", "3", "4")  # the panel's meter choices: found by the tracker, 3/4 or 4/4


def is_beat_marker(name: str) -> bool:
    """Whether a timeline marker is one of the add-on's beat markers (not a section, key or user marker)."""
    return _BEAT_MARKER.fullmatch(name) is not None


def marker_song_seconds(frames, scene_fps: float, start_frame: int, section_start: float) -> np.ndarray:
    """Song times (s, sorted, each once) of scene frames, where `start_frame` plays the song at `section_start` s."""
    frames = np.asarray(list(frames), dtype=np.float64).reshape(-1)
    return np.unique(section_start + (frames - start_frame) / float(scene_fps))


def beat_map_problem(times: np.ndarray, section: tuple[float, float] | None = None) -> str:
    """'' if the beat map from the markers can be danced to, else one sentence saying why not (the section, in song
    seconds, when it is known; the backend checks a whole song's length itself)."""
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if len(times) < 2:
        return (f"Use my beat markers needs at least two beat markers (beat1, beat2, ...) on the timeline, found "
                f"{len(times)}; generate with Beat markers on, or turn Use my beat markers off.")
    if section is not None:
        start, end = section
        inside = int(((times >= start) & (times < end)).sum())
        if inside < 2:
            verb = "lies" if inside == 1 else "lie"
            return (f"Only {inside} of the {len(times)} beat markers {verb} inside the dance's section ({start:g} to "
                    f"{end:g} s of the song); move at least two into it, or turn Use my beat markers off.")
    return ""


def tempo_fields(bpm: float, meter: str, use_downbeat: bool, downbeat: float,
                 section: tuple[float, float] | None = None) -> dict:
    """The panel's tempo, meter and downbeat as DanceRequest fields ({} when all are left to the tracker); a BPM
    outside the backend's range (0 means 'found from the song') or a downbeat outside the dance's section (song
    seconds, when known) raises ValueError with the sentence for the panel."""
    fields: dict = {}
    if bpm:
        spec = spec_of("bpm")
        if not spec.in_range(bpm):
            raise ValueError(f"BPM must be 0 (found from the song) or from {spec.low:g} to {spec.high:g} beats per "
                             f"minute, got {bpm:g}.")
        fields["bpm"] = round(float(bpm), 3)  # Blender keeps float32: 92.5 stays, 1.3 would be 1.2999999523
    if meter != "AUTO":
        if meter not in METERS:
            raise ValueError(f"The meter must be Auto, 3/4 or 4/4, got {meter!r}.")
        fields["meter"] = int(meter)
    if use_downbeat:
        if section is not None and not section[0] <= downbeat <= section[1]:
            raise ValueError(f"The downbeat at {downbeat:g} s lies outside the dance's section ({section[0]:g} to "
                             f"{section[1]:g} s of the song); give a time inside it, or turn Downbeat off.")
        fields["downbeat"] = round(float(downbeat), 4)
    return fields
