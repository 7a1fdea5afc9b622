import numpy as np
import pytest
import soundfile as sf

from backend.music.audio import AudioError, load_audio
from backend.music.demo import synthesize_demo
from backend.music.features import (BEATS, CHROMA, ENVELOPE, FEATURE_DIM, FPS, MFCC, ONSET_PEAKS, SR, analyse_file,
                                    extract_features)
from tests.threads import run_with_threads


def click_track(beat_times, seconds, sr):
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    t = np.arange(int(0.03 * sr)) / sr
    click = (np.sin(2 * np.pi * 1500 * t) * np.exp(-t * 150)).astype(np.float32)
    for b in beat_times:
        i = int(round(b * sr))
        y[i:i + len(click)] += click[: len(y) - i]
    return y


def assert_beats_match(found_frames, true_times, duration, tolerance_frames=1.0):
    true_frames = np.asarray(true_times) * FPS
    assert len(found_frames) > 0
    # every detected beat lies within one frame of a true beat ...
    dist = np.abs(np.asarray(found_frames)[:, None] - true_frames[None, :]).min(axis=1)
    assert dist.max() <= tolerance_frames, dist
    # ... and nearly every true beat away from the edges is found
    inner = true_frames[(true_frames > FPS) & (true_frames < (duration - 1) * FPS)]
    hit = np.abs(inner[:, None] - np.asarray(found_frames)[None, :]).min(axis=1) <= tolerance_frames
    assert hit.mean() >= 0.95, hit.mean()


def test_click_track_beats_are_found_within_one_frame():
    beats = 0.7 + np.arange(30) * 60 / 104.0  # 104 BPM, starting off the frame grid
    y = click_track(beats, 20.0, 22050)
    feats = extract_features(y, 22050)
    assert feats.features.shape == (600, FEATURE_DIM) and FEATURE_DIM == 35
    assert_beats_match(feats.beat_frames, beats[beats < 20], 20.0)
    assert abs(feats.tempo - 104) < 3
    # the beat and onset one-hot columns agree with the index lists
    assert np.array_equal(np.flatnonzero(feats.features[:, BEATS]), feats.beat_frames)
    assert np.array_equal(np.flatnonzero(feats.features[:, ONSET_PEAKS]), feats.onset_frames)


def test_frames_are_aligned_to_motion_time():
    """A single click at 5.0 s peaks in the onset envelope at motion frame 150 (+-1)."""
    y = click_track([5.0], 10.0, SR)
    feats = extract_features(y, SR)
    assert feats.num_frames == 10 * FPS
    assert abs(int(np.argmax(feats.features[:, ENVELOPE][:, 0])) - 150) <= 1


def test_demo_song_has_its_known_tempo_and_beats():
    song = synthesize_demo()
    assert np.array_equal(song.samples, synthesize_demo().samples)  # deterministic
    assert abs(len(song.samples) / song.sr - 20.0) < 1e-3
    feats = extract_features(song.samples, song.sr)
    assert abs(feats.tempo - song.bpm) < 2
    assert_beats_match(feats.beat_frames, song.beat_times, 20.0)
    assert np.isfinite(feats.features).all()
    assert feats.features[:, CHROMA].max() > 0 and feats.features[:, MFCC].std() > 0


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_formats_decode_to_the_same_beats(tmp_path, fmt, ext):
    song = synthesize_demo(seconds=8.0)
    path = tmp_path / f"song.{ext}"
    sf.write(str(path), song.samples, song.sr, format=fmt)
    feats = analyse_file(path)
    assert abs(feats.num_frames - 8 * FPS) <= 2  # mp3 encoders pad a few ms
    assert_beats_match(feats.beat_frames, song.beat_times, 8.0, tolerance_frames=2)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_a_long_span_decodes_in_two_halves_to_the_same_samples(tmp_path, monkeypatch, fmt, ext):
    """A long span decodes as two halves, in two threads when a second core is free: the same samples whatever the
    load, to the bit, for the whole file, a section, and a truncated file (which falls back to one read); the
    samples of one read, to the last bit of an mp3 decoder restarted mid-stream."""
    import backend.music.audio as audio

    song = synthesize_demo(seconds=8.0)
    path = tmp_path / f"song.{ext}"
    sf.write(str(path), np.stack([song.samples, song.samples[::-1]], axis=1), song.sr, format=fmt)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    monkeypatch.setattr(audio, "SPLIT_DECODE_S", 2.0)
    spans = [(path, 0.0, None), (path, 1.3, 6.9), (cut, 0.0, None)]
    loads, names = {}, {}
    for count in ("1", "2"):
        loads[count], names[count] = run_with_threads(monkeypatch, count,
                                                      lambda: [_loaded_or_error(p, a, b) for p, a, b in spans])
    assert any(n.startswith("mace-dance-decode") for n in names["2"])
    assert not any(n.startswith("mace-dance-decode") for n in names["1"])
    for one, two in zip(loads["1"], loads["2"]):
        assert type(one) is type(two)
        if isinstance(one, str):  # a truncated FLAC loses sync: the same error either way
            assert one == two
        else:
            np.testing.assert_array_equal(one, two)
    assert len(loads["2"][1]) == pytest.approx(5.6 * SR, abs=2)
    monkeypatch.setattr(audio, "SPLIT_DECODE_S", 1e9)  # one read
    for (p, a, b), two in zip(spans, loads["2"]):
        one = _loaded_or_error(p, a, b)
        if isinstance(one, str):
            assert one == two
        else:
            np.testing.assert_allclose(one, two, rtol=0, atol=0 if fmt != "MP3" else 1e-6)


def _loaded_or_error(path, start, end):
    """load_audio's samples, or the text of its AudioError."""
    try:
        return load_audio(path, SR, start=start, end=end)
    except AudioError as exc:
        return str(exc)


def test_low_sample_rate_and_many_channels(tmp_path):
    song = synthesize_demo(seconds=8.0)
    import librosa

    low = librosa.resample(song.samples, orig_sr=song.sr, target_sr=8000)
    sf.write(str(tmp_path / "8k.wav"), low, 8000)
    feats = analyse_file(tmp_path / "8k.wav")
    assert_beats_match(feats.beat_frames, song.beat_times, 8.0, tolerance_frames=2)
    six = np.stack([song.samples * g for g in (1.0, 0.5, 0.8, 0.2, 0.9, 0.3)], axis=1) / 2
    sf.write(str(tmp_path / "6ch.wav"), six, song.sr)
    assert load_audio(tmp_path / "6ch.wav", SR).ndim == 1
    feats6 = analyse_file(tmp_path / "6ch.wav")
    assert_beats_match(feats6.beat_frames, song.beat_times, 8.0)


def test_silence_gives_finite_features_and_no_beats(tmp_path):
    sf.write(str(tmp_path / "silence.wav"), np.zeros(5 * 22050, dtype=np.float32), 22050)
    feats = analyse_file(tmp_path / "silence.wav")
    assert feats.silent and len(feats.beat_frames) == 0 and feats.tempo == 0.0
    assert feats.features.shape == (150, 35) and np.isfinite(feats.features).all()


def test_bad_audio_gets_clear_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav: not a readable audio file"):
        analyse_file(tmp_path / "empty.wav")
    sf.write(str(tmp_path / "zero.wav"), np.zeros((0,), dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="zero.wav: the audio is empty"):
        analyse_file(tmp_path / "zero.wav")
    sf.write(str(tmp_path / "short.wav"), np.zeros(11025, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match=r"short.wav: the audio is 0.50 s long; at least 1 s"):
        analyse_file(tmp_path / "short.wav")
    (tmp_path / "corrupt.mp3").write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(AudioError, match="corrupt.mp3: not a readable audio file"):
        analyse_file(tmp_path / "corrupt.mp3")
    with pytest.raises(AudioError, match="missing.wav: audio file not found"):
        analyse_file(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="at least 1 s"):
        extract_features(np.zeros(1000, dtype=np.float32), SR)


def test_truncated_file_still_decodes_what_is_there(tmp_path):
    song = synthesize_demo(seconds=6.0)
    path = tmp_path / "song.wav"
    sf.write(str(path), song.samples, song.sr)
    data = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    feats = analyse_file(tmp_path / "cut.wav")
    assert abs(feats.duration - 3.0) < 0.1
    (tmp_path / "stub.wav").write_bytes(data[:2000])
    with pytest.raises(AudioError, match="stub.wav"):
        analyse_file(tmp_path / "stub.wav")


@pytest.mark.slow
def test_thirty_minute_mix(tmp_path):
    sr = 8000
    beats = 0.5 + np.arange(3590) * 0.5
    sf.write(str(tmp_path / "long.wav"), click_track(beats, 1800.0, sr), sr, subtype="PCM_16")
    feats = analyse_file(tmp_path / "long.wav")
    assert feats.features.shape == (54000, 35) and np.isfinite(feats.features).all()
    assert abs(feats.tempo - 120) < 1
    assert_beats_match(feats.beat_frames, beats, 1800.0)


def test_too_long_is_refused(tmp_path):
    sf.write(str(tmp_path / "hour.wav"), np.zeros(48 * 60 * 100, dtype=np.int16), 100)  # 48 min at 100 Hz
    with pytest.raises(AudioError, match="48.0 min long; the limit is 40 min"):
        analyse_file(tmp_path / "hour.wav")


def test_real_music_analyses(shared_data):
    path = shared_data / "librosa_example_music" / "admiralbob77_-_Choice_-_Drum-bass.ogg"
    feats = analyse_file(path)
    assert abs(feats.duration - 25.0) < 0.2
    assert 60 < feats.tempo < 200 and len(feats.beat_frames) > 20
    intervals = np.diff(feats.beat_frames)
    assert np.median(intervals) == pytest.approx(60 * FPS / feats.tempo, rel=0.1)
    assert np.isfinite(feats.features).all()


def test_cli_analyse_writes_plot_and_features(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "backend.cli", "analyse", "-o", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (out / "beats.png").stat().st_size > 10_000 and (out / "demo_song.wav").is_file()
    with np.load(out / "music_features.npz") as f:
        assert f["features"].shape == (600, 35) and abs(float(f["tempo"]) - 120) < 2
    bad = subprocess.run([sys.executable, "-m", "backend.cli", "analyse", str(tmp_path / "nope.mp3")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "error:" in bad.stderr and "nope.mp3: audio file not found" in bad.stderr
    assert "Traceback" not in bad.stderr


def _librosa_reference(y):
    """The feature path before the fast one: each librosa call on its own, librosa.beat's tracker."""
    import librosa

    env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=512)
    env = np.concatenate([env[1:], np.zeros(1, dtype=env.dtype)])
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, hop_length=512).T
    chroma = librosa.feature.chroma_cens(y=y, sr=SR, hop_length=512, n_chroma=12).T
    t0 = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=512))[0])
    tempo, beats = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=512, start_bpm=t0, tightness=100)
    return env, mfcc, chroma, float(np.atleast_1d(tempo)[0]), beats


def _songs(shared_data_dir):
    songs = [("demo", synthesize_demo(seconds=20.0).samples, synthesize_demo(seconds=20.0).sr)]
    folder = shared_data_dir / "librosa_example_music"
    for path in sorted(folder.glob("*.ogg"))[:4] if folder.is_dir() else []:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        songs.append((path.name, data, sr))
    return songs


def test_fast_feature_path_equals_librosa_calls_one_by_one(monkeypatch):
    """One STFT for onsets, MFCC and the chroma's tuning, soxr called directly, the numpy beat tracker: the numbers
    of each librosa call on its own."""
    from conftest import shared_data_dir

    monkeypatch.setenv("MACE_DANCE_BEAT_TRACKER", "librosa")  # the fallback path, the one librosa's calls describe
    from backend.music.audio import resample_mono

    for name, y, sr in _songs(shared_data_dir()):
        y = resample_mono(y, sr, SR)[: SR * 40]
        feats = extract_features(y, SR)
        env, mfcc, chroma, tempo, beats = _librosa_reference(y)
        n = feats.num_frames
        np.testing.assert_array_equal(feats.features[:, ENVELOPE][:, 0], env[:n], err_msg=name)
        np.testing.assert_allclose(feats.features[:, MFCC], mfcc[:n], rtol=0, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(feats.features[:, CHROMA], chroma[:n], rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(feats.beat_frames, beats[beats < n], err_msg=name)
        assert feats.tempo == pytest.approx(tempo), name


def test_resampling_is_librosa_soxr_hq_exactly():
    import librosa

    from backend.music.audio import resample_mono

    y = np.random.default_rng(0).normal(size=44101).astype(np.float32)
    for sr in (15360, 22050):
        ref = librosa.resample(y, orig_sr=44100, target_sr=sr, res_type="soxr_hq")
        np.testing.assert_array_equal(resample_mono(y, 44100, sr), ref)


def test_a_section_past_where_a_cut_off_mp3_decodes_is_refused(tmp_path):
    """An mp3 cut off half-way still says the whole song's length in its header: a section asked past where it
    decodes gets a sentence saying so (it danced a shorter section without a word); a section before the cut, and the
    whole file without an end, dance what is there."""
    from backend.music.audio import audio_duration
    from backend.music.features import analyse_section

    song = synthesize_demo(seconds=20.0)
    whole = tmp_path / "song.mp3"
    sf.write(str(whole), song.samples, song.sr, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert audio_duration(cut)[0] == pytest.approx(20.0, abs=0.1)  # the header still says 20 s
    with pytest.raises(AudioError, match=r"cut.mp3: the section ends at 18 s but the file could be decoded only to "
                                         r"\d+\.\d s \(its header says 20.0 s: truncated or damaged\)"):
        analyse_section(cut, 2.0, 18.0)
    assert analyse_section(cut, 1.0, 7.0).num_frames == 6 * FPS
    assert 8.0 < analyse_section(cut, 0.0, None).duration < 11.0


def test_a_section_is_decoded_alone_and_matches_the_whole_songs_analysis(tmp_path):
    from backend.music.features import analyse_section

    song = synthesize_demo(seconds=20.0)
    sf.write(str(tmp_path / "song.flac"), song.samples, song.sr)
    part = load_audio(tmp_path / "song.flac", SR, start=5.0, end=12.0)
    whole = load_audio(tmp_path / "song.flac", SR)
    assert len(part) == 7 * SR
    np.testing.assert_allclose(part[SR:-SR], whole[6 * SR: 11 * SR], atol=2e-3)  # resampler edges aside
    sec = analyse_section(tmp_path / "song.flac", 6.0, 14.0)
    ref = analyse_file(tmp_path / "song.flac").slice(180, 420)
    assert sec.num_frames == ref.num_frames == 240
    inner = slice(15, -15)
    np.testing.assert_allclose(sec.features[inner, MFCC], ref.features[inner, MFCC], atol=0.5)
    np.testing.assert_allclose(sec.features[inner, CHROMA], ref.features[inner, CHROMA], atol=0.05)
    shared = np.intersect1d(sec.beat_frames, ref.beat_frames)
    assert len(shared) >= 0.9 * len(ref.beat_frames)
    with pytest.raises(AudioError, match="the section 25..30 s is empty for a 20.0 s song"):
        analyse_section(tmp_path / "song.flac", 25.0, 30.0)


def test_memory_follows_the_section_not_the_file(tmp_path):
    """20 s of a 30-min file: only the section is decoded and analysed (the whole file would need ~1 GB)."""
    import subprocess
    import sys

    sr = 8000
    with sf.SoundFile(str(tmp_path / "mix.wav"), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        beat = click_track(0.25 + np.arange(120) * 0.5, 60.0, sr)
        for _ in range(30):
            f.write(beat)
    code = ("import resource, sys\n"
            "from backend.music.features import analyse_section\n"
            "import librosa.feature, librosa.onset\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "m = analyse_section(sys.argv[1], 600.0, 620.0)\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(m.num_frames, len(m.beat_frames), (after - before) // 1024)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "mix.wav")], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    frames, beats, grown_mb = (int(v) for v in res.stdout.split())
    assert frames == 600 and 35 <= beats <= 42  # 120 BPM: 40 beats in 20 s
    assert grown_mb < 150, f"analysing 20 s of a 30-min file grew the process by {grown_mb} MB"


def test_section_analysis_in_a_forked_process_gives_the_same_features_and_errors(tmp_path, monkeypatch):
    from backend.music.features import analyse_section
    from backend.music.prefetch import SectionAnalysis

    song = synthesize_demo(seconds=8.0)
    sf.write(str(tmp_path / "song.wav"), song.samples, song.sr)
    with SectionAnalysis(tmp_path / "song.wav", 1.0, 6.0) as pending:
        got = pending.result()
    ref = analyse_section(tmp_path / "song.wav", 1.0, 6.0)
    np.testing.assert_array_equal(got.features, ref.features)
    np.testing.assert_array_equal(got.beat_frames, ref.beat_frames)
    with pytest.raises(AudioError, match="missing.wav: audio file not found"):
        SectionAnalysis(tmp_path / "missing.wav").result()
    lost = SectionAnalysis(tmp_path / "song.wav", 1.0, 6.0)
    lost._proc.kill()  # the helper is gone and its pipe with it: the work is done in-process instead
    lost._proc.join()
    lost._conn.close()
    np.testing.assert_array_equal(lost.result().features, ref.features)


def test_the_mp3_decoders_own_lines_are_held_back_and_others_pass():
    """What libmpg123 prints itself (a cut-off file's Xing warning among them) is held back from the terminal; any
    other line written meanwhile is passed on."""
    from backend.music.audio import _DECODER_NOISE

    noise = ["[src/libmpg123/id3.c:3:] warning: Non-syncsafe size", "Note: Trying to resync...",
             "Warning: Xing stream size off by more than 1%, fuzzy seeking may be even more fuzzy than by design!"]
    assert all(_DECODER_NOISE.match(line) for line in noise)
    assert not any(_DECODER_NOISE.match(line) for line in ("Warning: the dance is short", "error: no such file"))
