"""Retrieval: a dance assembled from the figure library's phrases for a whole song, the diffusion's starting point.

For every two bars of the song (bar lines on every 3rd beat in triple time, else every 2nd, starting on the beat
phase with the strongest onset accents; an asked style dances in its own meter; a song well above its style's
tempo, a fast one or one the tracker hears at double time, on every other beat, and a song well below it on its beats
and the midpoints between them: style_vote.beat_ratio), one
library phrase of the song's style and meter is chosen by tempo match, accent-profile match, join cost (graph
successors of the phrase before, when it has any that fit), beat lock (phrase_rhythm: its rhythm at the beat's multiples) and groove (its bar-folded rhythm
like the phrase before's, so the beat keeps its place in the bar), never the same phrase or an overlapping stretch
twice in a row, and continuing its own source dance at most MAX_CONTINUE times in a row (so it composes rather than
replays). The first phrase is also chosen for a calm first second (START_SPEED), as dancers begin. The seed picks
among the TOP best, so takes differ. Each phrase is time-warped (phrase_warp) so its beats land on the song's and its
own motion beats (speed minima) near a song beat on that beat, turned and moved so it starts where and as the phrase
before ended (hip line), and its first JOIN_FRAMES frames blend out the pose step at the join (a decaying per-joint
offset); joins whose step is under MODEL_JOIN stay so, the others the model dances anew. Mirror-image phrases are left
out by default: a mirrored ballroom dance is as far from every real one as the ME's dances (0.19 m figure distance,
weights/me/README.md).

The library lives next to the weights (`figures.npz`, built by scripts/build_figure_library.py), or another model
folder's is named by `figures.json` (weights/me_styles shares weights/me's); a model folder without either has no
retrieval (`library_for` returns None) and the pipeline generates from noise as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend.motion import figure_library as fl
from backend.motion import style_vote
from backend.motion.phrase_rhythm import beat_lock, grooves
from backend.motion.phrase_warp import bar_times, phrase_times, refined_times
from backend.motion.representation import canonicalize
from backend.music.features import ENVELOPE, MusicFeatures
from backend.music.meter import triple_time
from backend.music.overrides import with_beats
from bridge.request import TRANSITION_HALF, style_key
from rigs import rotations as rot
from rigs.motion import Motion
from rigs.splice import facing, place

LIBRARY_FILE = "figures.npz"
SHARED_LIBRARY_FILE = "figures.json"  # {"from": "../me"}: the library of another model folder (library_for)
TOP = 4  # the seed picks among this many best phrases
MAX_CONTINUE = 1  # phrases in a row that may simply continue the previous phrase's source dance
JOIN_FRAMES = 8  # frames over which a join's pose step is blended out
W_TEMPO, W_ACCENT, W_JOIN = 2.0, 0.5, 1.0  # per octave of tempo mismatch, per unit of (1 - correlation), per JOIN_RMS
ACCENT_SHIFT = 0.5  # beats: phrase_warp moves a phrase's motion beats this near a song beat onto it (0: bar map only)
# The song's first second (a dancer starts calmly): the first phrase is chosen among the START_CANDIDATES best by
# the other costs, paying W_START per 0.1 m/s of mean joint speed outside START_SPEED there.
START_CANDIDATES, W_START, START_SPEED = 40, 1.0, (0.45, 0.8)
W_LOCK = 1.5  # per unit of (1 - beat_lock): phrases whose rhythm keeps the beat's multiples
W_GROOVE = 1.0  # per unit of (1 - correlation) of the bar-folded speed profiles of a phrase and the one before
NO_EDGE = 1.0  # extra cost of a join the graph does not allow
# A dancer keeps one vigour through a take: the seed draws a quantile of the style's phrase energies (mean joint
# speed) for the take, and a phrase pays W_VIGOUR per unit of its own quantile's distance from it. Chosen bar by bar on
# the music alone, every take averaged the vigour of all the train dancers, so takes and songs differed less than
# real dances do (Div_k 0.88x the real test dances').
W_VIGOUR = 1.0
# The dance keeps to a dancer's floor: phrases chained at random drift away (a val cha-cha reached 7.7 m, and its
# model-made joins went wild), so a phrase that would end farther than FLOOR_RADIUS from the start costs W_FLOOR per
# metre beyond. Ballroom travels: the train dances' pelvis keeps 2.8 m from its start on average (max 5.6 m); held
# within 1.5 m the library dances kept 1.0 m, and FID_k, whose energy term mostly weighs that distance, read 132 on
# the val songs (103 on test) against 68 at 5 m, Div_k 9.0 against 12.4, joins no faster (weights/me/README.md).
FLOOR_RADIUS, W_FLOOR = 5.0, 2.0


class RetrievalError(ValueError):
    """The song cannot be danced from the library (too few beats, no phrase of its style and meter)."""


@dataclass
class Retrieved:
    """A dance assembled from library phrases for the whole music, at 30 fps, and where its phrases meet."""

    motion: Motion
    joins: list[int]  # frames where one phrase's first frame follows the previous phrase
    phrases: list[int]  # library phrase indices, in order
    style: str  # the style whose phrases were used
    sources: list[str] = field(default_factory=list)  # each phrase's source dance (name, '*' for a mirror image)
    seconds: float = 0.0  # wall time of the assembly
    eased: list[int] = field(default_factory=list)  # joins smooth as eased (MODEL_JOIN): not danced anew
    song_bpm: float = 0.0  # the song's tempo as heard (style_vote.heard_tempo)
    auto: bool = False  # the style was read off the song's tempo (style 'auto')
    beat_ratio: float = 1.0  # dance beats per song beat: 0.5 on every other beat, 2 between the beats too
    music: MusicFeatures | None = None  # the music as danced (its beats: every other one, or with midpoints)
    vigour: float | None = None  # the take's quantile of its style's phrase energies (take_vigour), when drawn
    bar_place: int | None = None  # the beat of the song's bar (0: the downbeat) every phrase begins on, where kept

    def model_joins(self) -> list[int]:
        """The joins the model dances anew (all but the eased ones)."""
        return [j for j in self.joins if j not in set(self.eased)]

    def describe(self) -> str:
        """One line for the report."""
        distinct = len(set(self.sources))
        heard = f" (the style read off the song's {self.song_bpm:.0f} BPM)" if self.auto else ""
        beats = {0.5: f"every other beat (danced at {self.song_bpm / 2:.0f} BPM, half the song's {self.song_bpm:.0f})",
                 2.0: f"the song's beats and the midpoints between them (danced at {self.song_bpm * 2:.0f} BPM, twice "
                      f"the song's {self.song_bpm:.0f})"}.get(self.beat_ratio, "the song's bars and beats")
        vigour = ""
        if self.vigour is not None:
            mood = "calm" if self.vigour < 1 / 3 else "lively" if self.vigour > 2 / 3 else "moderate"
            vigour = (f", a {mood} take (energy percentile {100 * self.vigour:.0f} of the style's phrases, drawn by "
                      "the seed)")
        place = "" if self.bar_place is None else (f", each begun on beat {self.bar_place + 1} of the song's bar as "
                                                   "its dancer began it")
        return (f"retrieve: {len(self.phrases)} {self.style} phrases{heard} from {distinct} train dance(s) of the "
                f"figure library, time-warped onto {beats}{place}, {len(self.joins)} joins "
                f"({len(self.model_joins())} danced anew by the model){vigour}")


_CACHE: dict[tuple[str, float], fl.FigureLibrary] = {}


def library_for(folder: str | Path) -> fl.FigureLibrary | None:
    """The figure library beside a model folder's weights (checked against its config.json), or the one another
    model folder holds when this folder's `figures.json` names it ({"from": "../me"}: weights trained on the same
    train dances share their library instead of shipping a copy); None without either.

    Loaded once per file and modification time (a load takes about 0.05 s; each source dance is made on first use)."""
    folder = Path(folder)
    pointer = folder / SHARED_LIBRARY_FILE
    if not (folder / LIBRARY_FILE).is_file() and pointer.is_file() and (folder / "config.json").is_file():
        folder = (folder / json.loads(pointer.read_text())["from"]).resolve()
    path = folder / LIBRARY_FILE
    if not path.is_file() or not (folder / "config.json").is_file():
        return None
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        _CACHE.clear()  # one library at a time: they are a few MB each
        _CACHE[key] = fl.FigureLibrary.load(path, fl.config_hash(folder))
    return _CACHE[key]


def song_bars(music: MusicFeatures, per_bar: int, starts: np.ndarray | None = None) -> np.ndarray:
    """Bar-line beat indices: every `per_bar`-th beat from the phase with the strongest mean onset accent; with
    `starts` (frames), among the phases whose bar lines stand on them most (a double-time dance's bars start on the
    song's own beats, not on the midpoints, however loud a backbeat is there)."""
    beats = np.asarray(music.beat_frames, dtype=int)
    env = music.features[:, ENVELOPE][:, 0]
    if not len(beats):
        return np.zeros(0, dtype=int)
    on = np.ones(len(beats), bool) if starts is None else np.isin(beats, starts)
    score = [(round(float(on[k::per_bar].mean()), 6), float(env[beats[k::per_bar]].mean()))
             if len(beats[k::per_bar]) else (-1.0, -np.inf) for k in range(per_bar)]
    phase = max(range(per_bar), key=lambda k: score[k])  # ties: the first phase
    return np.arange(phase, len(beats), per_bar)


def accent_profile(music: MusicFeatures, beats: np.ndarray) -> np.ndarray:
    """The onset envelope on the library's grid (SAMPLES_PER_BEAT per beat), scaled by the song's 95th percentile."""
    env = music.features[:, ENVELOPE][:, 0].astype(np.float64)
    grid = np.interp(np.arange((len(beats) - 1) * fl.SAMPLES_PER_BEAT) / fl.SAMPLES_PER_BEAT, np.arange(len(beats)),
                     beats.astype(np.float64))
    return np.interp(grid, np.arange(len(env)), env) / max(float(np.percentile(env, 95)), 1e-6)


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of profile `a` (n,) with each row of `b` (P, >= n)."""
    b = np.nan_to_num(b[:, :len(a)].astype(np.float64))
    a = a - a.mean()
    b = b - b.mean(1, keepdims=True)
    return (b @ a) / np.maximum(np.linalg.norm(b, axis=1) * np.linalg.norm(a), 1e-9)


def auto_style(lib: fl.FigureLibrary, music: MusicFeatures, leave_out: tuple[str, ...] = ()) -> str:
    """The library style a song sounds like: of the styles danced in the song's meter, the one its tempo votes for
    (style_vote: each train dance's vote by how near its tempo lies, octaves folded); the train dances named in
    `leave_out` do not vote (scripts/eval_style.py leaves a song's own dance out). RetrievalError without a tempo or
    a dance to vote."""
    a = lib.arrays
    bpm = style_vote.heard_tempo(music.beat_frames, music.fps)
    if bpm <= 0:
        raise RetrievalError(f"the song has too few beats to tell its style ({len(music.beat_frames)} beats)")
    voters = ~a["mirrored"] & ~np.isin(a["dance"], [lib.names.index(n) for n in leave_out if n in lib.names])
    mine = voters & (a["per_bar"] == fl.beats_per_bar(None, triple_time(music)))
    tempi, styles = dance_tempi(lib, mine if mine.any() else voters)
    if not styles:
        raise RetrievalError("the figure library holds no dances to tell a style by")
    return style_vote.vote(bpm, tempi, styles)


def style_tempi(lib: fl.FigureLibrary, music: MusicFeatures, style: str) -> np.ndarray:
    """The tempi of the train dances of `style` in the meter it dances to `music` (empty for a style not held)."""
    a, names = lib.arrays, lib.meta["style_names"]
    if style not in names:
        return np.zeros(0)
    per_bar = fl.beats_per_bar(style, 0.0)  # a named style dances in its own meter: the song's is not needed
    return dance_tempi(lib, (a["style"] == names.index(style)) & (a["per_bar"] == per_bar) & ~a["mirrored"])[0]


def half_time(music: MusicFeatures) -> np.ndarray:
    """Every other beat of the song, from the phase with the stronger mean onset accent (song_bars' two-beat bars)."""
    return np.asarray(music.beat_frames, dtype=int)[song_bars(music, 2)]


def double_time(music: MusicFeatures) -> np.ndarray:
    """The song's beats and the frames midway between each two (song_bars then finds the bar on the accented ones)."""
    beats = np.asarray(music.beat_frames, dtype=int)
    mid = np.round((beats[1:] + beats[:-1]) / 2.0).astype(int)
    return np.unique(np.concatenate([beats, mid[(mid > beats[:-1]) & (mid < beats[1:])]]))


def dance_tempi(lib: fl.FigureLibrary, phrases: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per train dance among the `phrases` (bool mask): its tempo (the steady mean of its phrases') and its style."""
    a, names = lib.arrays, lib.meta["style_names"]
    dances = sorted(set(a["dance"][phrases].tolist()))
    tempi = np.array([style_vote.steady_tempo(a["tempo"][phrases & (a["dance"] == d)]) for d in dances])
    return tempi, [names[int(a["style"][phrases & (a["dance"] == d)][0])] for d in dances]


def _pool(lib: fl.FigureLibrary, style: str, per_bar: int, mirrors: bool) -> np.ndarray:
    a = lib.arrays
    names = lib.meta["style_names"]
    if style not in names:
        raise RetrievalError(f"the figure library has no {style} phrases (it holds {', '.join(names)})")
    pool = np.flatnonzero((a["style"] == names.index(style)) & (a["per_bar"] == per_bar) & (mirrors | ~a["mirrored"]))
    if not len(pool):
        raise RetrievalError(f"the figure library has no {style} phrases in {per_bar}-beat bars")
    return pool


def _travel(lib: fl.FigureLibrary) -> tuple[np.ndarray, np.ndarray]:
    """Per phrase: the root's floor displacement (x, z) over the phrase in the frame its root faces at the start,
    and the root's turn (radians); computed once per library."""
    if getattr(lib, "_travel", None) is None:
        a = lib.arrays
        disp, turn = np.zeros((lib.size, 2)), np.zeros(lib.size)
        for d in range(len(lib.motions)):
            pelvis, root = lib.root_track(d)  # not the whole Motion: a loaded library makes those on first use
            fwd = rot.quaternion_to_matrix(pelvis)[:, :, 2]
            yaw = np.unwrap(np.arctan2(fwd[:, 0], fwd[:, 2]))
            for mirrored in (False, True):  # a mirror image travels and turns the other way (x -> -x)
                ours = np.flatnonzero((a["dance"] == d) & (a["mirrored"] == mirrored))
                lo, hi = a["start"][ours], a["stop"][ours]
                step = root[hi][:, [0, 2]] - root[lo][:, [0, 2]]
                sign = -1.0 if mirrored else 1.0
                disp[ours] = _rotate(step, -yaw[lo]) * [sign, 1.0]
                turn[ours] = sign * (yaw[hi] - yaw[lo])
        lib._travel = (disp, turn)
    return lib._travel


def _rotate(xz: np.ndarray, yaw: np.ndarray | float) -> np.ndarray:
    """Floor vectors (..., 2) as (x, z) turned about +y by `yaw` (a body facing +z then faces yaw)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([c * xz[..., 0] + s * xz[..., 1], -s * xz[..., 0] + c * xz[..., 1]], axis=-1)


def start_excess(lib: fl.FigureLibrary, phrases: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per phrase: how far (in 0.1 m/s) the mean joint speed of the song's first second, danced by the phrase placed
    on `target` (the bar map), lies outside START_SPEED (the train dances' first seconds: 0.12-0.95 m/s, median 0.7)."""
    f = np.arange(0, fl.FPS + 1, dtype=np.float64)
    out = np.zeros(len(phrases))
    for k, p in enumerate(phrases):
        src = lib.source(int(lib.arrays["dance"][p]), bool(lib.arrays["mirrored"][p]))
        j = src.at_times(bar_times(f, target, lib.phrase_beats(p) + lib.arrays["start"][p])).joint_positions()
        speed = float(np.linalg.norm(np.diff(j, axis=0), axis=-1).mean() * fl.FPS)
        out[k] = max(START_SPEED[0] - speed, speed - START_SPEED[1], 0.0) / 0.1
    return out


def take_vigour(seed: int) -> float:
    """The quantile of its style's phrase energies a take dances at (0: the calmest, 1: the most vigorous), drawn by
    the seed apart from the seed's picks among the matches."""
    return float(np.random.default_rng([seed, 7]).uniform())


def quantiles(values: np.ndarray) -> np.ndarray:
    """Each value's quantile among `values` (ranks, mid-rank of n: 0.5 / n ... 1 - 0.5 / n)."""
    return (np.argsort(np.argsort(values, kind="stable"), kind="stable") + 0.5) / len(values)


def phrase_starts(places: np.ndarray, per_bar: int, place: int) -> np.ndarray:
    """Beat indices where phrases begin, each on beat `place` of the song's bar (`places`: fl.beats_since_downbeat's):
    the first such beat, then the first such beat at or after each phrase's end (an irregular bar is caught up with
    at the next phrase). Empty where the style's two-bar phrase does not fill whole bars of the song (a waltz on a
    song in four) or no phrase fits."""
    places = np.asarray(places)
    n = fl.BARS_PER_PHRASE * per_bar
    down = np.flatnonzero(places == 0)
    bar = int(np.median(np.diff(down))) if len(down) > 1 else 0
    if bar <= 0 or n % bar:
        return np.zeros(0, dtype=int)
    at = np.flatnonzero(places == place)
    out = []
    k = 0
    while k < len(at) and at[k] + n < len(places):
        out.append(int(at[k]))
        k = int(np.searchsorted(at, at[k] + n))
    return np.asarray(out, dtype=int)


def bar_places(lib: fl.FigureLibrary, music: MusicFeatures, starts: np.ndarray | None = None) -> np.ndarray | None:
    """Each song beat's place in its bar (fl.beats_since_downbeat) where the library knows its phrases' places and
    the song has downbeats (not for a half- or double-time dance, `starts`); else None."""
    if starts is not None or "bar_beat" not in lib.arrays or not (lib.arrays["bar_beat"] >= 0).any():
        return None
    places = fl.beats_since_downbeat(music.beat_frames, music.downbeat_frames)
    return places if (places >= 0).any() else None


def choose(lib: fl.FigureLibrary, music: MusicFeatures, style: str, seed: int,
           mirrors: bool = False, starts: np.ndarray | None = None) -> list[tuple[int, np.ndarray]]:
    """(phrase, song beat frames it covers) for every two-bar stretch of the song; mirror-image phrases only with
    `mirrors`. Where the library knows where in their songs' bars its phrases begin and the song has downbeats, the
    phrases begin on the beat of the bar where most of the style's begin, and only those phrases are danced: a figure
    keeps the place in the bar its dancer gave it (a waltz rises and falls with the song's bar, a rumba's slow step
    stays on 4-1). Else, or with `starts` (frames: a half- or double-time dance), bar lines as song_bars finds them."""
    a = lib.arrays
    per_bar = fl.beats_per_bar(style, triple_time(music))  # an asked style dances in its own meter (a waltz in 3)
    beats = np.asarray(music.beat_frames, dtype=int)
    n = fl.BARS_PER_PHRASE * per_bar
    places = bar_places(lib, music, starts)
    pool = _pool(lib, style, per_bar, mirrors)
    firsts = np.zeros(0, dtype=int)  # each phrase's first beat
    if places is not None:
        known = a["bar_beat"][pool][a["bar_beat"][pool] >= 0]
        place = int(np.bincount(known).argmax()) if len(known) else 0  # where most of the style's figures begin
        firsts = phrase_starts(places, per_bar, place)
    if not len(firsts):  # no bars to keep a place in, or no phrase fits them: the accents' bar lines
        places, firsts = None, song_bars(music, per_bar, starts)[::fl.BARS_PER_PHRASE]
    bounds = a["boundary"].astype(np.float64)
    rng = np.random.default_rng(seed)
    disp, turn = _travel(lib)
    lock = beat_lock(lib)[pool]
    where, facing = np.zeros(2), 0.0  # the dance starts at the origin facing +z (assemble canonicalises it)
    out: list[tuple[int, np.ndarray]] = []
    prev, continued = -1, 0
    vigour = W_VIGOUR * np.abs(quantiles(a["energy"][pool]) - take_vigour(seed)) if W_VIGOUR else 0.0
    for i in firsts:
        if i + n >= len(beats):
            break
        target = beats[i:i + n + 1]
        tempo = 60.0 * fl.FPS / float(np.mean(np.diff(target)))
        cost = W_TEMPO * np.abs(np.log2(a["tempo"][pool] / tempo))
        cost += W_ACCENT * (1.0 - correlation(accent_profile(music, target), a["accent"][pool]))
        cost += W_LOCK * (1.0 - lock)
        cost += vigour
        ok = np.ones(len(pool), dtype=bool)
        if prev >= 0:
            join = fl.join_cost(bounds[a["end_boundary"][prev]][None], bounds[a["start_boundary"][pool]])[0]
            succ = lib.successors(prev)[0]
            cost += W_JOIN * join / fl.JOIN_RMS + NO_EDGE * ~np.isin(pool, succ)
            g = grooves(lib)
            cost += W_GROOVE * (1.0 - np.nan_to_num(g[pool] * g[prev]).sum(1))  # the beat keeps its place
            same = (a["dance"][pool] == a["dance"][prev]) & (a["mirrored"][pool] == a["mirrored"][prev])
            ok &= ~(same & (a["start"][pool] < a["stop"][prev]) & (a["stop"][pool] > a["start"][prev]))  # no repeat
            if continued >= MAX_CONTINUE:
                ok &= ~(same & (a["start"][pool] == a["stop"][prev]))
        if places is not None:  # the figure's place in the bar as its dancer danced it, where a phrase left has it
            here = a["bar_beat"][pool] == places[i]
            if (ok & here).any():
                ok &= here
        ends = where + _rotate(disp[pool], facing)
        cost += W_FLOOR * np.maximum(np.linalg.norm(ends, axis=1) - FLOOR_RADIUS, 0.0)
        cand = np.flatnonzero(ok)
        if prev < 0:  # the first phrase also dances the song's first second: from a calm start, as dancers begin
            cand = cand[np.argsort(cost[cand], kind="stable")[:START_CANDIDATES]]
            cost[cand] += W_START * start_excess(lib, pool[cand], target)
        best = cand[np.argsort(cost[cand], kind="stable")[:TOP]]
        p = int(pool[rng.choice(best)])
        where, facing = where + _rotate(disp[p], facing), facing + turn[p]
        cont = prev >= 0 and a["dance"][p] == a["dance"][prev] and a["mirrored"][p] == a["mirrored"][prev] \
            and a["start"][p] == a["stop"][prev]
        continued = continued + 1 if cont else 0
        out.append((p, target))
        prev = p
    return out


def warped(lib: fl.FigureLibrary, p: int, target: np.ndarray, lo: int, hi: int,
           song_beats: np.ndarray | None = None) -> Motion:
    """Song frames lo..hi of phrase `p`'s source dance, time-warped so the phrase's beats land on `target` and, with
    the song's `song_beats`, its motion beats near a song beat on that beat (phrase_warp)."""
    a = lib.arrays
    src = lib.source(int(a["dance"][p]), bool(a["mirrored"][p]))
    beats = lib.phrase_beats(p) + a["start"][p]
    minima = None
    if song_beats is not None and "minima" in a and ACCENT_SHIFT > 0:
        m = a["minima"][p]
        minima = m[m > -32768].astype(np.float64) + a["start"][p]
    f = np.arange(lo, hi + 1, dtype=np.float64)
    song = song_beats if song_beats is not None else target
    t = phrase_times(f, target, beats, minima, song, ACCENT_SHIFT)
    return src.at_times(refined_times(src, t, song - lo) if minima is not None else t)


def joined(prev: Motion, piece: Motion) -> Motion:
    """`piece` placed where `prev`'s last frame stands and faces (hip line), its first frames eased onto that pose."""
    last = prev.num_frames - 1
    jp, jq = prev.slice(last, last + 1).joint_positions(), piece.slice(0, 1).joint_positions()
    turn = float(fl.hip_yaw(jp)[0] - fl.hip_yaw(jq)[0])
    piece = place(piece, 0, prev.root_translation[-1, [0, 2]], facing(piece, 0) + turn)
    # a decaying offset from the previous end pose: per-joint rotation and root height, gone after JOIN_FRAMES
    w = np.clip(1.0 - np.arange(piece.num_frames) / JOIN_FRAMES, 0.0, 1.0)
    delta = rot.quaternion_multiply(prev.rotations[-1], rot.quaternion_conjugate(piece.rotations[0]))
    delta[0] = [1.0, 0.0, 0.0, 0.0]  # the root's heading is already matched by place()
    ident = np.broadcast_to(np.array([1.0, 0.0, 0.0, 0.0]), delta.shape)
    offsets = rot.quaternion_slerp(np.broadcast_to(ident, (piece.num_frames, *delta.shape)),
                                   np.broadcast_to(delta, (piece.num_frames, *delta.shape)),
                                   np.broadcast_to(w[:, None], (piece.num_frames, delta.shape[0])))
    rotations = rot.quaternion_multiply(offsets, piece.rotations)
    trans = piece.root_translation.copy()
    trans[:, 1] += w * (prev.root_translation[-1, 1] - trans[0, 1])
    return Motion(rotations, trans, fps=piece.fps, contacts=piece.contacts)


def _concat(pieces: list[Motion]) -> Motion:
    """The pieces one after another, each but the last without its last frame (the next one's first frame stands
    there); one concatenation for the whole song (piece by piece, a 10-min song's 300 joins took 3.5 s)."""
    cut = lambda arrays: np.concatenate([x[:-1] for x in arrays[:-1]] + [arrays[-1]])  # noqa: E731
    contacts = None if any(p.contacts is None for p in pieces) else cut([p.contacts for p in pieces])
    return Motion(cut([p.rotations for p in pieces]), cut([p.root_translation for p in pieces]), fps=pieces[-1].fps,
                  contacts=contacts)


def assemble(lib: fl.FigureLibrary, music: MusicFeatures, style: str = "auto", seed: int = 0,
             mirrors: bool = False) -> Retrieved:
    """The retrieved dance for the whole of `music` (music.num_frames frames at 30 fps) from `lib`'s phrases of
    `style` ('auto': the style the song sounds like, `auto_style`); RetrievalError when no phrase fits the song."""
    auto = style_key(style) == "auto"
    style = auto_style(lib, music) if auto else style_key(style)
    heard = style_vote.heard_tempo(music.beat_frames, music.fps)
    # the style's figures at half the song's tempo are danced on every other beat (in three-beat bars too, a dance bar
    # then spans two of the song's: the beats' bar phase is chosen anew), at twice it on the beats and between them;
    # on the song's own beats where a short song's halves are too few for a phrase
    ratio = style_vote.beat_ratio(heard, style_tempi(lib, music, style))
    if ratio > 1.0 and fl.beats_per_bar(style, triple_time(music)) == 3:
        ratio = 1.0  # a bar of three doubled beats would start every other bar between the song's beats
    picks: list[tuple[int, np.ndarray]] = []
    if ratio != 1.0:
        danced = with_beats(music, half_time(music) if ratio < 1.0 else double_time(music))
        picks = choose(lib, danced, style, seed, mirrors, starts=music.beat_frames)
        ratio = ratio if picks else 1.0
    if ratio == 1.0:
        danced, picks = music, choose(lib, music, style, seed, mirrors)
    if not picks:
        raise RetrievalError(f"the song has too few beats for a two-bar phrase ({len(music.beat_frames)} beats)")
    music = danced
    frames, a = music.num_frames, lib.arrays
    beats = np.asarray(music.beat_frames, dtype=np.float64)
    pieces: list[Motion] = []  # each placed where the one before ends
    length = 0  # frames of the dance so far
    joins, eased = [], []
    bounds = a["boundary"]
    for k, (p, target) in enumerate(picks):
        lo = 0 if k == 0 else int(target[0])
        hi = frames - 1 if k == len(picks) - 1 else int(picks[k + 1][1][0])  # the next bar line: dropped after placing
        piece = warped(lib, p, target, lo, hi, beats)
        if pieces:
            prev = picks[k - 1][0]
            step = fl.join_cost(bounds[[a["end_boundary"][prev]]], bounds[[a["start_boundary"][p]]])[0, 0]
            joins.append(length - 1)
            if step < MODEL_JOIN:  # the eased offset makes it smooth: kept, not danced anew by the model
                eased.append(joins[-1])
            piece = joined(pieces[-1], piece)
            length -= 1  # the piece's first frame stands on the previous one's last
        pieces.append(piece)
        length += piece.num_frames
    dance = canonicalize(_concat(pieces).slice(0, frames))
    sources = [lib.names[int(a["dance"][p])] + ("*" if a["mirrored"][p] else "") for p, _ in picks]
    places = bar_places(lib, music) if ratio == 1.0 else None
    starts = None if places is None else places[np.searchsorted(music.beat_frames, [t[0] for _, t in picks])]
    kept = starts is not None and len(set(starts.tolist())) == 1 and all(
        a["bar_beat"][p] == q for (p, _), q in zip(picks, starts))
    return Retrieved(dance, [j for j in joins if 0 < j < frames], [p for p, _ in picks], style, sources,
                     eased=[j for j in eased if 0 < j < frames], song_bpm=heard, auto=auto, beat_ratio=ratio,
                     music=music, vigour=take_vigour(seed) if W_VIGOUR else None,
                     bar_place=int(starts[0]) if kept else None)


# Joins whose boundaries (pose and velocity, figure_library.join_cost) lie closer than MODEL_JOIN are kept as the
# eased offset makes them (a phrase continuing its own dance: 0): the model's join frames move with 3-4x the
# acceleration of the library's (val songs), so it dances only the joins that need it.
MODEL_JOIN = 0.08
JOIN_HALF = 8  # frames on each side of a join the model dances anew while the init is held (graph joins < 0.10 m)


def held_frames(frames: int, joins: list[int], kept: np.ndarray | None = None, half: int = JOIN_HALF,
                margin: int = TRANSITION_HALF) -> np.ndarray:
    """(frames,) bool: the retrieved dance's frames held while the sampler keeps the init - all but `half` frames
    either side of each join, and (with an edit's `kept` frames) only frames more than `margin` from any kept one,
    so the model makes the way from the edit's values into the library phrase."""
    held = np.ones(frames, dtype=bool)
    for j in joins:
        held[max(0, j - half):j + half] = False
    if kept is not None and kept.any():
        near = np.convolve(kept.astype(float), np.ones(2 * margin + 1))[margin:margin + frames] > 0
        held &= ~near
    return held


def placed_on(dance: Motion, reference: Motion, held: np.ndarray) -> Motion:
    """`dance` with each run of held frames turned and moved so that it starts where and as `reference` stands at
    the run's first frame (an edit's free stretch danced from the library begins where the given dance is)."""
    rot_, trans = dance.rotations.copy(), dance.root_translation.astype(np.float64).copy()
    edges = np.flatnonzero(np.diff(np.r_[0, held.astype(np.int8), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        xz, yaw = reference.root_translation[a, [0, 2]], facing(reference, a)
        moved = place(dance.slice(a, b), 0, xz, yaw)
        rot_[a:b], trans[a:b] = moved.rotations, moved.root_translation
    return Motion(rot_, trans, fps=dance.fps, contacts=dance.contacts)
