"""The dance style a song sounds like: a tempo vote of the train dances danced in the song's meter.

Tempo is the one cue that carries from one recording to another: ballroom styles are danced in set tempo ranges
(cha-cha 30-32 bars a minute, rumba 25-27, tango 31-33, each about +-3 %). Timbre and the beat's accent pattern name
the recording rather than the style on our few train songs. On 25-s excerpts of the cha-cha and rumba songs (each train
song left out of the vote in turn; scripts/eval_style.py), the earlier nearest train dance by tempo and mean MFCC
named 57 % right, mean MFCC alone 20 %, the accent pattern within the beat alone 17 %, this tempo vote 79 % (every val
and test excerpt; the misses are a rumba recorded at 130 BPM, a tango's tempo, and a cha-cha at 126 BPM, between the
one cha-cha left in the vote at 124 and the tango at 128).

The song's tempo is the mean of its PHRASE_BEATS-beat spans' tempi near their median (a train dance's, of its
phrases'): fractional, where the median of whole-frame beat intervals is not (14 and 15 frames at 30 fps are 128.6 and
120 BPM, which put cha-chas at 124-126 BPM and a tango at 128 on one value), and a stretch tracked at double or half
time does not move it. The vote folds octaves (a rumba heard at double time is still a rumba) and weighs each train
dance by a kernel of STYLE_WIDTH octaves around its own tempo, so a style with more dances near the song's tempo wins
where styles overlap.
"""

from __future__ import annotations

import numpy as np

PHRASE_BEATS = 4  # beats per tempo span: the figure library's two-bar phrases in a two-beat cycle
STYLE_WIDTH = 0.03  # octaves (about 2 % of tempo): the kernel of one train dance's vote
STEADY = 0.04  # span tempi within this fraction of their median make the song's tempo


def span_tempi(beat_frames: np.ndarray, fps: float, span: int = PHRASE_BEATS) -> np.ndarray:
    """Beats per minute over every `span`-beat stretch of `beat_frames` (fewer beats: over all of them)."""
    beats = np.asarray(beat_frames, dtype=np.float64)
    if len(beats) < 2:
        return np.zeros(0)
    span = min(span, len(beats) - 1)
    frames = beats[span:] - beats[:-span]
    return 60.0 * fps * span / np.maximum(frames, 1e-9)


def steady_tempo(tempi: np.ndarray) -> float:
    """The mean of the tempi within STEADY of their median (0 for none): fractional where the median alone steps by
    whole frames (a 4-beat span of 57, 58 or 59 frames is 126.3, 124.1 or 122.0 BPM), and deaf to stretches at
    double or half time."""
    tempi = np.asarray(tempi, dtype=np.float64)
    if not len(tempi):
        return 0.0
    median = float(np.sort(tempi)[(len(tempi) - 1) // 2])  # the low median: one of the tempi, so one is always kept
    return float(tempi[np.abs(tempi / median - 1.0) <= STEADY].mean())


def heard_tempo(beat_frames: np.ndarray, fps: float) -> float:
    """The song's tempo in beats per minute: the steady mean of its span tempi (0 without two beats)."""
    return steady_tempo(span_tempi(beat_frames, fps))


def octave_distance(bpm: float | np.ndarray, other: float | np.ndarray) -> np.ndarray:
    """|log2 tempo ratio| folded to [0, 0.5]: 90 and 180 BPM are 0 apart, 90 and 127 half an octave."""
    d = np.log2(np.maximum(bpm, 1e-9) / np.maximum(other, 1e-9))
    return np.abs((d + 0.5) % 1.0 - 0.5)


def style_scores(bpm: float, dance_tempi: np.ndarray, dance_styles: list[str]) -> dict[str, float]:
    """Each style's vote for a song at `bpm`: the sum over its train dances of a Gaussian of the folded distance."""
    d = octave_distance(bpm, np.asarray(dance_tempi, dtype=np.float64))
    w = np.exp(-0.5 * (d / STYLE_WIDTH) ** 2)
    scores: dict[str, float] = {}
    for style, weight in zip(dance_styles, w):
        scores[style] = scores.get(style, 0.0) + float(weight)
    return scores


def vote(bpm: float, dance_tempi: np.ndarray, dance_styles: list[str]) -> str:
    """The style with the largest vote (ties: the first by name). Folded distances are at most half an octave, so no
    kernel underflows and the nearest dance always outweighs farther ones but for a style with many more of them."""
    if bpm <= 0:
        raise ValueError("no tempo to vote on")
    if not len(dance_styles):
        raise ValueError("no train dances to vote")
    scores = style_scores(bpm, dance_tempi, dance_styles)
    return max(sorted(scores), key=scores.get)


def beat_ratio(bpm: float, dance_tempi: np.ndarray) -> float:
    """Dance beats per song beat. 0.5 (every other beat) where half the song's tempo lies nearer the median of its
    style's train dances than the tempo itself (on a log scale: above sqrt(2) times the median): a fast song, or one
    the tracker hears at double time (a rumba's figures on 180-BPM beats are a rumba at double speed). 2 (the beats
    and the midpoints between them) where twice the tempo lies nearer (below the median over sqrt(2)): a slow song, or
    one heard at half time (a cha-cha's figures on 62-BPM beats are a cha-cha in slow motion). Else 1.

    The median, not the nearest dance or a sum over them: the library holds dances cut at the wrong tempo (a rumba
    at 2/3 of its own, 57 BPM; four waltzes at double, 168-175), and either of those let one of them decide."""
    tempi = np.asarray(dance_tempi, dtype=np.float64)
    if bpm <= 0 or not len(tempi):
        return 1.0
    median = float(np.median(tempi))
    if bpm > np.sqrt(2.0) * median:
        return 0.5
    return 2.0 if bpm < median / np.sqrt(2.0) else 1.0
