"""Does it move like a dancer (metrics.md section 11): figure distance, longest near-verbatim run, acceleration.

Windows of 2 s (60 frames at 30 fps) every 0.5 s. Each window is put in its own frame: the root's x/z at its first
frame subtracted, turned about y so that frame's hip line (left hip - right hip) points along +x; every 3rd frame is
kept. Its points per kept frame: the 23 non-root joints relative to the root, plus the root itself (the root path,
height included), so 20 frames x 24 points. The figure distance of a window is its Euclidean distance to the nearest
train window divided by sqrt(480): an rms in metres per point. The root joint relative to itself (always zero) is not a
point, so it does not dilute the rms.

A dance's figure distance is the median over its windows; a set's is the median over its dances. The longest
near-verbatim run is the longest chain of consecutive windows whose nearest train windows are all under 6 cm and in
one train dance at offsets advancing 0.5-1 s per step; its length is (windows - 1) x 0.5 s + 2 s. The acceleration
is the median over joints and frames of |second difference| x fps^2 at 30 fps (a set's: the mean of its dances', as
cleanliness.py reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rigs.motion import Motion

FPS = 30.0
WINDOW = 60  # frames: 2 s
STEP = 15  # frames: 0.5 s
KEEP = 3  # every 3rd frame
NEAR = 0.06  # m: a window this close to its nearest train window is near-verbatim
ADVANCE = (15, 30)  # frames a verbatim chain's train offset advances per step (0.5-1 s)
L_HIP, R_HIP = 1, 2
POINTS = (WINDOW // KEEP) * 24  # 20 kept frames x (23 root-relative joints + the root path)
BLOCK = 512  # query windows per matrix product: bounds memory at BLOCK x train windows


def joints_30fps(motion: Motion) -> np.ndarray:
    """(T, 24, 3) joint positions at 30 fps."""
    return motion.resample(FPS).joint_positions()


def window_starts(frames: int) -> np.ndarray:
    """First frames of the whole windows of a dance `frames` long."""
    return np.arange(0, frames - WINDOW + 1, STEP)


def window_features(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1440) canonical window features of (T, 24, 3) joints at 30 fps, and the windows' first frames (N,)."""
    joints = np.asarray(joints, dtype=np.float64)
    starts = window_starts(len(joints))
    if not len(starts):
        return np.zeros((0, POINTS * 3)), starts
    idx = starts[:, None] + np.arange(0, WINDOW, KEEP)[None, :]  # (N, 20)
    w = joints[idx]  # (N, 20, 24, 3)
    first = joints[starts]  # (N, 24, 3)
    hip = first[:, L_HIP] - first[:, R_HIP]
    angle = np.arctan2(hip[:, 2], hip[:, 0])  # turning about y by this maps the hip line onto +x
    c, s = np.cos(angle), np.sin(angle)
    root = w[:, :, :1, :]
    body = w[:, :, 1:, :] - root  # (N, 20, 23, 3): root-relative joints
    path = root - np.stack([first[:, 0, 0], np.zeros(len(starts)), first[:, 0, 2]], axis=-1)[:, None, None, :]
    pts = np.concatenate([body, path], axis=2)  # (N, 20, 24, 3)
    x, z = pts[..., 0], pts[..., 2]
    cc, ss = c[:, None, None], s[:, None, None]
    out = np.stack([cc * x + ss * z, pts[..., 1], -ss * x + cc * z], axis=-1)
    return out.reshape(len(starts), -1), starts


class FigureIndex:
    """The train windows: features, which dance each comes from and where it starts."""

    def __init__(self, joints: list[np.ndarray], names: list[str] | None = None):
        feats, dance, start = [], [], []
        for i, j in enumerate(joints):
            f, s = window_features(j)
            feats.append(f)
            dance.append(np.full(len(s), i))
            start.append(s)
        self.features = np.concatenate(feats) if feats else np.zeros((0, POINTS * 3))
        self.dance = np.concatenate(dance).astype(np.int64) if dance else np.zeros(0, np.int64)
        self.start = np.concatenate(start).astype(np.int64) if start else np.zeros(0, np.int64)
        self.sq = (self.features ** 2).sum(axis=1)
        self.names = list(names) if names is not None else [str(i) for i in range(len(joints))]

    @classmethod
    def from_motions(cls, motions: list[Motion], names: list[str] | None = None) -> "FigureIndex":
        """The index of `motions` (resampled to 30 fps)."""
        return cls([joints_30fps(m) for m in motions], names)

    def nearest(self, features: np.ndarray, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """rms distance (m) of each query window to its nearest train window, and that window's index.

        `exclude`: a dance of the index whose windows are not candidates (scoring a train dance against the others).
        """
        q = np.asarray(features, dtype=np.float64)
        dist, best = np.full(len(q), np.inf), np.full(len(q), -1, dtype=np.int64)
        if not len(q) or not len(self.features):
            return dist, best
        penalty = np.where(self.dance == exclude, np.inf, 0.0) if exclude is not None else 0.0
        for a in range(0, len(q), BLOCK):
            block = q[a:a + BLOCK]
            d2 = (block ** 2).sum(1)[:, None] + self.sq[None, :] - 2.0 * block @ self.features.T + penalty
            best[a:a + BLOCK] = np.argmin(d2, axis=1)
        ok = best >= 0
        if exclude is not None:
            ok &= self.dance[best] != exclude
        best[~ok] = -1
        # the winner's distance recomputed directly: the expanded form loses precision near zero (a copied window)
        dist[ok] = np.linalg.norm(q[ok] - self.features[best[ok]], axis=1) / np.sqrt(POINTS)
        return dist, best


def longest_run(dist: np.ndarray, dance: np.ndarray, start: np.ndarray, near: float = NEAR) -> float:
    """Seconds of the longest near-verbatim chain, given each query window's nearest distance, dance and offset."""
    best, run = 0, 0
    for i in range(len(dist)):
        if not dist[i] < near:
            run = 0
            continue
        chained = (run > 0 and dance[i] == dance[i - 1]
                   and ADVANCE[0] <= start[i] - start[i - 1] <= ADVANCE[1])
        run = run + 1 if chained else 1
        best = max(best, run)
    return 0.0 if best == 0 else (best - 1) * STEP / FPS + WINDOW / FPS


def median_acceleration(joints: np.ndarray, fps: float = FPS) -> float:
    """Median joint acceleration (m/s^2) over joints and frames, from second differences."""
    if len(joints) < 3:
        return float("nan")
    acc = np.linalg.norm(joints[2:] - 2 * joints[1:-1] + joints[:-2], axis=-1) * fps ** 2
    return float(np.median(acc))


@dataclass
class FigureScore:
    """Section 11 figures of one dance."""

    distance: float  # m, median over windows
    verbatim: float  # s, the longest near-verbatim run
    acceleration: float  # m/s^2, median over joints and frames
    windows: int


def figure_score(index: FigureIndex, joints: np.ndarray, exclude: int | None = None) -> FigureScore:
    """Score (T, 24, 3) joints at 30 fps against `index`."""
    feats, _ = window_features(joints)
    dist, best = index.nearest(feats, exclude)
    ok = best >= 0
    safe = np.where(ok, best, 0)
    run = longest_run(np.where(ok, dist, np.inf), index.dance[safe], index.start[safe])
    median = float(np.median(dist)) if len(dist) else float("nan")
    return FigureScore(median, run, median_acceleration(joints), len(dist))


def score_motion(index: FigureIndex, motion: Motion, exclude: int | None = None) -> FigureScore:
    """Score a Motion (any frame rate) against `index`."""
    return figure_score(index, joints_30fps(motion), exclude)


@dataclass
class FigureRow:
    """Section 11 figures over a set of dances."""

    name: str
    n: int
    distance: float  # m, median over dances
    distance_lo: float  # m, the closest dance's
    distance_hi: float  # m, the farthest dance's
    verbatim: float  # s, the longest run of any dance
    verbatim_median: float  # s, median over dances
    acceleration: float  # m/s^2, mean over dances


def summarise(name: str, scores: list[FigureScore]) -> FigureRow:
    """The set figures of per-dance scores."""
    d = np.array([s.distance for s in scores])
    v = np.array([s.verbatim for s in scores])
    return FigureRow(name, len(scores), float(np.median(d)), float(d.min()), float(d.max()), float(v.max()),
                     float(np.median(v)), float(np.nanmean([s.acceleration for s in scores])))


def score_set(name: str, index: FigureIndex, motions: list[Motion]) -> FigureRow:
    """The set figures of `motions` against `index`."""
    return summarise(name, [score_motion(index, m) for m in motions])


def format_figures(rows: list[FigureRow], real: FigureRow | None = None):
    """A rich table of section 11 rows; acceleration as a ratio to `real` when given."""
    from rich.table import Table

    table = Table(title="moves like a dancer (metrics.md 11): figure distance to the nearest 2-s train stretch, "
                        "longest near-verbatim run, median joint acceleration")
    for col in ("row", "N", "figure dist m (median)", "range", "longest verbatim s", "median verbatim s",
                "accel m/s^2", "accel / real"):
        table.add_column(col, justify="right")
    for r in rows:
        ratio = f"{r.acceleration / real.acceleration:.2f}" if real else ""
        table.add_row(r.name, str(r.n), f"{r.distance:.3f}", f"{r.distance_lo:.3f}-{r.distance_hi:.3f}",
                      f"{r.verbatim:.1f}", f"{r.verbatim_median:.1f}", f"{r.acceleration:.2f}", ratio)
    return table
