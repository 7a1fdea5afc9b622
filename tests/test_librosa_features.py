"""librosa's features without librosa (backend/music/librosa_features.py): every function gives librosa 0.11's numbers
to the bit, on edge-case signals and on real music, and a section's analysis no longer imports librosa."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from backend.music import librosa_features as lf
from backend.music.audio import resample_mono
from backend.music.demo import synthesize_demo
from backend.music.features import HOP, SR

librosa = pytest.importorskip("librosa")


def _each_function(y: np.ndarray) -> list[tuple[str, object, object]]:
    """(name, librosa's, ours) for each feature features.py takes from librosa, on float32 samples at SR."""
    D = librosa.stft(y, n_fft=2048, hop_length=HOP)
    mag = np.abs(D)
    power = librosa.feature.melspectrogram(S=mag ** 2, sr=SR)
    log_mel = librosa.power_to_db(power)
    env = librosa.onset.onset_strength(S=log_mel, sr=SR, hop_length=HOP)
    tuning = librosa.estimate_tuning(S=mag, sr=SR, n_fft=2048, bins_per_octave=36)
    return [
        ("stft", D, lf.stft(y, 2048, HOP)),
        ("melspectrogram", power, lf.melspectrogram(mag ** 2, SR)),
        ("power_to_db", log_mel, lf.power_to_db(power)),
        ("onset_strength", env, lf.onset_strength(log_mel, HOP)),
        ("mfcc", librosa.feature.mfcc(S=log_mel, n_mfcc=20), lf.mfcc(log_mel, 20)),
        ("estimate_tuning", tuning, lf.estimate_tuning(mag, SR, 2048, 36)),
        ("onset_detect", librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=HOP),
         lf.onset_detect(env, SR, HOP)),
        ("cqt", np.abs(librosa.cqt(y, sr=SR, hop_length=HOP, n_bins=252, bins_per_octave=36, tuning=tuning)),
         lf.cqt_magnitude(y, SR, HOP, tuning)),
        ("chroma_cens", librosa.feature.chroma_cens(y=y, sr=SR, hop_length=HOP, n_chroma=12, tuning=tuning),
         lf.chroma_cens(y, SR, HOP, 12, tuning)),
    ]


def _assert_same(y: np.ndarray, label: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's own warnings on short signals (n_fft larger than the input)
        for name, want, got in _each_function(np.asarray(y, dtype=np.float32)):
            want, got = np.asarray(want), np.asarray(got)
            assert got.dtype == want.dtype, f"{label}: {name} dtype {got.dtype}, librosa's {want.dtype}"
            np.testing.assert_array_equal(got, want, err_msg=f"{label}: {name}")


@pytest.mark.parametrize("n", [SR, SR + 1, 21000, 3 * SR + 77])
def test_each_function_is_librosas_to_the_bit_on_edge_signals(n):
    """Lengths from the 1-s minimum up (the CQT's low octaves then have fewer samples than their FFT), noise, tones
    and a near-silent hiss."""
    rng = np.random.default_rng(n)
    t = np.arange(n) / SR
    for label, y in [("noise", 0.1 * rng.standard_normal(n)),
                     ("tones", 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 97 * t)),
                     ("hiss", 1e-4 * rng.standard_normal(n)),
                     ("demo", synthesize_demo(seconds=n / SR + 0.1).samples[:n])]:
        _assert_same(y, f"{label} ({n} samples)")


def test_each_function_is_librosas_to_the_bit_on_real_music(shared_data):
    songs = sorted((shared_data / "librosa_example_music").glob("*.ogg"))[:3]
    songs += sorted((shared_data / "music2dance_tang2018").glob("DANCE_*/audio.mp3"))[:2]
    assert songs, f"no songs under {shared_data}"
    from backend.music.audio import audio_duration, load_audio

    for path in songs:
        _, sr = audio_duration(path)
        y = resample_mono(load_audio(path, sr, start=0.0, end=20.0), sr, SR)
        _assert_same(y, path.name)


def test_a_sections_analysis_does_not_import_librosa(tmp_path):
    """The point of the port: a cold run's analysis skips librosa's import (1 CPU-s), with its features intact."""
    song = synthesize_demo(seconds=6.0)
    sf.write(str(tmp_path / "song.wav"), song.samples, song.sr)
    code = ("import sys; from backend.music.features import analyse_section; "
            f"m = analyse_section({str(tmp_path / 'song.wav')!r}, 0.0, 5.0); "
            "print(m.num_frames, len(m.beat_frames), 'librosa' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"MACE_DANCE_ANALYSIS_CACHE": "off", "PATH": "/usr/bin:/bin"})
    frames, beats, imported = out.stdout.split()
    assert int(frames) == 150 and int(beats) > 0
    assert imported == "False", "analysing a section imported librosa"


def test_peak_pick_refuses_windows_it_was_not_ported_for():
    with pytest.raises(NotImplementedError, match="pre_max 0, post_max 1 and wait 0"):
        lf.peak_pick(np.ones(10, np.float32), pre_max=1, post_max=1, pre_avg=3, post_avg=4, delta=0.07, wait=0)


def test_non_finite_samples_and_unported_windows_are_refused():
    """librosa refused NaN or infinite audio in its STFT; the port would carry NaN into every feature instead."""
    from backend.music.audio import AudioError
    from backend.music.features import extract_features

    y = synthesize_demo(seconds=3.0).samples.copy()
    y[1000] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite samples"):
        extract_features(y, SR)
    with pytest.raises(ValueError, match="'hamming'"):
        lf.stft(np.zeros(4096, np.float32), 2048, HOP, window="hamming")
