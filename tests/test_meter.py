"""Triple time or not, from how the music's sound repeats on its beat grid."""

from backend.music.features import SR, extract_features
from backend.music.meter import UNKNOWN, triple_time
from tests.builders import accompaniment


def test_an_oom_pah_pah_is_in_triple_time_and_an_oom_pah_is_not():
    waltz = extract_features(accompaniment("bcc"), SR)
    march = extract_features(accompaniment("bc"), SR)
    assert triple_time(waltz) > 0.8
    assert triple_time(march) < 0.2
    assert triple_time(waltz.slice(0, 150)) == UNKNOWN  # too few beats to tell
