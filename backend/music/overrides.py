"""A user's word on the beat: tempo, meter, where a bar starts, or a whole beat map, applied to analysed music.

The tracker can be wrong (a rubato piece, a song whose bar the network hears late), and an animator knows the
beat. Every stage that dances to the rhythm (beat guidance, beat sync, the figure library's bars, snapped keys, the
markers and the beat plot) reads MusicFeatures' beats, downbeats and meter, so an override is a new MusicFeatures:
- `bpm`: the tracker decodes its activations again with the tempo held within 4 % of it (the librosa fallback runs
  its DP tracker at that tempo);
- `meter` (3 or 4): decoded again in that meter only;
- `downbeat` (s into the section): bars are counted from the beat nearest it;
- `beat_times` (s into the section): the beats themselves, as given.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backend.music.features import BEATS, FPS, MusicFeatures, grid_frames
from bridge.request import RequestError


def _positions(n: int, meter: int, first_downbeat: int) -> np.ndarray:
    """Places in the bar (1..meter) of n beats whose beat `first_downbeat` starts a bar."""
    return (np.arange(n) - first_downbeat) % meter + 1


def _grid(music: MusicFeatures, bpm: float | None, meter: int | None) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(times s, places, meter, tempo) of the music's beats, decoded anew when a tempo or meter is asked."""
    from backend.music import downbeats

    heard = music.beat_evidence
    if heard is not None and (bpm is not None or meter is not None):
        grid = downbeats.decode(heard.activations, heard.sounding, meter, bpm)
        return grid.times - heard.offset, grid.positions, grid.meter, grid.bpm
    times = np.asarray(music.beat_frames, dtype=np.float64) / FPS
    tempo = music.tempo
    if bpm is not None:  # the librosa fallback: its DP tracker, held to the asked tempo
        from backend.music.beat_tracking import track_beats
        from backend.music.features import ENVELOPE

        times = track_beats(music.features[:, ENVELOPE.start], float(bpm), FPS, tightness=100.0) / FPS
        tempo = float(bpm)
    bar = int(meter or music.meter or 4)
    downs = set(np.asarray(music.downbeat_frames).tolist())
    first = next((k for k, f in enumerate(np.round(times * FPS).astype(int)) if f in downs), 0)
    return times, _positions(len(times), bar, first), bar, tempo


def honour(music: MusicFeatures, bpm: float | None = None, meter: int | None = None, downbeat: float | None = None,
           beat_times: np.ndarray | None = None) -> MusicFeatures:
    """`music` with the asked tempo, meter, first beat of a bar (s into the section) or beats (s into the section)."""
    if bpm is None and meter is None and downbeat is None and beat_times is None:
        return music
    if meter is not None and int(meter) not in (3, 4):
        raise RequestError("meter", f"the meter must be 3 or 4 beats per bar, got {meter}")
    if beat_times is not None:
        times = np.unique(np.asarray(beat_times, dtype=np.float64).reshape(-1))
        times = times[(times >= 0) & (times < music.duration)]
        if len(times) < 2 or not np.isfinite(times).all():
            raise RequestError("beat_map", f"the beat map needs at least two beat times inside the section, "
                                           f"got {len(times)}")
        bar = int(meter or music.meter or 4)
        places, tempo = _positions(len(times), bar, 0), 60.0 * (len(times) - 1) / (times[-1] - times[0])
    else:
        times, places, bar, tempo = _grid(music, bpm, meter)
    if downbeat is not None:
        if not 0.0 <= downbeat <= music.duration or len(times) == 0:
            raise RequestError("downbeat", f"the downbeat at {downbeat:g} s lies outside the section (0 to "
                                           f"{music.duration:.2f} s)")
        places = _positions(len(times), bar, int(np.argmin(np.abs(times - downbeat))))
    frames, places = grid_frames(times, places, music.num_frames)
    features = music.features.copy()
    features[:, BEATS] = 0.0
    features[frames, BEATS] = 1.0
    return dataclasses.replace(music, features=features, beat_frames=frames, downbeat_frames=frames[places == 1],
                               meter=bar if len(frames) else 0, tempo=float(tempo) if len(frames) else 0.0)


def with_beats(music: MusicFeatures, frames: np.ndarray) -> MusicFeatures:
    """`music` danced on other beats (`frames`, e.g. every other beat of a fast song): its beat column, beats, tempo
    (over their span) and the downbeats among them; meter kept. The song's own analysis is left as it is."""
    frames = np.unique(np.asarray(frames, dtype=int))
    frames = frames[(frames >= 0) & (frames < music.num_frames)]
    features = music.features.copy()
    features[:, BEATS] = 0.0
    features[frames, BEATS] = 1.0
    tempo = 60.0 * music.fps * (len(frames) - 1) / (frames[-1] - frames[0]) if len(frames) > 1 else 0.0
    downs = np.asarray(music.downbeat_frames, dtype=int)
    return dataclasses.replace(music, features=features, beat_frames=frames,
                               downbeat_frames=downs[np.isin(downs, frames)], tempo=float(tempo))


def read_beat_map(path) -> np.ndarray:
    """Beat times (s in the song) from a text file, one a line (a second column, e.g. an Audacity label's end or a
    beat number, is ignored); RequestError naming the file when it holds none."""
    try:
        rows = np.loadtxt(path, ndmin=2, dtype=np.float64, usecols=0, comments="#")
    except (OSError, ValueError) as exc:
        raise RequestError("beat_map", f"{path}: not a beat map, one time (s) a line ({exc})") from None
    times = rows.reshape(-1)
    if len(times) < 2 or not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise RequestError("beat_map", f"{path}: a beat map needs at least two increasing times (s), one a line")
    return times


def music_for(request, music: MusicFeatures) -> MusicFeatures:
    """The music a DanceRequest dances to: `music` (its section) with the request's beat overrides, whose times are
    in the song (refused in one sentence, in the song's seconds, when they miss the section)."""
    start = float(request.start)
    if request.downbeat is not None and not start <= request.downbeat <= start + music.duration:
        raise RequestError("downbeat", f"--downbeat {request.downbeat:g} lies outside the section ({start:g} to "
                                       f"{start + music.duration:.2f} s)")
    beats = None if request.beat_map is None else np.asarray(request.beat_map, dtype=np.float64).reshape(-1) - start
    if beats is not None and not np.isfinite(beats).all():
        raise RequestError("beat_map", "the beat map must hold only finite times (s)")
    downbeat = None if request.downbeat is None else float(request.downbeat) - start
    return honour(music, request.bpm, request.meter, downbeat, beats)
