"""Song analyses kept on disk (backend/music/analysis_cache.py): read back exactly, keyed by the bytes and the
section, never read when broken or stale, pruned to their bound, and never in the way of a dance."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from backend.music import analysis_cache as ac
from backend.music.demo import synthesize_demo
from backend.music.features import analyse_section
from backend.music.overrides import music_for
from backend.music.prefetch import SectionAnalysis
from bridge.request import DanceRequest


@pytest.fixture
def song(tmp_path):
    demo = synthesize_demo(seconds=8.0)
    path = tmp_path / "song.wav"
    sf.write(str(path), demo.samples, demo.sr)
    return path


@pytest.fixture
def folder(tmp_path, monkeypatch):
    where = tmp_path / "cache"
    monkeypatch.setenv(ac.ENV, str(where))
    return where


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.features, b.features)
    for name in ("beat_frames", "onset_frames", "downbeat_frames"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.tempo, a.duration, a.silent, a.fps, a.meter) == (b.tempo, b.duration, b.silent, b.fps, b.meter)
    assert (a.beat_evidence is None) == (b.beat_evidence is None)
    if a.beat_evidence is not None:
        np.testing.assert_array_equal(a.beat_evidence.activations, b.beat_evidence.activations)
        assert a.beat_evidence.sounding == b.beat_evidence.sounding
        assert a.beat_evidence.offset == b.beat_evidence.offset


def test_a_section_analysed_once_is_read_back_exactly_without_a_second_process(song, folder):
    with SectionAnalysis(song, 1.0, 6.0) as first:
        assert first.cached is None and first._proc is not None
        fresh = first.result()
    assert len(list(folder.glob("*.npz"))) == 1
    with SectionAnalysis(song, 1.0, 6.0) as again:
        assert again.cached is not None and again._proc is None  # nothing forked, nothing analysed
        kept = again.result()
    _same(kept, fresh)
    _same(kept, analyse_section(song, 1.0, 6.0))
    # the tracker's evidence came back too: a tempo asked of the kept analysis decodes as of a fresh one
    request = DanceRequest(bpm=100.0, start=1.0, end=6.0)
    _same(music_for(request, kept), music_for(request, fresh))


def test_other_bytes_or_another_section_are_analysed_anew(song, folder):
    SectionAnalysis(song, 1.0, 6.0).result()
    assert SectionAnalysis(song, 2.0, 6.0).cached is None
    assert SectionAnalysis(song, 1.0, None).cached is None
    data = bytearray(song.read_bytes())
    data[-100] ^= 0xFF  # one sample of another recording
    song.write_bytes(bytes(data))
    assert SectionAnalysis(song, 1.0, 6.0).cached is None


def test_a_broken_entry_is_dropped_and_analysed_anew(song, folder):
    fresh = SectionAnalysis(song, 1.0, 6.0).result()
    entry, = folder.glob("*.npz")
    entry.write_bytes(entry.read_bytes()[:200])  # cut short, as by a full disk
    pending = SectionAnalysis(song, 1.0, 6.0)
    assert pending.cached is None
    _same(pending.result(), fresh)
    assert ac.load(ac.entry_key(song, 1.0, 6.0)) is not None  # kept again, whole


def test_a_folder_that_cannot_be_written_does_not_stop_the_dance(song, tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv(ac.ENV, str(blocker / "cache"))
    music = SectionAnalysis(song, 1.0, 6.0).result()
    assert music.num_frames == 150


def test_turned_off_nothing_is_kept(song, tmp_path, monkeypatch):
    monkeypatch.setenv(ac.ENV, "off")
    assert ac.cache_dir() is None
    SectionAnalysis(song, 1.0, 6.0).result()
    assert SectionAnalysis(song, 1.0, 6.0).cached is None
    monkeypatch.delenv(ac.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ac.cache_dir() == tmp_path / "xdg" / "mace-dance" / "analysis"


def test_the_folder_is_pruned_to_its_bound_least_recently_used_first(song, tmp_path):
    folder = tmp_path / "cache"
    music = analyse_section(song, 1.0, 6.0)
    ac.store("probe", music, folder)
    size = (folder / "probe.npz").stat().st_size
    (folder / "probe.npz").unlink()
    for k in range(5):
        ac.store(f"e{k}", music, folder, max_bytes=10 * size)
        os.utime(folder / f"e{k}.npz", (1000 + k, 1000 + k))  # e0 the oldest use
    assert ac.load("e0", folder) is not None  # used now: the most recent
    ac.store("e5", music, folder, max_bytes=int(4.5 * size))
    kept = sorted(p.stem for p in folder.glob("*.npz"))
    assert kept == ["e0", "e3", "e4", "e5"]
    stale = folder / ".part-crashed.npz"
    stale.write_bytes(b"half a write")
    os.utime(stale, (1000, 1000))
    ac.prune(folder, 10 * size)
    assert not stale.exists()


def test_no_home_folder_means_no_cache_and_no_failure(song, monkeypatch):
    from pathlib import Path

    monkeypatch.delenv(ac.ENV)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def homeless(cls):
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", classmethod(homeless))
    assert ac.cache_dir() is None
    assert SectionAnalysis(song, 1.0, 6.0).result().num_frames == 150
    monkeypatch.setenv(ac.ENV, "~/analyses")
    monkeypatch.setenv("HOME", "/nowhere")
    assert ac.cache_dir() == Path("/nowhere/analyses")  # "~" as a shell would expand it


def test_numpy_scalars_are_kept_and_a_failed_write_is_only_a_warning(song, tmp_path):
    music = analyse_section(song, 1.0, 6.0)
    music.tempo, music.meter, music.silent = np.float32(music.tempo), np.int64(music.meter), np.bool_(music.silent)
    ac.store("scalars", music, tmp_path / "c")
    back = ac.load("scalars", tmp_path / "c")
    assert back.tempo == pytest.approx(float(music.tempo)) and back.meter == int(music.meter)

    class Odd:  # a value the entry cannot hold: the write fails, the caller goes on
        activations = np.zeros((3, 2), np.float32)
        sounding = ("not a time", 1.0)
        offset = 0.0

    music.beat_evidence = Odd()
    ac.store("odd", music, tmp_path / "c")
    assert not (tmp_path / "c" / "odd.npz").exists() and not list((tmp_path / "c").glob(".part-*"))


def test_the_key_follows_the_analysis_code_and_packages():
    versions = ac._versions()
    for part in ("features", "librosa=", "soundfile=", "scipy=", "code="):
        assert part in versions
