"""Retrieval on a tiny synthetic figure library: the assembled dance covers the song with library phrases placed beat
on beat, joins where phrases meet, seeds pick among the matches, the style read off the music, the library file."""

import json

import numpy as np
import pytest

from backend.motion import figure_library as fl
from backend.motion import retrieval
from backend.music.features import BEATS, ENVELOPE, FEATURE_DIM, MFCC, MusicFeatures
from rigs.motion import Motion
from tests.builders import smooth_dance


def source(name: str, style: str, seed: int, beat: int = 15, seconds: float = 14.0, timbre: float = 0.0,
           per_bar: int = 2) -> fl.DanceSource:
    """A synthetic dance with a beat every `beat` frames whose body returns to one pose on every bar line."""
    motion = smooth_dance(seconds, seed)
    beats = np.arange(5, motion.num_frames - 1, beat)
    aa = motion.axis_angle()
    for f in beats[::per_bar]:
        aa[max(0, f - 2):f + 3, 1:] = 0.1
    motion = Motion.from_axis_angle(aa, motion.root_translation, fps=30.0)
    rng = np.random.default_rng(seed)
    return fl.DanceSource(name, style, motion, beats, rng.random(motion.num_frames),
                          rng.normal(size=(motion.num_frames, 20)) * 0.1 + timbre)


def song(seconds: float = 20.0, beat: int = 15, timbre: float = 0.0, first: int = 9, accent: int = 0) -> MusicFeatures:
    """Music features with a beat every `beat` frames (accents on every other beat from beat `accent`) and a flat
    timbre."""
    n = int(seconds * 30)
    x = np.zeros((n, FEATURE_DIM), np.float32)
    beats = np.arange(first, n, beat)
    x[:, ENVELOPE] = 0.1
    x[beats, ENVELOPE] = 1.0
    x[beats[accent::2], ENVELOPE] = 2.0
    x[beats, BEATS] = 1.0
    x[:, MFCC] = timbre
    return MusicFeatures(x, beats, beats, 1800.0 / beat, seconds)


@pytest.fixture(autouse=True)
def duple(monkeypatch):
    """The synthetic songs are in two-beat bars (meter.triple_time needs a real song to tell)."""
    monkeypatch.setattr(retrieval, "triple_time", lambda music: 0.0)


@pytest.fixture(scope="module")
def library() -> fl.FigureLibrary:
    return fl.build([source("r1", "rumba", 1), source("r2", "rumba", 2), source("r3", "rumba", 3),
                     source("c1", "cha-cha", 4, beat=10, timbre=3.0), source("c2", "cha-cha", 5, beat=10, timbre=3.0)],
                    config_sha="abc")


def test_the_assembled_dance_covers_the_song_with_phrases_beat_on_beat(library, monkeypatch):
    monkeypatch.setattr(retrieval, "ACCENT_SHIFT", 0.0)  # the bar map alone: the phrases frame for frame
    music = song()
    got = retrieval.assemble(library, music, "rumba", seed=0)
    a = library.arrays
    assert got.motion.num_frames == music.num_frames and got.motion.fps == 30.0 and got.style == "rumba"
    assert len(got.joins) == len(got.phrases) - 1 and len(got.phrases) >= 4
    assert got.joins == sorted(got.joins) and all(0 < j < music.num_frames for j in got.joins)
    assert all(a["style"][p] == library.meta["style_names"].index("rumba") and not a["mirrored"][p]
               for p in got.phrases)
    # between joins the body is the phrase's own, frame for frame (song and library share the tempo: no stretch)
    bars = music.beat_frames[::2]
    for k, p in enumerate(got.phrases[1:-1], start=1):
        start = got.joins[k - 1]
        assert start in bars  # phrases meet on the song's bar lines
        src = library.source(int(a["dance"][p]), False)
        frames = np.arange(start + retrieval.JOIN_FRAMES, got.joins[k])
        want = src.rotations[frames - start + a["start"][p], 1:]
        have = got.motion.rotations[frames, 1:]
        assert np.abs(np.abs((want * have).sum(-1)) - 1).max() < 1e-6
    # placed where the previous phrase ended: no jump of the root at a join
    step = np.linalg.norm(np.diff(got.motion.root_translation, axis=0), axis=1)
    assert step[np.array(got.joins) - 1].max() < 0.1


def test_seeds_pick_among_the_matches_and_never_repeat_a_stretch(library):
    music = song(30.0)
    runs = {seed: retrieval.assemble(library, music, "rumba", seed=seed).phrases for seed in range(4)}
    assert runs[0] == retrieval.assemble(library, music, "rumba", seed=0).phrases
    assert len({tuple(r) for r in runs.values()}) > 1
    a = library.arrays
    for phrases in runs.values():
        for p, q in zip(phrases, phrases[1:]):
            same = a["dance"][p] == a["dance"][q]
            assert not (same and a["start"][q] < a["stop"][p] and a["stop"][q] > a["start"][p])


def test_auto_style_follows_the_songs_tempo_not_its_timbre(library):
    assert retrieval.auto_style(library, song(beat=15)) == "rumba"
    assert retrieval.auto_style(library, song(beat=15, timbre=3.0)) == "rumba"  # the cha-chas' timbre, a rumba's tempo
    assert retrieval.auto_style(library, song(beat=10)) == "cha-cha"
    assert retrieval.auto_style(library, song(beat=20)) == "cha-cha"  # 90 BPM: the cha-chas' 180 at half time
    got = retrieval.assemble(library, song(beat=10, timbre=3.0), "auto", seed=1)
    assert got.style == "cha-cha" and "cha-cha phrases (the style read off the song's 180 BPM)" in got.describe()
    assert "read off" not in retrieval.assemble(library, song(beat=10), "cha-cha", seed=1).describe()
    with pytest.raises(retrieval.RetrievalError, match="too few beats to tell its style"):
        retrieval.auto_style(library, song(seconds=0.5))


def test_a_song_at_twice_the_styles_tempo_is_danced_on_every_other_beat(library, monkeypatch):
    """The rumbas are danced at 120 BPM: on a 225-BPM song (or one the tracker hears at double time) their figures go
    on every other beat, from the accented phase, at their own speed instead of nearly twice it."""
    fast, own = song(30.0, beat=8, accent=1), song(30.0, beat=15)
    got, ref = retrieval.assemble(library, fast, "rumba", seed=0), retrieval.assemble(library, own, "rumba", seed=0)
    assert got.beat_ratio == 0.5 and ref.beat_ratio == 1.0
    assert "danced at 112 BPM, half the song's 225" in got.describe()
    assert np.array_equal(got.music.beat_frames, fast.beat_frames[1::2])  # the music as danced: its beat column too
    assert np.array_equal(np.flatnonzero(got.music.features[:, BEATS]), fast.beat_frames[1::2])
    assert abs(got.music.tempo - 112.5) < 0.5 and ref.music is own
    assert abs(len(got.phrases) - len(ref.phrases)) <= 1  # as many figures as at the rumbas' own tempo
    accented = set(fast.beat_frames[1::2].tolist())  # the bar lines stand on the accents, the odd beats here
    assert all(j in accented or j + 1 in accented for j in got.joins)
    speed = lambda m: np.linalg.norm(np.diff(m.joint_positions(), axis=0), axis=-1).mean()  # noqa: E731
    assert speed(got.motion) < 1.25 * speed(ref.motion)
    monkeypatch.setattr(retrieval.style_vote, "beat_ratio", lambda bpm, tempi: 1.0)  # never half time
    rushed = retrieval.assemble(library, fast, "rumba", seed=0)
    assert rushed.beat_ratio == 1.0 and len(rushed.phrases) > 1.6 * len(ref.phrases)
    assert speed(rushed.motion) > 1.5 * speed(ref.motion)


def test_a_song_at_half_the_styles_tempo_is_danced_between_its_beats_too(library):
    """A rumba heard at 60 BPM (the tracker at half time, or a slow song): the rumbas' figures go on its beats and the
    midpoints between them, at their own 120 BPM, not in slow motion."""
    slow, own = song(30.0, beat=30), song(30.0, beat=15)
    got, ref = retrieval.assemble(library, slow, "rumba", seed=0), retrieval.assemble(library, own, "rumba", seed=0)
    assert got.beat_ratio == 2.0 and "danced at 120 BPM, twice the song's 60" in got.describe()
    assert set(slow.beat_frames.tolist()) < set(got.music.beat_frames.tolist())
    assert np.allclose(np.diff(got.music.beat_frames), 15) and abs(got.music.tempo - 120.0) < 0.5
    assert abs(len(got.phrases) - len(ref.phrases)) <= 1  # as many figures as at the rumbas' own tempo
    speed = lambda m: np.linalg.norm(np.diff(m.joint_positions(), axis=0), axis=-1).mean()  # noqa: E731
    assert speed(got.motion) > 0.8 * speed(ref.motion)  # at their own speed (half of it in slow motion)
    assert retrieval.assemble(library, slow, "cha-cha", seed=0).beat_ratio == 2.0  # 60 BPM, the cha-chas' 180: 120


def test_double_time_bars_start_on_the_songs_own_beats_however_loud_the_backbeat(library):
    """A pop song heard at half time has its snare on the midpoints: louder there than on the beats, it still must not
    put the phrases' bar lines between the song's beats."""
    slow = song(30.0, beat=30)
    mids = slow.beat_frames[:-1] + 15
    slow.features[mids, ENVELOPE] = 3.0  # the backbeat, louder than every beat
    got = retrieval.assemble(library, slow, "rumba", seed=0)
    own = set(slow.beat_frames.tolist())
    assert got.beat_ratio == 2.0 and len(got.joins) > 3
    assert all(j in own or j + 1 in own for j in got.joins)  # each phrase's first frame on a beat of the song


def test_figures_keep_the_place_in_the_bar_their_dancers_gave_them(monkeypatch):
    """Three rumbas cut where their poses recur, their songs' bars at other phases, so their phrases begin on
    different beats of the bar. On a song with downbeats (on odd beats; its accents on even ones) every phrase begins
    on the beat of the song's bar where the most of them began in theirs, and only such phrases are danced. The same
    song without downbeats is cut by its accents, as before."""
    import dataclasses

    monkeypatch.setattr(retrieval, "ACCENT_SHIFT", 0.0)
    sources = []
    for k in (1, 2, 3):
        plain = source(f"r{k}", "rumba", k)
        sources.append(fl.DanceSource(**{**plain.__dict__, "downbeats": np.asarray(plain.beats)[k % 4::4]}))
    lib = fl.build(sources, config_sha="abc")
    a = lib.arrays
    ours = ~a["mirrored"]
    assert set(a["bar_beat"].tolist()) == {0, 1, 2, 3}
    place = int(np.bincount(a["bar_beat"][ours]).argmax())
    music = song(30.0)  # accents on the even beats
    timed = dataclasses.replace(music, downbeat_frames=music.beat_frames[1::4], meter=4)
    places = fl.beats_since_downbeat(timed.beat_frames, timed.downbeat_frames)
    there = set(timed.beat_frames[places == place].tolist())
    for seed in range(3):
        got = retrieval.assemble(lib, timed, "rumba", seed=seed)
        assert len(got.joins) >= 5 and all(j in there or j + 1 in there for j in got.joins)
        assert all(a["bar_beat"][p] == place for p in got.phrases)
        assert got.bar_place == place and f"each begun on beat {place + 1} of the song's bar" in got.describe()
    accented = set(music.beat_frames[0::2].tolist())
    plain = retrieval.assemble(lib, music, "rumba", seed=0)
    assert all(j in accented or j + 1 in accented for j in plain.joins)
    assert len({a["bar_beat"][p] for p in plain.phrases}) > 1  # without the song's bars: figures from any place
    assert plain.bar_place is None and "of the song's bar" not in plain.describe()


def test_phrase_starts_keep_the_place_through_an_irregular_bar_and_give_way_where_it_cannot_hold():
    beats = np.arange(24)
    regular = fl.beats_since_downbeat(beats, beats[1::4])
    assert retrieval.phrase_starts(regular, 2, 0).tolist() == [1, 5, 9, 13, 17]  # 17 + 4 < 24; 21 + 4 is not
    assert retrieval.phrase_starts(regular, 2, 3).tolist() == [0, 4, 8, 12, 16]
    # one bar of two beats (downbeats 5, 7): the next phrase waits for the bar's first beat (11), then on in fours
    irregular = fl.beats_since_downbeat(beats, beats[[1, 5, 7, 11, 15, 19, 23]])
    assert retrieval.phrase_starts(irregular, 2, 0).tolist() == [1, 5, 11, 15, 19]
    assert retrieval.phrase_starts(regular, 3, 0).tolist() == []  # a waltz's six beats do not fill bars of four
    assert retrieval.phrase_starts(regular[:8], 2, 3).tolist() == [0]  # 4 + 4 reaches the end: one phrase
    assert retrieval.phrase_starts(np.full(12, -1), 2, 0).tolist() == []


def test_a_song_too_short_for_a_phrase_on_its_bars_keeps_the_accents_bar_lines(monkeypatch):
    """Seven beats whose bars would put the first phrase on their fourth: none fits there, so the phrase goes where the
    accents put it, as without downbeats, and the song is still danced from the library."""
    import dataclasses

    sources = []
    for k in (1, 2, 3):
        plain = source(f"r{k}", "rumba", k)
        sources.append(fl.DanceSource(**{**plain.__dict__, "downbeats": np.asarray(plain.beats)[k % 4::4]}))
    lib = fl.build(sources, config_sha="abc")
    place = int(np.bincount(lib.arrays["bar_beat"][~lib.arrays["mirrored"]]).argmax())
    assert place == 1  # beat 2 of the bar: tied with beat 4, the first wins
    music = song(3.5)
    assert len(music.beat_frames) == 7
    timed = dataclasses.replace(music, downbeat_frames=music.beat_frames[[2, 6]], meter=4)  # beat 2 falls on index 3
    places = fl.beats_since_downbeat(timed.beat_frames, timed.downbeat_frames)
    assert int(np.flatnonzero(places == place)[0]) == 3
    assert retrieval.phrase_starts(places, 2, place).tolist() == []
    picks = retrieval.choose(lib, timed, "rumba", seed=0)
    assert len(picks) == 1 and picks[0][1][0] == music.beat_frames[0]


def test_a_short_fast_song_too_short_to_halve_is_danced_on_every_beat(library):
    short = song(2.0, beat=8)  # 7 beats: 4 halved are too few for a two-bar phrase, 7 are not
    got = retrieval.assemble(library, short, "rumba", seed=0)
    assert got.beat_ratio == 1.0 and len(got.phrases) >= 1
    with pytest.raises(retrieval.RetrievalError, match=r"\(4 beats\)"):  # the song's own beats are counted
        retrieval.assemble(library, song(1.2, beat=8), "rumba", seed=0)


def test_songs_the_library_cannot_dance_are_refused_in_one_line(library):
    with pytest.raises(retrieval.RetrievalError, match="too few beats"):
        retrieval.assemble(library, song(seconds=2.0), "rumba")
    with pytest.raises(retrieval.RetrievalError, match="no tango phrases"):
        retrieval.assemble(library, song(), "tango")


def test_the_library_is_found_beside_the_weights_it_was_built_for(library, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"d": 1}))
    assert retrieval.library_for(folder) is None  # no figures.npz: no retrieval
    library.meta["config_sha"] = fl.config_hash(folder)
    library.save(folder / retrieval.LIBRARY_FILE)
    loaded = retrieval.library_for(folder)
    assert loaded is not None and loaded.size == library.size and retrieval.library_for(folder) is loaded
    (folder / "config.json").write_text(json.dumps({"d": 2}))  # other weights: the library is refused
    with pytest.raises(ValueError, match="built for other weights"):
        retrieval._CACHE.clear() or retrieval.library_for(folder)


def test_held_frames_leave_the_joins_and_the_way_into_kept_values_to_the_model():
    held = retrieval.held_frames(100, [30, 60], half=4)
    assert not held[26:34].any() and not held[56:64].any() and held[:26].all() and held[34:56].all()
    kept = np.zeros(100, bool)
    kept[90:] = True  # an edit keeps the end
    held = retrieval.held_frames(100, [30], kept, half=4, margin=10)
    assert not held[80:].any() and held[34:80].all()
    assert not retrieval.held_frames(100, [], np.ones(100, bool)).any()  # kept joints or a path: nothing held


def test_a_held_run_starts_where_the_given_dance_stands():
    from rigs.splice import stand_of

    dance, reference = smooth_dance(4.0, 1), smooth_dance(4.0, 2)
    held = np.zeros(dance.num_frames, bool)
    held[40:80] = True
    placed = retrieval.placed_on(dance, reference, held)
    xz, yaw = stand_of(placed, 40)
    want_xz, want_yaw = stand_of(reference, 40)
    assert np.allclose(xz, want_xz) and abs(np.angle(np.exp(1j * (yaw - want_yaw)))) < 1e-6
    assert np.allclose(placed.rotations[:40], dance.rotations[:40])  # frames outside the run as they were
    body = lambda m: m.slice(40, 80).rotations[:, 1:]  # noqa: E731 - the pose itself is the library's
    assert np.abs(np.abs((body(placed) * body(dance)).sum(-1)) - 1).max() < 1e-6


def test_the_floor_keeps_a_long_retrieved_dance_near_where_it_started(library, monkeypatch):
    # the synthetic dances travel little: a floor of 1.5 m makes every long take meet it
    monkeypatch.setattr(retrieval, "FLOOR_RADIUS", 1.5)

    def beyond(w_floor: float) -> list[float]:
        """Each take's farthest reach past the floor radius (m)."""
        monkeypatch.setattr(retrieval, "W_FLOOR", w_floor)
        takes = [retrieval.assemble(library, song(90.0), "rumba", seed=seed) for seed in range(4)]
        assert all(np.allclose(t.motion.root_translation[0, [0, 2]], 0.0) for t in takes)
        return [max(np.linalg.norm(t.motion.root_translation[:, [0, 2]], axis=1).max() - 1.5, 0.0) for t in takes]

    shipped = retrieval.W_FLOOR
    free, kept = beyond(0.0), beyond(shipped)
    assert min(free) > 0.3  # the check bites: every free take drifts past the floor
    assert sum(kept) < 0.5 * sum(free)


def test_a_phrases_travel_is_measured_in_the_frame_it_starts_facing(library):
    disp, turn = retrieval._travel(library)
    a = library.arrays
    for p in (0, int(np.flatnonzero(a["mirrored"])[2])):  # a phrase as danced and one mirror image
        m = library.source(int(a["dance"][p]), bool(a["mirrored"][p]))
        lo, hi = int(a["start"][p]), int(a["stop"][p])
        fwd = m.matrices()[[lo, hi], 0][:, :, 2]
        yaw = np.arctan2(fwd[:, 0], fwd[:, 2])
        step = m.root_translation[hi, [0, 2]] - m.root_translation[lo, [0, 2]]
        assert np.allclose(retrieval._rotate(disp[p], yaw[0]), step, atol=1e-5)
        assert abs(np.angle(np.exp(1j * (turn[p] - (yaw[1] - yaw[0]))))) < 1e-5


def test_a_model_folder_can_share_another_folders_library(library, tmp_path):
    me, styles = tmp_path / "me", tmp_path / "me_styles"
    for folder, cfg in ((me, 1), (styles, 2)):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"d": cfg}))
    library.meta["config_sha"] = fl.config_hash(me)
    library.save(me / retrieval.LIBRARY_FILE)
    retrieval._CACHE.clear()
    assert retrieval.library_for(styles) is None  # neither a library nor a pointer to one
    (styles / retrieval.SHARED_LIBRARY_FILE).write_text(json.dumps({"from": "../me"}))
    shared = retrieval.library_for(styles)
    assert shared is not None and shared is retrieval.library_for(me)


def test_an_asked_style_dances_its_own_phrases_in_its_own_meter(library):
    waltz = fl.build([source("w1", "waltz", 6, per_bar=3), source("w2", "waltz", 7, per_bar=3),
                      source("r1", "rumba", 1)], config_sha="abc")
    got = retrieval.assemble(waltz, song(20.0), "Waltz", seed=0)  # a two-beat song, a waltz asked for
    a = waltz.arrays
    assert got.style == "waltz" and all(waltz.names[a["dance"][p]].startswith("w") for p in got.phrases)
    assert all(a["per_bar"][p] == 3 for p in got.phrases)
    with pytest.raises(retrieval.RetrievalError, match="no tango phrases"):
        retrieval.assemble(waltz, song(), "tango")


def test_the_shipped_style_model_dances_from_the_shipped_library():
    from backend.motion.checkpoint import SHIPPED_ME, SHIPPED_ME_STYLES

    retrieval._CACHE.clear()
    lib = retrieval.library_for(SHIPPED_ME_STYLES)
    assert lib is not None and lib is retrieval.library_for(SHIPPED_ME)
    assert set(lib.meta["style_names"]) == {"cha-cha", "rumba", "tango", "waltz"}


def test_the_library_keeps_each_phrases_motion_beats(library):
    from backend.metrics.beats import motion_beats

    a = library.arrays
    p = int(np.flatnonzero(~a["mirrored"])[3])
    m = a["minima"][p]
    stored = m[m > -32768] + a["start"][p]
    found = motion_beats(library.source(int(a["dance"][p]), False).joint_positions())
    lo, hi = a["start"][p], a["stop"][p]
    assert set(found[(found >= lo) & (found <= hi)]) <= set(stored)


def test_the_first_phrase_starts_the_song_calmly(library, monkeypatch):
    music = song(20.0)
    calm = retrieval.assemble(library, music, "rumba", seed=0).motion
    speed = lambda m: float(np.linalg.norm(np.diff(m.joint_positions()[:31], axis=0), axis=-1).mean() * 30)  # noqa
    target = music.beat_frames[retrieval.song_bars(music, 2)[0]:][:5]
    pool = np.flatnonzero((library.arrays["style"] == 1) & ~library.arrays["mirrored"])
    excess = retrieval.start_excess(library, pool, target)
    assert excess.shape == pool.shape and (excess >= 0).all()
    monkeypatch.setattr(retrieval, "W_START", 0.0)
    free = [speed(retrieval.assemble(library, music, "rumba", seed=s).motion) for s in range(4)]
    monkeypatch.setattr(retrieval, "W_START", 100.0)
    chosen = [speed(retrieval.assemble(library, music, "rumba", seed=s).motion) for s in range(4)]
    lo, hi = retrieval.START_SPEED
    outside = lambda v: max(lo - v, v - hi, 0.0)  # noqa: E731
    assert sum(map(outside, chosen)) <= sum(map(outside, free)) and np.isfinite(speed(calm))


def test_a_take_keeps_one_vigour_drawn_by_its_seed(library, monkeypatch):
    """Every phrase of a take pays for its distance from the take's drawn energy quantile: calm takes dance the
    style's calmer phrases throughout, lively takes its livelier ones (chosen on the music alone, every take averaged
    them)."""
    music = song(30.0)
    a = library.arrays
    pool = retrieval._pool(library, "rumba", 2, False)
    quantile = dict(zip(pool.tolist(), retrieval.quantiles(a["energy"][pool])))
    drawn = {seed: retrieval.take_vigour(seed) for seed in range(16)}
    calm = [s for s, v in drawn.items() if v < 0.25]
    lively = [s for s, v in drawn.items() if v > 0.75]
    assert calm and lively and retrieval.take_vigour(3) == drawn[3]

    def danced(seeds):
        return float(np.mean([quantile[p] for s in seeds
                              for p in retrieval.assemble(library, music, "rumba", seed=s).phrases]))

    spread = danced(lively) - danced(calm)
    assert spread > 0.2
    got = retrieval.assemble(library, music, "rumba", seed=calm[0])
    assert got.vigour == drawn[calm[0]] and "a calm take (energy percentile" in got.describe()
    monkeypatch.setattr(retrieval, "W_VIGOUR", 0.0)
    assert danced(lively) - danced(calm) < spread - 0.1  # without it, the seeds' draws do not steer the picks
    assert retrieval.assemble(library, music, "rumba", seed=calm[0]).vigour is None
