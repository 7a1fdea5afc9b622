"""Triple time or not, from how the music's sound repeats on its beat grid."""

import numpy as np

from backend.music.features import SR, extract_features
from backend.music.meter import UNKNOWN, triple_time


def _accompaniment(pattern: str, bpm: float = 90.0, seconds: float = 40.0) -> np.ndarray:
    """A bass note ("b") or a chord ("c") on each beat, cycling through `pattern` ("bcc": oom-pah-pah)."""
    beat = 60.0 / bpm
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for k in range(int(seconds / beat)):
        start = k * beat
        local = t[(t >= start) & (t < start + 0.3)] - start
        env = np.exp(-local * 12.0)
        notes = (55.0, 110.0) if pattern[k % len(pattern)] == "b" else (440.0, 554.4, 659.3, 880.0)
        tone = sum(np.sin(2 * np.pi * f * local) for f in notes) / len(notes)
        y[(t >= start) & (t < start + 0.3)] += env * tone
    return (0.5 * y).astype(np.float32)


def test_an_oom_pah_pah_is_in_triple_time_and_an_oom_pah_is_not():
    waltz = extract_features(_accompaniment("bcc"), SR)
    march = extract_features(_accompaniment("bc"), SR)
    assert triple_time(waltz) > 0.8
    assert triple_time(march) < 0.2
    assert triple_time(waltz.slice(0, 150)) == UNKNOWN  # too few beats to tell
