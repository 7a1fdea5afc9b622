"""Song structure: sections (A, B, A', ...) from the features the Motion Expert already computes.

Segmentation is temporally constrained Ward clustering on beat-synchronous chroma and timbre (MFCC) vectors: adjacent
segments merge, cheapest first, until as many sections remain as the music has marked changes (novelty peaks; at
least one per 30 s), and none is shorter than 4 s.
Labelling compares sections by their harmonic course (the chroma trajectory resampled to 8 points): a section close
enough to an earlier one repeats its letter with a prime (A, A', A''); otherwise it gets the next letter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.music.features import CHROMA, MFCC, MusicFeatures

SECONDS_PER_SECTION = 15.0
MIN_SECTION_SECONDS = 4.0
REPEAT_SIMILARITY = 0.9  # mean cosine similarity of the chroma trajectories above which a section repeats another


@dataclass(frozen=True)
class Section:
    """A span of the song in frames (at the features' rate), with its label (e.g. "A", "B", "A'")."""

    start: int
    end: int
    label: str

    @property
    def letter(self) -> str:
        """The label without primes: sections with the same letter are the same music."""
        return self.label.rstrip("'")


def _blocks(music: MusicFeatures) -> np.ndarray:
    """Block boundaries (frames): the beats when there are enough of them, else half-second blocks."""
    n = music.num_frames
    beats = np.asarray(music.beat_frames, dtype=int)
    if len(beats) >= 8:
        edges = np.unique(np.concatenate([[0], beats[(beats > 0) & (beats < n)], [n]]))
    else:
        edges = np.unique(np.concatenate([np.arange(0, n, int(music.fps // 2)), [n]]))
    return edges


def _block_vectors(music: MusicFeatures, edges: np.ndarray) -> np.ndarray:
    """Per block: mean chroma and standardised MFCCs 1-12 (half weight), (B, 24)."""
    chroma = music.features[:, CHROMA]
    mfcc = music.features[:, MFCC][:, 1:13]
    mfcc = (mfcc - mfcc.mean(0)) / (mfcc.std(0) + 1e-6)
    rows = [np.concatenate([chroma[a:b].mean(0), 0.5 * mfcc[a:b].mean(0)]) for a, b in zip(edges[:-1], edges[1:])]
    return np.asarray(rows, dtype=np.float64)


def _ward_segments(x: np.ndarray, sizes: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Merge adjacent blocks (Ward cost, cheapest first) until `k` segments remain; (first, last+1) block ranges.
    Only the merged segment's two neighbour costs change per merge, so each step is one argmin."""
    sums = [x[i] * sizes[i] for i in range(len(x))]
    counts = [float(c) for c in sizes]
    spans = [(i, i + 1) for i in range(len(x))]

    def cost(i: int) -> float:
        ma, mb = sums[i] / counts[i], sums[i + 1] / counts[i + 1]
        return counts[i] * counts[i + 1] / (counts[i] + counts[i + 1]) * float(np.sum((ma - mb) ** 2))

    costs = [cost(i) for i in range(len(spans) - 1)]
    while len(spans) > k:
        j = int(np.argmin(costs))
        spans[j:j + 2] = [(spans[j][0], spans[j + 1][1])]
        sums[j:j + 2] = [sums[j] + sums[j + 1]]
        counts[j:j + 2] = [counts[j] + counts[j + 1]]
        del costs[j]
        if j < len(costs):
            costs[j] = cost(j)
        if j > 0:
            costs[j - 1] = cost(j - 1)
    return spans


def _novelty_peaks(x: np.ndarray, edges: np.ndarray, fps: float, min_seconds: float) -> np.ndarray:
    """Block indices where the music changes: peaks of a checkerboard kernel along the blocks' self-similarity
    (Foote's novelty): local maxima at least `min_seconds` apart and above the curve's mean + half its std."""
    z = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)
    sim = z @ z.T
    block = float(np.median(np.diff(edges)))
    size = max(2, int(round(4 * fps / block)))  # the kernel's half-width: about 4 s of blocks
    sign = np.concatenate([-np.ones(size), np.ones(size)])
    kernel = np.outer(sign, sign) * np.outer(np.hanning(2 * size), np.hanning(2 * size))
    padded = np.pad(sim, size, mode="edge")
    novelty = np.array([np.sum(kernel * padded[i:i + 2 * size, i:i + 2 * size]) for i in range(len(x))])
    threshold = novelty.mean() + 0.5 * novelty.std()
    gap = min_seconds * fps
    peaks: list[int] = []
    for i in np.argsort(-novelty):
        if novelty[i] < threshold:
            break
        local = novelty[max(0, i - 2):i + 3]
        inside = gap <= edges[i] <= edges[-1] - gap  # a quiet lead-in or fade-out is not a section
        if inside and novelty[i] >= local.max() and all(abs(edges[i] - edges[j]) >= gap for j in peaks):
            peaks.append(int(i))
    return np.sort(np.asarray(peaks, dtype=int))


def course(chroma: np.ndarray, points: int = 8) -> np.ndarray:
    """A span's feature course (e.g. chroma) at `points` evenly spaced times, each row unit length."""
    idx = np.linspace(0, len(chroma) - 1, points)
    t = np.stack([np.interp(idx, np.arange(len(chroma)), chroma[:, c]) for c in range(chroma.shape[1])], 1)
    return t / (np.linalg.norm(t, axis=1, keepdims=True) + 1e-9)


def similarity(music: MusicFeatures, a: tuple[int, int], b: tuple[int, int]) -> float:
    """How alike two frame spans' harmony is (1: the same): the mean cosine similarity of their chroma trajectories,
    the best over shifts of up to 1 s (section boundaries fall a beat or two apart between repeats)."""
    chroma = music.features[:, CHROMA]
    step = max(1, int(music.fps) // 4)
    ta = course(chroma[a[0]:a[1]])
    best = -1.0
    for d in range(-4 * step, 4 * step + 1, step):  # symmetric, through 0
        lo, hi = max(0, b[0] + d), min(len(chroma), b[1] + d)
        if hi - lo < 2:
            continue
        best = max(best, float(np.mean(np.sum(ta * course(chroma[lo:hi]), axis=1))))
    return best


def song_sections(music: MusicFeatures, seconds_per_section: float = SECONDS_PER_SECTION,
                  min_seconds: float = MIN_SECTION_SECONDS) -> list[Section]:
    """The song's sections in order, covering every frame, labelled A, B, A', ..."""
    n = music.num_frames
    if n < 2 * min_seconds * music.fps or music.silent:
        return [Section(0, n, "A")]
    edges = _blocks(music)
    x = _block_vectors(music, edges)
    # as many sections as the music's own changes suggest (novelty peaks), at least one per 2 x seconds_per_section
    k_novelty = len(_novelty_peaks(x, edges, music.fps, min_seconds)) + 1
    k = int(np.clip(max(k_novelty, round(n / music.fps / (2 * seconds_per_section))), 2, 16))
    spans = [(int(edges[a]), int(edges[b])) for a, b in _ward_segments(x, np.diff(edges).astype(float), k)]
    spans = _merge_short(music, spans, int(min_seconds * music.fps))
    labels: list[str] = []
    firsts: dict[str, tuple[int, int]] = {}
    for span in spans:
        best, best_sim = None, REPEAT_SIMILARITY
        for letter, first in firsts.items():
            length_ratio = (span[1] - span[0]) / (first[1] - first[0])
            sim = similarity(music, span, first)
            if 0.5 <= length_ratio <= 2.0 and sim >= best_sim:
                best, best_sim = letter, sim
        if best is None:
            best = chr(ord("A") + len(firsts)) if len(firsts) < 26 else f"S{len(firsts)}"
            firsts[best] = span
            labels.append(best)
        else:
            labels.append(best + "'" * sum(lab.rstrip("'") == best for lab in labels))
    return [Section(a, b, lab) for (a, b), lab in zip(spans, labels)]


def _merge_short(music: MusicFeatures, spans: list[tuple[int, int]], min_frames: int) -> list[tuple[int, int]]:
    """Fold sections shorter than `min_frames` into the more similar neighbour."""
    spans = list(spans)
    while len(spans) > 1:
        short = [i for i, (a, b) in enumerate(spans) if b - a < min_frames]
        if not short:
            break
        i = min(short, key=lambda j: spans[j][1] - spans[j][0])
        left = similarity(music, spans[i], spans[i - 1]) if i > 0 else -np.inf
        right = similarity(music, spans[i], spans[i + 1]) if i + 1 < len(spans) else -np.inf
        j = i - 1 if left >= right else i + 1
        lo, hi = min(i, j), max(i, j)
        spans[lo:hi + 1] = [(spans[lo][0], spans[hi][1])]
    return spans
