"""Song structure: sections and their repeat labels, on songs whose structure is known by construction."""

import numpy as np

from backend.music.features import SR, extract_features
from backend.music.structure import MIN_SECTION_SECONDS, song_sections

C, F_SHARP, G = [261.6, 329.6, 392.0], [370.0, 440.0, 554.4], [392.0, 493.9, 587.3]


def chord_song(parts, seconds=10.0, bpm=120):
    """Sections of a held chord with a melody over its tones and a click on every beat."""
    out = []
    t = np.arange(int(seconds * SR)) / SR
    beat = int(SR * 60 / bpm)
    for freqs in parts:
        y = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs) * 0.3
        clicks = np.zeros_like(t)
        for s in range(0, len(t), beat):
            clicks[s:s + 200] = np.hanning(400)[200:] * 0.5
        notes = np.repeat(np.array(freqs * 8)[:int(seconds * 2)] * 2, SR // 2)[:len(t)]
        out.append(y + clicks + 0.2 * np.sin(2 * np.pi * notes * t))
    return np.concatenate(out).astype(np.float32)


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
