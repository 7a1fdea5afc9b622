"""The figure library: train dances (and their mirror images) cut into two-bar phrases at their bar lines.

A phrase runs from one bar line to the bar line two bars later; one starts at every bar line, so phrases overlap by a
bar and a song bar can be met by a phrase starting on it whatever the phrase parity. A bar is 3 beats in triple time
and 2 otherwise (meter.py's cycle: cha-cha, rumba and tango dancers repeat every two beats), so a phrase is 6 beats
of a waltz (a box) or 4 beats of the others (one 4/4 bar, a cha-cha basic). The meter of a train dance comes from its
style label (triple_time is right on 27 of the 29 train songs; the label on all); songs without one use triple_time.

Which beat is the bar line is not in the data. A dance's bar lines are put on the beat phase where its pose recurs
best (the smallest spread of the canonical pose over the bar lines): that is where its figures start and end, so the
phrases join each other there (a motion graph wants its cuts at recurring poses, ChoreoMaster's criterion).

Each phrase keeps its style, tempo, meter, beat frames (for time-warping onto a song's beats), rhythm and energy
features on a grid of 4 samples per beat (the song's onset envelope, the dancer's mean joint speed), mean timbre, arm
energy, travel and turn, and its motion beats (the speed minima the BAS metric finds in the
whole dance, up to a beat either side), which the retrieval's time warp puts on the song's beats. Boundary features at every bar line: the pose (joints relative to the root, turned so the
hip line lies along +x, plus root height) and the joint velocities in the same frame. The motion graph links phrase A
to phrase B when A's end boundary and B's start boundary lie within JOIN_RMS of each other (B turned and moved so its
first frame stands where A's last does); consecutive phrases of one dance join at cost 0.

Stored as one .npz (`save`/`load`), rotations as axis-angle quantised to 1 mrad and delta-coded along time (a few
MB), versioned with the hash of the weights' config.json and of the train dances it was cut from.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend.metrics.beats import motion_beats
from backend.motion.representation import mirror
from rigs import rotations as rot
from rigs.motion import Motion

FORMAT = 1
FPS = 30.0
BARS_PER_PHRASE = 2
SAMPLES_PER_BEAT = 4
MAX_BEATS = 6  # 2 bars of 3
MAX_MINIMA = 12  # motion beats (speed minima) kept per phrase; a phrase of 6 beats has 2-6
VELOCITY_SECONDS = 0.1  # velocities (m/s) weigh in the join cost as the distance they cover in this long
JOIN_RMS = 0.10  # m, rms over pose and weighted velocity points: a median phrase then has 8 same-style successors
ANGLE_STEP = 1e-3  # rad, axis-angle quantisation (joint errors well under a millimetre)
L_HIP, R_HIP = 1, 2
ARMS = (18, 19, 20, 21, 22, 23)  # elbows, wrists, hands
STYLE_METER = {"waltz": 3}  # beats per bar by style; the others dance in a two-beat cycle


def beats_per_bar(style: str | None, triple: float) -> int:
    """3 or 2: from the style when known, else from meter.triple_time's answer."""
    if style:
        return STYLE_METER.get(style, 2)
    return 3 if triple > 0.5 else 2


def hip_yaw(joints: np.ndarray) -> np.ndarray:
    """Yaw (radians about +y) a body faces by its hip line (left hip - right hip along +x when facing +z)."""
    line = joints[..., L_HIP, :] - joints[..., R_HIP, :]
    return np.arctan2(-line[..., 2], line[..., 0])


def _turn(points: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Points (..., K, 3) turned about +y by `yaw` (...)."""
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x, z = points[..., 0], points[..., 2]
    return np.stack([c * x + s * z, points[..., 1], -s * x + c * z], axis=-1)


def boundary_features(joints: np.ndarray, frames: np.ndarray, fps: float = FPS) -> np.ndarray:
    """(K, 48, 3) pose (23 root-relative joints + root height) and weighted velocity (24 joints) at `frames`."""
    f = np.asarray(frames, dtype=int)
    j = joints[f]
    yaw = -hip_yaw(j)  # turning by minus the facing puts the hip line on +x
    pose = _turn(j[:, 1:] - j[:, :1], yaw)
    height = np.zeros((len(f), 1, 3))
    height[:, 0, 1] = j[:, 0, 1]
    lo, hi = np.maximum(f - 1, 0), np.minimum(f + 1, len(joints) - 1)  # central differences inside the dance
    vel = (joints[hi] - joints[lo]) * fps / np.maximum(hi - lo, 1)[:, None, None]
    vel = _turn(vel, yaw) * VELOCITY_SECONDS
    return np.concatenate([pose, height, vel], axis=1)


def join_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """rms (m) between boundary features a (N, 48, 3) and b (M, 48, 3): (N, M)."""
    fa, fb = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    d2 = (fa ** 2).sum(1)[:, None] + (fb ** 2).sum(1)[None, :] - 2.0 * fa @ fb.T
    return np.sqrt(np.maximum(d2, 0.0) / a.shape[1])


def pose_phase(joints: np.ndarray, beats: np.ndarray, per_bar: int) -> int:
    """The beat phase (0..per_bar-1) whose beats see the most recurring pose: the smallest pose spread."""
    spreads = []
    for k in range(per_bar):
        f = beats[k::per_bar]
        f = f[(f > 0) & (f < len(joints) - 1)]
        if len(f) < 2:
            spreads.append(np.inf)
            continue
        pose = boundary_features(joints, f)[:, :24].reshape(len(f), -1)
        spreads.append(float(((pose - pose.mean(0)) ** 2).sum(1).mean()))
    return int(np.argmin(spreads))


def _grid(beats: np.ndarray, n_beats: int) -> np.ndarray:
    """Frames (n_beats * SAMPLES_PER_BEAT,) spaced evenly within each beat of `beats` (n_beats + 1 frames)."""
    t = np.arange(n_beats * SAMPLES_PER_BEAT) / SAMPLES_PER_BEAT
    return np.interp(t, np.arange(len(beats)), beats.astype(np.float64))


def _padded(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan, dtype=np.float32)
    out[:len(x)] = x
    return out


@dataclass
class DanceSource:
    """One train dance as the library needs it: motion at 30 fps, beat frames, onset envelope and MFCCs."""

    name: str
    style: str
    motion: Motion
    beats: np.ndarray  # (B,) frames
    envelope: np.ndarray  # (T,) onset envelope
    mfcc: np.ndarray  # (T, 20)
    triple: float = 0.5  # meter.triple_time of its song
    downbeats: np.ndarray | None = None  # (D,) frames of its song's bar lines (the downbeat tracker's), if known


@dataclass
class FigureLibrary:
    """Phrases (index ranges into the source dances or their mirror images), their features and the motion graph."""

    names: list[str]
    styles: list[str]
    motions: Sequence[Motion]  # the source dances as danced (a loaded library makes each on first use)
    arrays: dict[str, np.ndarray]  # per phrase: see PHRASE_FIELDS; and the graph: indptr, successors, cost
    meta: dict = field(default_factory=dict)
    _mirrored: dict[int, Motion] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.arrays["dance"])

    def source(self, dance: int, mirrored: bool) -> Motion:
        """A source dance, or its mirror image (made once, on first use)."""
        if not mirrored:
            return self.motions[dance]
        if dance not in self._mirrored:
            self._mirrored[dance] = mirror(self.motions[dance])
        return self._mirrored[dance]

    def root_track(self, dance: int) -> tuple[np.ndarray, np.ndarray]:
        """A source dance's root rotations (T, 4) and translations (T, 3), without making the whole Motion."""
        if isinstance(self.motions, StoredMotions):
            return self.motions.root_track(dance)
        m = self.motions[dance]
        return m.rotations[:, 0], m.root_translation

    def phrase_motion(self, p: int, end: bool = True) -> Motion:
        """Phrase `p` as danced: frames start..stop (the next bar line's frame included when `end`)."""
        a = self.arrays
        m = self.source(int(a["dance"][p]), bool(a["mirrored"][p]))
        return m.slice(int(a["start"][p]), int(a["stop"][p]) + (1 if end else 0))

    def phrase_beats(self, p: int) -> np.ndarray:
        """Beat frames of phrase `p` relative to its start (bar lines at both ends included)."""
        b = self.arrays["beats"][p]
        return b[np.isfinite(b)]

    def successors(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """Phrases that may follow `p` and their join costs (m)."""
        a = self.arrays
        lo, hi = a["indptr"][p], a["indptr"][p + 1]
        return a["successors"][lo:hi], a["cost"][lo:hi].astype(np.float64)

    def save(self, path: str | Path) -> Path:
        """One compressed .npz; written under a temporary name, then renamed."""
        path = Path(path)
        lengths = np.array([m.num_frames for m in self.motions])
        aa = np.concatenate([m.axis_angle() for m in self.motions]).astype(np.float64)
        q = np.round(aa / ANGLE_STEP).astype(np.int64).astype(np.int16)  # |aa| <= pi fits at 1 mrad
        # small steps along time, one joint channel after another: zlib packs them to a fifth (frame-major: a third)
        delta = np.ascontiguousarray(np.diff(q, axis=0, prepend=np.zeros_like(q[:1])).transpose(1, 2, 0))
        contacts = np.concatenate([m.contacts if m.contacts is not None else np.zeros((m.num_frames, 4))
                                   for m in self.motions])
        arrays = dict(self.arrays)
        arrays.update(
            lengths=lengths, rot_delta=delta,
            root=np.concatenate([m.root_translation for m in self.motions]).astype(np.float32),
            contacts=np.round(np.clip(contacts, 0, 1) * 255).astype(np.uint8),
            meta=np.asarray(json.dumps({**self.meta, "format": FORMAT, "names": self.names, "styles": self.styles})))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, config_sha: str | None = None) -> "FigureLibrary":
        """Read a library; with `config_sha`, refuse one built for other weights."""
        with np.load(path, allow_pickle=False) as d:
            meta = json.loads(str(d["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: figure library format {meta.get('format')}, this code reads {FORMAT}")
            if config_sha is not None and meta.get("config_sha") != config_sha:
                raise ValueError(f"{path} was built for other weights (config {meta.get('config_sha')}, these "
                                 f"{config_sha}): rebuild it with scripts/build_figure_library.py")
            q = np.cumsum(d["rot_delta"], axis=-1, dtype=np.int16).transpose(2, 0, 1)
            root, contacts, lengths = d["root"], d["contacts"], d["lengths"]
            arrays = {k: d[k] for k in d.files if k not in ("meta", "rot_delta", "root", "contacts", "lengths")}
        motions = StoredMotions(q, root, contacts, np.concatenate([[0], np.cumsum(lengths)]))
        names, styles = meta.pop("names"), meta.pop("styles")
        return cls(names, styles, motions, arrays, meta)


class StoredMotions(Sequence):
    """A loaded library's source dances, each made a Motion on first use: a dance touches the phrases of a few of
    them, and making all 29 (1.3 M rotations) was most of a cold run's 0.24 s library load."""

    def __init__(self, quantised: np.ndarray, root: np.ndarray, contacts: np.ndarray, edges: np.ndarray):
        self._q, self._root, self._contacts, self._edges = quantised, root, contacts, edges  # (T, J, 3) int16 ...
        self._made: dict[int, Motion] = {}

    def __len__(self) -> int:
        return len(self._edges) - 1

    def _index(self, d) -> int:
        d = operator.index(d)
        if not -len(self) <= d < len(self):
            raise IndexError(f"source dance {d} of {len(self)}")
        return d % len(self)

    def _frames(self, d: int) -> slice:
        return slice(int(self._edges[d]), int(self._edges[d + 1]))

    def __getitem__(self, d):
        if isinstance(d, slice):
            return [self[i] for i in range(*d.indices(len(self)))]
        d = self._index(d)
        if d not in self._made:  # two threads may both make it: the same Motion, kept once
            f = self._frames(d)
            self._made[d] = Motion(_quaternions(self._q[f]), self._root[f], fps=FPS,
                                   contacts=self._contacts[f] / 255.0)
        return self._made[d]

    def root_track(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """Dance `d`'s root rotations (T, 4) and translations (T, 3), as its Motion would hold them."""
        f = self._frames(self._index(d))
        q = _quaternions(self._q[f, :1])[:, 0]
        norm = np.linalg.norm(q, axis=-1, keepdims=True)
        return np.where(np.abs(norm - 1.0) > 1e-6, q / norm, q), self._root[f]  # Motion's renormalisation


def _quaternions(quantised: np.ndarray) -> np.ndarray:
    """(T, J, 4) float32 unit quaternions of axis-angles quantised to ANGLE_STEP."""
    return rot.axis_angle_to_quaternion(quantised.astype(np.float32) * np.float32(ANGLE_STEP)).astype(np.float32)


def config_hash(weights: str | Path) -> str:
    """First 16 hex digits of the sha256 of a weights folder's config.json."""
    return hashlib.sha256((Path(weights) / "config.json").read_bytes()).hexdigest()[:16]


def train_sources(dataset) -> list[DanceSource]:
    """A DanceDataset's train split as library sources: motion, beats, onset envelope, MFCCs, the meter evidence and
    the bar lines, as the music analysis gives them now (scripts/build_figure_library.py builds from these)."""
    from backend.music.features import ENVELOPE, MFCC
    from backend.music.meter import triple_time

    return [DanceSource(c.name, c.style, c.motion, np.asarray(c.music.beat_frames),
                        c.music.features[:, ENVELOPE][:, 0].astype(np.float64),
                        c.music.features[:, MFCC].astype(np.float64), triple_time(c.music),
                        np.asarray(c.music.downbeat_frames))
            for c in dataset.split("train")]


def data_hash(sources: list[DanceSource]) -> str:
    """First 16 hex digits of a hash of the source dances (names, motions, beats, downbeats)."""
    h = hashlib.sha256()
    for s in sources:
        h.update(s.name.encode())
        h.update(np.ascontiguousarray(s.motion.rotations, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(s.motion.root_translation, dtype=np.float32).tobytes())
        h.update(np.asarray(s.beats, dtype=np.int64).tobytes())
        if s.downbeats is not None:
            h.update(b"downbeats" + np.asarray(s.downbeats, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _speeds(joints: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(T,) mean joint speed and mean arm speed relative to the root (m/s), the last frame repeating."""
    v = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps
    rel = joints[:, list(ARMS)] - joints[:, :1]
    arms = np.linalg.norm(np.diff(rel, axis=0), axis=-1).mean(1) * fps
    pad = lambda x: np.concatenate([x, x[-1:]])  # noqa: E731
    return pad(v.mean(1)), pad(arms)


def _minima(beats: np.ndarray, a: int, b: int, margin: int) -> np.ndarray:
    """The dance's motion beats from `margin` frames before frame `a` to as long after `b`, relative to `a`,
    padded with -32768 to MAX_MINIMA."""
    m = beats[(beats >= a - margin) & (beats <= b + margin)][:MAX_MINIMA] - a
    out = np.full(MAX_MINIMA, -32768, dtype=np.int16)
    out[:len(m)] = m
    return out


def beats_since_downbeat(beats: np.ndarray, downbeats: np.ndarray | None) -> np.ndarray:
    """(B,) each beat's place in its bar: beats since the last downbeat at or before it (0 on a downbeat); beats
    before the first downbeat or after the last count on from it modulo the usual bar. All -1 without two downbeats
    among the beats."""
    beats = np.asarray(beats, dtype=int)
    on = np.flatnonzero(np.isin(beats, np.asarray(downbeats if downbeats is not None else [], dtype=int)))
    if len(on) < 2:
        return np.full(len(beats), -1, dtype=int)
    idx = np.arange(len(beats))
    last = np.searchsorted(on, idx, side="right") - 1
    bar = max(int(np.median(np.diff(on))), 1)
    places = np.where(last >= 0, idx - on[np.maximum(last, 0)], (idx - on[0]) % bar)
    after = idx > on[-1]  # past the last downbeat (the tracker stopped before the dance): the usual bar goes on
    places[after] = (idx[after] - on[-1]) % bar
    return places


def _cut(source: DanceSource, joints: np.ndarray, per_bar: int) -> list[tuple[int, int, np.ndarray, int]]:
    """(start, stop, beats, place) of every two-bar phrase: bar lines on every `per_bar`-th beat from the phase whose
    poses recur most (pose_phase: the joins there are smoothest); `place` is the first beat's place in its song's bar
    (beats_since_downbeat; -1 without downbeats), so that retrieval can keep the figure where its dancer put it."""
    beats = np.asarray(source.beats, dtype=int)
    beats = beats[(beats >= 1) & (beats <= len(joints) - 2)]  # a boundary needs a frame either side
    places = beats_since_downbeat(beats, source.downbeats)
    phase = pose_phase(joints, beats, per_bar)
    n = BARS_PER_PHRASE * per_bar
    return [(int(beats[i]), int(beats[i + n]), beats[i:i + n + 1] - beats[i], int(places[i]))
            for i in range(phase, len(beats) - n, per_bar)]


def build(sources: list[DanceSource], config_sha: str = "", join_rms: float = JOIN_RMS,
          mirrors: bool = True) -> FigureLibrary:
    """Cut `sources` (and their mirror images) into phrases, describe them and link them into a motion graph."""
    style_names = sorted({s.style for s in sources})
    cols: dict[str, list] = {k: [] for k in ("dance", "mirrored", "start", "stop", "per_bar", "style", "tempo",
                                             "beats", "accent", "speed", "timbre", "energy", "arms", "travel",
                                             "turn", "start_boundary", "end_boundary", "minima", "bar_beat")}
    boundaries: list[np.ndarray] = []
    motions = []
    for d, src in enumerate(sources):
        motion = src.motion.resample(FPS)
        motions.append(motion)
        per_bar = beats_per_bar(src.style, src.triple)
        joints = motion.joint_positions()
        phrases = _cut(src, joints, per_bar)  # the mirror image shares its bar lines
        scale = max(float(np.percentile(src.envelope, 95)), 1e-6)  # accents loudness-free, as rhythm.py scales them
        for mirrored in ((False, True) if mirrors else (False,)):
            j = mirror(motion).joint_positions() if mirrored else joints
            speed, arms = _speeds(j, FPS)
            accents = motion_beats(j)  # the BAS metric's motion beats, for the time warp
            yaw = np.unwrap(hip_yaw(j))
            lines = sorted({a for a, _, _, _ in phrases} | {b for _, b, _, _ in phrases})
            first = sum(len(b) for b in boundaries)
            boundaries.append(boundary_features(j, np.array(lines, dtype=int)))
            where = {f: first + i for i, f in enumerate(lines)}
            for a, b, beats, place in phrases:
                grid = _grid(beats + a, len(beats) - 1)
                frames = np.arange(len(j))
                cols["dance"].append(d)
                cols["mirrored"].append(mirrored)
                cols["start"].append(a)
                cols["stop"].append(b)
                cols["per_bar"].append(per_bar)
                cols["style"].append(style_names.index(src.style))
                cols["tempo"].append(60.0 * FPS / float(np.mean(np.diff(beats))))
                cols["beats"].append(_padded(beats.astype(np.float32), MAX_BEATS + 1))
                cols["accent"].append(_padded(np.interp(grid, frames, src.envelope) / scale,
                                              MAX_BEATS * SAMPLES_PER_BEAT))
                cols["speed"].append(_padded(np.interp(grid, frames, speed), MAX_BEATS * SAMPLES_PER_BEAT))
                cols["timbre"].append(src.mfcc[a:b].mean(0))
                cols["energy"].append(speed[a:b].mean())
                cols["arms"].append(arms[a:b].mean())
                cols["travel"].append(np.linalg.norm(np.diff(j[a:b + 1, 0, [0, 2]], axis=0), axis=-1).sum())
                cols["turn"].append(yaw[b] - yaw[a])
                cols["minima"].append(_minima(accents, a, b, int(np.diff(beats).mean())))
                cols["start_boundary"].append(where[a])
                cols["end_boundary"].append(where[b])
                cols["bar_beat"].append(min(place, 127))  # int8: a place past any bar matches no song's
    dtypes = dict(dance=np.int16, mirrored=bool, start=np.int32, stop=np.int32, per_bar=np.int8, style=np.int8,
                  tempo=np.float32, beats=np.float32, accent=np.float16, speed=np.float16, timbre=np.float16,
                  energy=np.float32, arms=np.float32, minima=np.int16, travel=np.float32, turn=np.float32, start_boundary=np.int32,
                  end_boundary=np.int32, bar_beat=np.int8)
    arrays = {k: np.asarray(v, dtype=dtypes[k]) for k, v in cols.items()}
    bounds = np.concatenate(boundaries) if boundaries else np.zeros((0, 48, 3))
    arrays["boundary"] = bounds.astype(np.float16)
    arrays.update(graph(arrays, bounds, join_rms))
    meta = {"config_sha": config_sha, "data_sha": data_hash(sources), "join_rms": join_rms,
            "velocity_seconds": VELOCITY_SECONDS, "bars_per_phrase": BARS_PER_PHRASE, "style_names": style_names}
    return FigureLibrary([s.name for s in sources], [s.style for s in sources], motions, arrays, meta)


def graph(arrays: dict[str, np.ndarray], bounds: np.ndarray, join_rms: float) -> dict[str, np.ndarray]:
    """CSR motion graph: phrase p may be followed by q when p's end and q's start boundaries lie within `join_rms`
    and they share a meter; a phrase never follows itself."""
    cost = join_cost(bounds, bounds) if len(bounds) else np.zeros((0, 0))
    ends, starts, meter = arrays["end_boundary"], arrays["start_boundary"], arrays["per_bar"]
    indptr, succ, costs = [0], [], []
    for p in range(len(ends)):
        c = cost[ends[p], starts]
        ok = (c < join_rms) & (meter == meter[p])
        ok[p] = False
        q = np.flatnonzero(ok)
        q = q[np.argsort(c[q], kind="stable")]
        succ.append(q)
        costs.append(c[q])
        indptr.append(indptr[-1] + len(q))
    cat = lambda xs, t: np.concatenate(xs).astype(t) if xs else np.zeros(0, t)  # noqa: E731
    return {"indptr": np.asarray(indptr, dtype=np.int64), "successors": cat(succ, np.int32),
            "cost": cat(costs, np.float16)}
