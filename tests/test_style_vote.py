"""The style heard in the music: a tempo vote of the train dances (fractional tempo, octaves folded), and on real
excerpts of held-out songs the right style where timbre had named another."""

import numpy as np
import pytest

from backend.motion import style_vote


def test_the_heard_tempo_is_fractional_and_ignores_a_stretch_at_double_time():
    beats = np.round(np.arange(0, 60, 60 / 125.0) * 30).astype(int)  # 125 BPM: intervals of 14 and 15 frames
    assert np.median(np.diff(beats)) == 14  # the whole-frame median says 128.6 BPM
    spans = style_vote.span_tempi(beats, 30)
    assert np.median(spans) != pytest.approx(125.0, abs=0.8)  # 4-beat spans of 57 or 58 frames: 126.3 or 124.1
    assert style_vote.heard_tempo(beats, 30) == pytest.approx(125.0, abs=0.2)
    doubled = np.sort(np.r_[beats, (beats[:20] + beats[1:21]) // 2])  # the first 20 beats heard at double time
    assert style_vote.heard_tempo(doubled, 30) == pytest.approx(125.0, abs=0.3)
    assert style_vote.heard_tempo(np.array([3]), 30) == 0.0


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
    # far from every dance (every kernel vanishes): the nearest dance's style, never an arbitrary one
    assert style_vote.vote(110.0, [60.0 * 2 ** 0.45, 60.0 * 2 ** 0.05], ["waltz", "tango"]) == "tango"
    with pytest.raises(ValueError, match="no train dances"):
        style_vote.vote(120.0, [], [])


def test_half_time_only_where_half_the_tempo_fits_the_styles_dances_clearly_better():
    rumbas = [87.0, 93.0, 90.0]
    assert style_vote.beat_stride(180.0, rumbas) == 2
    assert style_vote.beat_stride(90.0, rumbas) == 1
    assert style_vote.beat_stride(180.0, [93.0, 176.0, 182.0]) == 1  # more of the style's dances at the tempo itself
    assert style_vote.beat_stride(0.0, rumbas) == 1 and style_vote.beat_stride(180.0, []) == 1


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
