"""Song structure: sections and their repeat labels, on songs whose structure is known by construction."""

import numpy as np

from backend.music.features import SR, extract_features
from backend.music.structure import MIN_SECTION_SECONDS, song_sections
from tests.builders import C, F_SHARP, G, chord_song


def test_a_b_a_c_b_song_gets_its_sections_and_repeats():
    music = extract_features(chord_song([C, F_SHARP, C, G, F_SHARP]), SR)
    sections = song_sections(music)
    assert [s.letter for s in sections] == ["A", "B", "A", "C", "B"]
    assert [s.label for s in sections] == ["A", "B", "A'", "C", "B'"]
    starts = np.array([s.start for s in sections]) / music.fps
    assert np.abs(starts - [0, 10, 20, 30, 40]).max() <= 1.5  # boundaries within a beat or two of the changes
    assert sections[0].start == 0 and sections[-1].end == music.num_frames
    assert all(a.end == b.start for a, b in zip(sections, sections[1:]))  # every frame in exactly one section


def test_no_repeat_is_invented_and_short_songs_are_one_section():
    music = extract_features(chord_song([C, F_SHARP, G]), SR)
    sections = song_sections(music)
    assert len({s.letter for s in sections}) == len(sections) >= 2  # three different chords: no repeats
    assert min(s.end - s.start for s in sections) >= MIN_SECTION_SECONDS * music.fps
    short = extract_features(chord_song([C], seconds=6.0), SR)
    assert [(s.start, s.end, s.label) for s in song_sections(short)] == [(0, short.num_frames, "A")]
