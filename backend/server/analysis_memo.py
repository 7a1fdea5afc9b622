"""The analyses of the songs a server process danced to last, so that another take of the same song skips analysis.

An animator's loop is one song danced again and again: another seed, another diversity, an edit, a keyed pose. Each
is a new job carrying the same bytes, and the music analysis (decode, librosa's features, the beat tracker) was about
half of a warm 60-s job (1.0 of 2.4 s). The analysis depends only on the file's bytes and the section, so it is kept
by (sha256 of the bytes, start, end). A request's beat overrides (tempo, meter, downbeat, beat map) are applied to the
music after it comes out of the memo, so they never leak from one job into the next.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections import OrderedDict
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from backend.music.features import MusicFeatures

MEMO_SONGS = 8  # analyses kept: a few songs' worth of takes
MEMO_BYTES = 64 << 20  # and at most this much of them (a 10-min song's analysis is about 3 MB)

Key = tuple[str, float, float | None]


def song_key(audio: np.ndarray, start: float, end: float | None) -> Key:
    """The memo's key of a section of a song given as its file's bytes."""
    digest = hashlib.sha256(memoryview(np.ascontiguousarray(audio)).cast("B")).hexdigest()
    return digest, float(start), None if end is None else float(end)


def nbytes(value) -> int:
    """The bytes of the arrays inside `value` (a MusicFeatures and what it carries)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if is_dataclass(value):
        return sum(nbytes(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0


class AnalysisMemo:
    """The last MEMO_SONGS analyses (MEMO_BYTES at most), least recently used dropped first; thread-safe."""

    def __init__(self, songs: int = MEMO_SONGS, max_bytes: int = MEMO_BYTES):
        self.songs, self.max_bytes = songs, max_bytes
        self._kept: OrderedDict[Key, tuple["MusicFeatures", int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def analysis(self, key: Key, analyse: Callable[[], "MusicFeatures"]) -> "MusicFeatures":
        """The music of `key`: a copy of the kept analysis, or `analyse()`'s, kept for later (errors are not kept)."""
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                self.hits += 1
                return copy.deepcopy(kept[0])  # a job may change its music; the kept one stays as analysed
            self.misses += 1
        music = analyse()  # outside the lock: another job's hit need not wait for this analysis
        size = nbytes(music)
        if size <= self.max_bytes:
            with self._lock:
                self._kept[key] = (copy.deepcopy(music), size)
                self._kept.move_to_end(key)
                while len(self._kept) > self.songs or self.held_bytes() > self.max_bytes:
                    self._kept.popitem(last=False)
        return music

    def held_bytes(self) -> int:
        """The bytes of the analyses kept now."""
        return sum(size for _, size in self._kept.values())

    def __len__(self) -> int:
        return len(self._kept)
