"""Triple time or not: the downbeat tracker's meter, else how the music's sound repeats on its beat grid."""

import dataclasses

from backend.music.features import SR, extract_features
from backend.music.meter import UNKNOWN, triple_time
from tests.builders import accompaniment


def test_an_oom_pah_pah_is_in_triple_time_and_an_oom_pah_is_not():
    waltz = extract_features(accompaniment("bcc"), SR)
    march = extract_features(accompaniment("bc"), SR)
    assert triple_time(waltz) > 0.8
    assert triple_time(march) < 0.2
    assert triple_time(waltz.slice(0, 150)) == triple_time(waltz)  # a section keeps its song's meter
    # without the tracker's meter (the librosa fallback) the timbre cue needs more beats than 5 s hold
    assert triple_time(dataclasses.replace(waltz.slice(0, 150), meter=0)) == UNKNOWN
