"""The figure library on tiny synthetic dances: bar-line cuts, mirror images, the motion graph, the file."""

import numpy as np
import pytest

from backend.motion import figure_library as fl
from backend.motion.representation import mirror
from rigs.motion import Motion
from tests.builders import smooth_dance

BEAT = 15  # frames: 120 bpm


def source(name: str, style: str, seed: int, seconds: float = 12.0, first_beat: int = 5,
           still_phase: int | None = None, per_bar: int = 2) -> fl.DanceSource:
    """A synthetic dance with beats every BEAT frames; with `still_phase`, the body returns to one pose on every
    beat of that phase of the bar (where its figures start and end)."""
    motion = smooth_dance(seconds, seed)
    beats = np.arange(first_beat, motion.num_frames - 1, BEAT)
    if still_phase is not None:
        aa = motion.axis_angle()
        for f in beats[still_phase::per_bar]:
            aa[max(0, f - 2):f + 3, 1:] = 0.1  # the same body pose around each bar line
        motion = Motion.from_axis_angle(aa, motion.root_translation, fps=30.0)
    rng = np.random.default_rng(seed)
    return fl.DanceSource(name, style, motion, beats, rng.random(motion.num_frames),
                          rng.normal(size=(motion.num_frames, 20)))


@pytest.fixture(scope="module")
def library() -> fl.FigureLibrary:
    return fl.build([source("a", "rumba", 1, still_phase=1), source("b", "waltz", 2, still_phase=2, per_bar=3),
                     source("c", "rumba", 3, still_phase=1)], config_sha="abc")


def test_phrases_start_on_the_bar_lines_where_the_pose_recurs(library):
    a = library.arrays
    for d, per_bar, phase in ((0, 2, 1), (1, 3, 2)):
        beats = np.arange(5, library.motions[d].num_frames - 1, BEAT)
        ours = (a["dance"] == d) & ~a["mirrored"]
        assert np.array_equal(a["start"][ours], beats[phase::per_bar][:ours.sum()])
        assert np.all(a["stop"][ours] - a["start"][ours] == 2 * per_bar * BEAT)  # two bars
        assert np.all(a["per_bar"][ours] == per_bar)
        assert library.phrase_beats(np.flatnonzero(ours)[0]).tolist() == list(range(0, 2 * per_bar * BEAT + 1, BEAT))
    assert np.allclose(a["tempo"], 120.0)


def test_beats_know_their_place_in_the_bar():
    beats = np.arange(12) * BEAT
    places = fl.beats_since_downbeat(beats, beats[[2, 6, 10]])
    assert places.tolist() == [2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1]  # before the first: counted back from it
    assert fl.beats_since_downbeat(beats, beats[[5, 8, 11]]).tolist()[:9] == [1, 2, 0, 1, 2, 0, 1, 2, 0]
    after = fl.beats_since_downbeat(beats, beats[[1, 4]]).tolist()[3:]
    assert after == [2, 0, 1, 2, 0, 1, 2, 0, 1]  # and after the last
    assert (fl.beats_since_downbeat(beats, beats[[4]]) == -1).all()  # one downbeat tells no bar
    assert (fl.beats_since_downbeat(beats, None) == -1).all()


def test_each_phrase_knows_where_in_its_songs_bar_it_begins():
    """A 4/4 rumba whose pose recurs on the odd beats (where its phrases are cut, downbeats or not) and whose song's
    bars start on beat index 2: its phrases begin on the bar's second and fourth beats (places 3 and 1 from beat index
    2), the mirror image shares them; without downbeats every place is unknown (-1)."""
    plain = source("a", "rumba", 1, still_phase=1)
    beats = np.asarray(plain.beats)
    timed = fl.DanceSource(**{**plain.__dict__, "downbeats": beats[2::4]})
    a = fl.build([timed], config_sha="abc").arrays
    untimed = fl.build([plain], config_sha="abc").arrays
    assert np.array_equal(a["start"], untimed["start"]) and np.isin(a["start"], beats[1::2]).all()
    places = fl.beats_since_downbeat(beats, beats[2::4])
    assert np.array_equal(a["bar_beat"], places[np.searchsorted(beats, a["start"])])
    assert set(a["bar_beat"].tolist()) == {1, 3}
    for m in (False, True):
        ours = a["mirrored"] == m
        pairs = lambda k: sorted(zip(a["start"][k], a["bar_beat"][k]))  # noqa: E731
        assert pairs(ours) == pairs(~ours)
    assert (untimed["bar_beat"] == -1).all()
    assert fl.data_hash([timed]) != fl.data_hash([plain])  # a library cut without the bars is not the same library


def test_every_phrase_has_its_mirror_image(library):
    a = library.arrays
    def keys(m: bool) -> set:
        return set(zip(a["dance"][a["mirrored"] == m], a["start"][a["mirrored"] == m]))

    assert keys(True) == keys(False) and len(keys(True)) == library.size // 2
    p = int(np.flatnonzero(~a["mirrored"])[3])
    q = int(np.flatnonzero(a["mirrored"] & (a["dance"] == a["dance"][p]) & (a["start"] == a["start"][p]))[0])
    jp, jq = library.phrase_motion(p).joint_positions(), library.phrase_motion(q).joint_positions()
    swapped = jq[:, [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]] * [-1, 1, 1]
    assert np.abs(swapped - jp).max() < 0.04  # the SMPL rest pose is left-right symmetric only to about a cm
    assert np.allclose(mirror(library.phrase_motion(p)).joint_positions(), jq, atol=1e-9)
    assert a["energy"][q] == pytest.approx(a["energy"][p], rel=0.02)


def test_consecutive_phrases_of_a_dance_are_joined_at_zero_cost(library):
    a = library.arrays
    joined = 0
    for p in range(library.size):
        nxt = np.flatnonzero((a["dance"] == a["dance"][p]) & (a["mirrored"] == a["mirrored"][p])
                             & (a["start"] == a["stop"][p]))
        for q in nxt:
            succ, cost = library.successors(p)
            assert q in succ and cost[list(succ).index(q)] == 0.0
            joined += 1
        assert p not in library.successors(p)[0]
    assert joined > 10


def test_meters_never_join_and_far_poses_do_not(library):
    a = library.arrays
    for p in range(library.size):
        succ, cost = library.successors(p)
        assert np.all(a["per_bar"][succ] == a["per_bar"][p])
        assert np.all(cost < fl.JOIN_RMS) and np.all(np.diff(cost) >= 0)


def test_a_turned_and_moved_boundary_costs_nothing():
    j = smooth_dance(2.0, 5).joint_positions()
    c, s = np.cos(0.7), np.sin(0.7)
    moved = j @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T + [2.0, 0.0, -1.0]
    frames = np.array([10, 30])
    cost = fl.join_cost(fl.boundary_features(j, frames), fl.boundary_features(moved, frames))
    assert np.diag(cost) == pytest.approx([0, 0], abs=1e-6)
    assert cost[0, 1] > 0.05


def test_save_and_load_round_trip(library, tmp_path):
    path = library.save(tmp_path / "figures.npz")
    back = fl.FigureLibrary.load(path, config_sha="abc")
    assert back.names == library.names and back.styles == library.styles
    assert back.meta["data_sha"] == library.meta["data_sha"]
    for k, v in library.arrays.items():
        assert np.array_equal(back.arrays[k], v, equal_nan=v.dtype.kind == "f"), k
    for m, n in zip(library.motions, back.motions):
        assert np.abs(m.joint_positions() - n.joint_positions()).max() < 0.005  # 1 mrad angles
    p = library.size - 1
    assert np.abs(back.phrase_motion(p).joint_positions() - library.phrase_motion(p).joint_positions()).max() < 0.005
    with pytest.raises(ValueError, match="other weights"):
        fl.FigureLibrary.load(path, config_sha="def")


def test_a_loaded_library_makes_each_source_dance_on_first_use(library, tmp_path):
    back = fl.FigureLibrary.load(library.save(tmp_path / "figures.npz"))
    stored = back.motions
    assert len(stored) == len(library.motions) and not stored._made  # nothing made by the load itself
    last = len(stored) - 1
    pelvis, root = back.root_track(last)  # the travel's input, read without making the Motion
    assert not stored._made
    m = stored[-1]
    assert stored[last] is m and len(stored._made) == 1  # made once, by either index
    assert np.array_equal(pelvis, m.rotations[:, 0]) and np.array_equal(root, m.root_translation)
    assert m.num_frames == library.motions[last].num_frames and m.contacts is not None
    assert np.abs(m.joint_positions() - library.motions[last].joint_positions()).max() < 0.005
    assert [x.num_frames for x in stored[:2]] == [x.num_frames for x in library.motions[:2]]
    with pytest.raises(IndexError):
        stored[len(stored)]
    assert back.source(last, True).num_frames == m.num_frames  # its mirror image, made from it


def test_meter_from_style_or_from_the_music():
    assert fl.beats_per_bar("waltz", 0.1) == 3 and fl.beats_per_bar("cha-cha", 0.9) == 2
    assert fl.beats_per_bar(None, 0.8) == 3 and fl.beats_per_bar(None, 0.3) == 2


@pytest.mark.slow
def test_the_shipped_library_is_cut_from_the_train_dances_as_the_analysis_now_hears_them(tang_dataset):
    """The shipped library's data stamp is the hash of the train dances with the beats and bars the music analysis
    gives today. It was once cut on librosa's beats while every song was danced on the downbeat tracker's (a waltz's
    phrases at 115 BPM against its song's 86): a change to the analysis fails here until the library is rebuilt
    (scripts/build_figure_library.py)."""
    from backend.motion.checkpoint import SHIPPED_ME

    shipped = fl.FigureLibrary.load(SHIPPED_ME / "figures.npz")
    assert shipped.meta["data_sha"] == fl.data_hash(fl.train_sources(tang_dataset)), \
        "weights/me/figures.npz is stale: rebuild it with scripts/build_figure_library.py"
    assert (shipped.arrays["bar_beat"] >= 0).all()  # every phrase knows where in its song's bar it begins
