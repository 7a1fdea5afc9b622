"""Triple time or not: does the music repeat every three beats (a waltz) or every two (cha-cha, rumba, tango)?

Dancers keep their rhythm in the music's cycle: real waltzers move once per three-beat bar, cha-cha and rumba dancers
once per two beats (metrics' lock_shares on the test songs), so the sampler's beat guidance needs to know which cycle
to pull a dance into. The first answer is the downbeat tracker's meter (backend.music.downbeats: 3/4 or 4/4, right
on all 39 Tang songs). Without it (the librosa fallback) the cue is timbre (backend.music.bar_cycle): a waltz's
accompaniment changes sound on a three-beat pattern (bass on one, chords on two and three), so its MFCCs, resampled
onto the beat grid, have more power at one cycle per three beats than at one per two. Other cues were weaker on the
paired ballroom songs (the onset envelope's accents, chroma, and the autocorrelation of either at lags 3 against 2
and 4).

The split was read off the train songs only, on librosa's beats: 27 of their 29 fall on their side of it (not W_10,
a waltz at -1.91, nor R_2, a rumba at -0.23); the 10 val and test songs all do, none nearer to it than 0.45. The
answer is soft (a logistic of the distance to the split, gentle), so a song near it gets both cycles, as when the
meter is unknown: of eight songs outside the set (librosa's examples) it calls a waltz triple (+2.44), a ragtime, a
drum-and-bass track and the Sugar Plum Fairy not (-1.7 to -2.6), a solo trumpet unknown (too few beats), and
Brahms' Hungarian Dance no. 5, in two, wrongly triple (-0.00); two more it calls triple (Vibe Ace +0.62, Let's Go
Fishin' +0.31), both in four by the tracker and tests/test_beat_tracker.py's checks.
"""

from __future__ import annotations

import numpy as np

from backend.music.bar_cycle import TRIPLE_SOFTNESS, TRIPLE_SPLIT, cycle_evidence
from backend.music.features import MFCC, MusicFeatures

UNKNOWN = 0.5
# The downbeat tracker's meter (backend.music.downbeats) was right on all 39 Tang songs; kept short of 1 so that the
# beat guidance still gives the two-beat step cycle of a waltz a little pull.
TRACKED_TRIPLE = 0.9


def triple_evidence(music: MusicFeatures) -> float | None:
    """cycle_evidence of a song's MFCCs on its beat grid."""
    return cycle_evidence(music.beat_frames, music.features[:, MFCC], music.num_frames)


def triple_time(music: MusicFeatures) -> float:
    """How sure (0..1) that `music` is in triple time: the downbeat tracker's meter when it found one, else the
    timbre cue's logistic; UNKNOWN (0.5) when there are too few beats to tell."""
    if music.meter in (3, 4):
        return TRACKED_TRIPLE if music.meter == 3 else 1.0 - TRACKED_TRIPLE
    evidence = triple_evidence(music)
    if evidence is None:
        return UNKNOWN
    return float(1.0 / (1.0 + np.exp(-(evidence - TRIPLE_SPLIT) / TRIPLE_SOFTNESS)))
