"""Dense rhythm inputs, tempo-stretched training windows and the style condition."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from backend.motion.conditioning import STYLES, StyleError, music_dim, music_inputs, style_index
from backend.motion.model import Denoiser, DenoiserConfig
from backend.motion.representation import ROOT, Normalizer
from backend.motion.windows import stretch_music
from backend.music.features import BEATS, FEATURE_DIM, ONSET_PEAKS, MusicFeatures
from backend.music.rhythm import RHYTHM_DIM, beat_phase, local_period, rhythm_features
from rigs.motion import Motion


def _music(T=300, period=15, offset=4):
    beats = np.arange(offset, T, period)
    feats = np.zeros((T, FEATURE_DIM), np.float32)
    feats[:, 0] = 0.1
    feats[beats, 0] = 3.0  # envelope peaks on the beats
    feats[beats, BEATS] = 1.0
    feats[beats, ONSET_PEAKS] = 1.0
    feats[:, 1] = np.arange(T) / T  # a ramp standing in for a slowly changing MFCC
    return MusicFeatures(feats, beats, beats.copy(), 120.0, T / 30, False)


@dataclass
class _Clip:
    """What the window sampler reads of a dataset clip."""

    name: str
    style: str
    motion: Motion
    music: MusicFeatures


def _clip(name: str, style: str, frames: int, music: MusicFeatures) -> _Clip:
    """A clip whose dancer stands still in the rest pose on `music`."""
    rot = np.zeros((frames, 24, 4))
    rot[..., 0] = 1.0
    return _Clip(name, style, Motion(rot, np.zeros((frames, 3)) + [0, 0.9, 0], fps=30), music)


def _flat_normalizer() -> Normalizer:
    """Features as they are (mean 0, scale 1)."""
    return Normalizer(np.zeros(151), np.ones(151), np.zeros(35), np.ones(35))


def test_beat_phase_runs_from_beat_to_beat_and_through_intro_and_outro():
    beats = np.array([10, 25, 40, 55])
    phase = beat_phase(beats, 70)
    assert phase[10] == pytest.approx(0) and phase[25] == pytest.approx(0)
    assert phase[17] == pytest.approx(7 / 15) and phase[32] == pytest.approx(7 / 15)
    assert phase[0] == pytest.approx(1 - 10 / 15)  # the intro keeps the first interval's period
    assert phase[69] == pytest.approx(14 / 15)  # the outro keeps the last one
    two = beat_phase(beats, 70, cycle=2)
    assert two[25] == pytest.approx(0.5) and two[40] == pytest.approx(0.0)
    assert np.isnan(beat_phase(np.array([5]), 20)).all()


def test_rhythm_columns_for_a_steady_120_bpm_grid():
    m = _music()
    r = rhythm_features(m.beat_frames, m.features[:, 0])
    assert r.shape == (300, RHYTHM_DIM) and r.dtype == np.float32
    on = m.beat_frames
    np.testing.assert_allclose(r[on, 1], 1.0, atol=1e-6)  # cos(phase) = 1 on beats
    np.testing.assert_allclose(r[on + 7, 1], np.cos(2 * np.pi * 7 / 15), atol=1e-5)
    np.testing.assert_allclose(r[:, 5], 0.0, atol=1e-6)  # 15 frames at 30 fps = 120 bpm -> log2(1) = 0
    assert r[on, 4].min() == pytest.approx(1.0) and r[on + 7, 4].max() < 0.01  # beat curve
    assert r[on, 6].mean() > 3 * r[on + 7, 6].mean()  # accents on the beats
    np.testing.assert_allclose(local_period(on, 300), 15.0)


def test_no_beats_means_zero_phase_columns_not_nan():
    r = rhythm_features(np.array([], int), np.zeros(90))
    assert np.isfinite(r).all() and np.abs(r).max() == 0


def test_music_inputs_follow_the_model_config():
    m = _music()
    assert music_inputs(m, rhythm=False).shape == (300, FEATURE_DIM) == (300, music_dim(False))
    both = music_inputs(m, rhythm=True)
    assert both.shape == (300, music_dim(True)) and np.array_equal(both[:, :FEATURE_DIM], m.features)


def test_stretched_music_plays_faster_and_says_so():
    m = _music()
    inputs = music_inputs(m, rhythm=True)
    rate = 1.25
    src = 20.0 + np.arange(120) * rate
    out = stretch_music(inputs, m.beat_frames, m.onset_frames, src, rate, rhythm=True)
    beats_out = np.flatnonzero(out[:, BEATS])
    assert np.allclose(np.diff(beats_out), 15 / rate, atol=1)  # beats come 1.25x as often
    np.testing.assert_allclose(out[:, FEATURE_DIM + 5], np.log2(rate), atol=1e-5)  # tempo column moved
    np.testing.assert_allclose(out[:, 1], src / 300, atol=1e-6)  # continuous columns interpolated in time
    phase = np.hypot(out[:, FEATURE_DIM], out[:, FEATURE_DIM + 1])
    np.testing.assert_allclose(phase, 1.0, atol=1e-5)  # sin/cos stay on the unit circle
    assert out[beats_out, FEATURE_DIM + 4].min() == pytest.approx(1.0)
    # unstretched: a plain slice of the inputs
    same = stretch_music(inputs, m.beat_frames, m.onset_frames, 30.0 + np.arange(100), 1.0, rhythm=True)
    np.testing.assert_allclose(same, inputs[30:130], atol=1e-5)


def test_style_names_and_models_without_styles():
    assert style_index("auto", 4) == 0 and style_index(None, 0) == 0
    assert STYLES[style_index("Cha-Cha", 4)] == "cha-cha" and STYLES[style_index("waltz", 4)] == "waltz"
    with pytest.raises(StyleError, match="unknown style 'salsa'"):
        style_index("salsa", 4)
    with pytest.raises(StyleError, match="no style condition"):
        style_index("waltz", 0)


def test_style_and_music_skip_change_the_prediction_and_drop_removes_them():
    torch.manual_seed(0)
    cfg = DenoiserConfig(d_model=32, n_blocks=1, n_music_layers=1, n_heads=2, d_state=8, headdim=16, chunk_size=16,
                         attn_window=4, dropout=0.0, rhythm=True, music_dim=music_dim(True), music_skip=True,
                         n_styles=4, style_film=True)
    model = Denoiser(cfg).eval()
    for p in model.parameters():  # FiLM starts as the identity; give every path some weight
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(2, 24, cfg.motion_dim)
    music = torch.randn(2, 24, cfg.music_dim)
    t, beta = torch.tensor([5, 5]), torch.ones(2)

    def predict(m, drop, style):
        s = torch.tensor([style, style])
        return model(x, t, beta, model.encode_music(m, drop, s), s)

    with torch.no_grad():
        waltz, rumba = predict(music, None, 4), predict(music, None, 2)
        drop = torch.ones(2, dtype=torch.bool)
        none_a = predict(music, drop, 0)
        none_b = predict(torch.randn_like(music), drop, 0)
        waltz_alone = predict(music, drop, 4)
        waltz_alone_b = predict(torch.randn_like(music), drop, 4)
        rumba_alone = predict(music, drop, 2)
        film_only = model(x, t, beta, model.encode_music(music, None, torch.tensor([4, 4])))  # no style in FiLM
    assert (waltz - rumba).abs().max() > 1e-3
    assert (waltz - film_only).abs().max() > 1e-3  # the style reaches the blocks' FiLM too
    torch.testing.assert_close(none_a, none_b)  # dropped condition: neither music nor style reaches the output
    torch.testing.assert_close(waltz_alone, waltz_alone_b)  # a style without music: the music does not count ...
    assert (waltz_alone - rumba_alone).abs().max() > 1e-3  # ... and the style does


def test_style_guidance_pushes_only_an_asked_style():
    from backend.motion.sampling import SampleOptions, sample

    torch.manual_seed(0)
    cfg = DenoiserConfig(d_model=32, n_blocks=1, n_music_layers=1, n_heads=2, d_state=8, headdim=16, chunk_size=16,
                         attn_window=4, dropout=0.0, n_styles=4, style_film=True)
    model = Denoiser(cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    music = torch.randn(30, cfg.music_dim)

    def run(style, w):
        return sample(model, music, SampleOptions(steps=3, seed=1, style=style, style_guidance=w, beat_guidance=0))

    torch.testing.assert_close(run("auto", 0.0), run("auto", 3.0))  # nothing asked, nothing pushed (one pass)
    plain, pushed, harder = run("waltz", 0.0), run("waltz", 3.0), run("waltz", 6.0)
    assert (plain - pushed).abs().max() > 1e-3
    # the push points away from "auto": the guided result lies further from it than the unguided one
    auto = run("auto", 0.0)
    assert (harder - auto).norm() > (pushed - auto).norm() > (plain - auto).norm()
    with pytest.raises(ValueError, match="style guidance must be in"):
        SampleOptions(style_guidance=25.0).validate()


def test_crossed_dance_is_retimed_beat_on_beat_onto_the_other_song():
    from backend.motion.windows import cross_timing

    rng = np.random.default_rng(0)
    dance_beats = np.arange(7, 600, 15)  # 120 bpm
    song_beats = np.arange(3, 400, 21)  # 85.7 bpm
    for _ in range(20):
        start = int(rng.integers(0, 250))
        src = cross_timing(dance_beats, 600, song_beats, start, 150, 1.5, rng)
        assert src is not None and len(src) == 150
        rate = src[1] - src[0]
        assert rate == pytest.approx(15 / 21)  # slowed to the song's beat period (nearer 1 than doubling)
        assert 0 <= src[0] and src[-1] <= 599
        # every dance beat inside the window lands on a song beat (both grids are steady)
        out = (dance_beats[(dance_beats >= src[0]) & (dance_beats <= src[-1])] - src[0]) / rate + start
        assert len(out) >= 5
        assert np.abs(out[:, None] - song_beats[None, :]).min(axis=1).max() < 1e-6
    # a 3x tempo gap is beyond any half/double and the rate limit: no crossed pair
    assert cross_timing(np.arange(0, 600, 10), 600, np.arange(0, 400, 30), 0, 150, 1.5, rng) is None
    assert cross_timing(dance_beats, 600, np.array([5]), 0, 150, 1.5, rng) is None


def test_cross_style_windows_carry_the_dance_style_on_another_song(tmp_path):
    from backend.motion.windows import AugmentConfig, WindowSampler

    clips = [_clip("a", "waltz", 400, _music(400, 21, 2)), _clip("b", "cha-cha", 400, _music(400, 15, 5))]
    clips[1].music.features[:, 1] = -5.0  # marks song b's inputs
    aug = AugmentConfig(p_stretch=0.0, mirror=False, p_style_drop=0.0, p_cross_style=0.99)
    sampler = WindowSampler(clips, 60, _flat_normalizer(), rhythm=False, augment=aug, styles=True)
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        _, music, style = sampler.draw_one(rng)
        on_b = bool((music[:, 1] == -5.0).all())
        seen.add((STYLES[style], on_b))
    # crossed: the waltz dance on the cha-cha song and the cha-cha dance on the waltz song, labelled by the dance
    assert seen == {("waltz", True), ("cha-cha", False)}


def test_balanced_draws_give_a_rare_style_its_square_root_share():
    from backend.motion.windows import AugmentConfig, WindowSampler

    # 9 waltz clips to one cha-cha clip of the same length: 10 % of the frames
    clips = [_clip(f"w{i}", "waltz", 200, _music(200, 15, 4)) for i in range(9)]
    clips.append(_clip("c", "cha-cha", 200, _music(200, 15, 4)))
    norm = _flat_normalizer()
    aug = AugmentConfig(p_stretch=0.0, mirror=False, p_style_drop=0.0)

    def cha_cha_share(**kw):
        sampler = WindowSampler(clips, 60, norm, rhythm=False, augment=aug, **kw)
        return sampler.weights[-1]

    assert cha_cha_share(styles=False) == pytest.approx(0.1)  # a style-less model draws by frames
    # balanced: style shares go as the square root of their frames, sqrt(1) / (sqrt(1) + sqrt(9)) = 1/4
    assert cha_cha_share(styles=False, balance=True) == pytest.approx(0.25)
    assert cha_cha_share(styles=True) == pytest.approx(0.25)  # a style condition balances by default
    assert cha_cha_share(styles=True, balance=False) == pytest.approx(0.1)


def test_disguised_music_is_the_same_music_transposed_and_re_equalised():
    import librosa

    from backend.motion.windows import disguise_music
    from backend.music.features import CHROMA, ENVELOPE, MFCC, N_MFCC

    rng = np.random.default_rng(0)
    log_mel = rng.normal(-40.0, 10.0, (128, 90)).astype(np.float32)  # bands x frames
    inputs = _music(90, 15, 4).features.copy()
    inputs[:, MFCC] = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC).T
    inputs[:, CHROMA] = rng.random((90, 12))
    mean = np.full(FEATURE_DIM, 7.0, dtype=np.float32)
    rolls = set()
    for seed in range(6):
        out = disguise_music(inputs, np.random.default_rng(seed), eq_db=6.0, p_drop_block=0.0, mean=mean)
        # rhythm untouched: envelope, onsets, beats
        for col in (ENVELOPE, slice(ONSET_PEAKS, BEATS + 1)):
            assert np.array_equal(out[:, col], inputs[:, col])
        # chroma: the same pitch classes, rolled (a transposition)
        shift = next(k for k in range(12) if np.allclose(np.roll(inputs[:, CHROMA], k, axis=1), out[:, CHROMA]))
        rolls.add(shift)
        # MFCCs: those of the log-mel bands through a smooth equaliser (librosa's own DCT convention)
        offset = out[:, MFCC] - inputs[:, MFCC]
        assert np.allclose(offset, offset[0], atol=1e-3) and np.abs(offset[0]).max() > 0.5
        assert np.allclose(offset[0][4:], 0.0, atol=1e-3)  # a level, a tilt and two bumps: four DCT terms only
        from scipy.fft import idct

        gain = idct(np.pad(offset[0], (0, 128 - N_MFCC)), type=2, norm="ortho")
        assert np.abs(np.diff(gain, 2)).max() < 0.1  # a smooth curve over the bands, not a per-band jitter
        eq = librosa.feature.mfcc(S=log_mel + gain[:, None].astype(np.float32), n_mfcc=N_MFCC).T
        assert np.allclose(eq, out[:, MFCC], atol=1e-2)
    assert len(rolls) > 2
    blank = disguise_music(inputs, rng, eq_db=6.0, p_drop_block=1.0, mean=mean)
    assert (blank[:, MFCC] == 7.0).all() and (blank[:, CHROMA] == 7.0).all()
    assert np.array_equal(blank[:, ENVELOPE], inputs[:, ENVELOPE])


def test_sampler_disguises_the_share_of_windows_asked():
    from backend.motion.windows import AugmentConfig, WindowSampler
    from backend.music.features import MFCC

    clips = [_clip("a", "waltz", 400, _music(400, 21, 2))]
    aug = AugmentConfig(p_stretch=0.0, mirror=False, p_style_drop=0.0, p_disguise=0.5)
    sampler = WindowSampler(clips, 60, _flat_normalizer(), rhythm=False, augment=aug, styles=False)
    rng = np.random.default_rng(3)
    raw = clips[0].music.features[:, MFCC]
    disguised = 0
    for _ in range(200):
        _, music, _ = sampler.draw_one(rng)
        # the window's frames are some run of the song's; undisguised windows match one exactly
        disguised += not any(np.array_equal(music[:, MFCC], raw[s:s + 60]) for s in range(400 - 60 + 1))
    assert 70 < disguised < 130


def test_cross_song_windows_set_a_dance_to_another_song_of_its_style():
    from backend.motion.windows import AugmentConfig, WindowSampler

    clips = [_clip("a", "cha-cha", 400, _music(400, 15, 2)), _clip("b", "cha-cha", 400, _music(400, 16, 5)),
             _clip("c", "waltz", 400, _music(400, 15, 3))]
    for n, clip in enumerate(clips):
        clip.music.features[:, 1] = -5.0 - n  # marks each song's inputs
    aug = AugmentConfig(p_stretch=0.0, mirror=False, p_style_drop=0.0, p_cross_song=0.99)
    sampler = WindowSampler(clips, 60, _flat_normalizer(), rhythm=False, augment=aug, styles=False)
    song_of = lambda music: int(round(-5.0 - music[0, 1]))  # noqa: E731
    for seed in range(10):
        for k, other in ((0, 1), (1, 0)):  # the cha-cha dances swap songs
            crossed = sampler.cross_pair(np.random.default_rng(seed), k, same_style=True)
            assert crossed is not None and song_of(crossed[1]) == other
        assert song_of(sampler.cross_pair(np.random.default_rng(seed), 0)[1]) == 2  # another style's song
    # the waltz, alone in its style, has no other song to go to
    assert sampler.cross_pair(np.random.default_rng(0), 2, same_style=True) is None
    # through draw_one: each dance (told apart by its dancer's height) lands on the other song of its style
    for n, clip in enumerate(clips):
        clip.motion.root_translation[:, 1] = 0.9 + 0.1 * n
    for share, swapped in ((0.99, {0: 1, 1: 0, 2: 2}), (0.0, {0: 0, 1: 1, 2: 2})):
        aug.p_cross_song = share
        for seed in range(30):
            motion, music, _ = sampler.draw_one(np.random.default_rng(seed))
            dance = int(round((motion[0, ROOT.start + 1] - 0.9) / 0.1))
            assert song_of(music) == swapped[dance]
    # crossed windows are disguised like any other (the disguise is drawn once, after the pairing)
    aug.p_cross_song, aug.p_disguise = 0.99, 1.0
    for seed in range(10):
        _, music, _ = sampler.draw_one(np.random.default_rng(seed))
        assert np.abs(music[0, 1] - np.array([-5.0, -6.0, -7.0])).min() > 1e-3


def test_cross_place_windows_set_a_dance_to_another_stretch_of_its_own_song_beat_on_beat():
    from backend.motion.windows import AugmentConfig, WindowSampler

    T = 600
    clips = [_clip("a", "rumba", T, _music(T, 15, 2)), _clip("b", "rumba", T, _music(T, 15, 5))]
    clips[1].music.features[:, 1] += 10.0  # tells the songs apart
    for clip in clips:  # the dancer's height tells the dance frame: 0.9 m + 1 mm per frame
        clip.motion.root_translation[:, 1] = 0.9 + 1e-3 * np.arange(T)
    aug = AugmentConfig(p_stretch=0.0, mirror=False, p_style_drop=0.0, p_cross_place=0.99)
    sampler = WindowSampler(clips, 60, _flat_normalizer(), rhythm=False, augment=aug, styles=False)
    moved = 0
    for seed in range(40):
        motion, music, _ = sampler.draw_one(np.random.default_rng(seed))
        song_start = (music[0, 1] % 10.0) * T  # the ramp gives the music's first frame
        dance_start = (motion[0, ROOT.start + 1] - 0.9) / 1e-3
        # beat on beat: both songs have a beat every 15 frames, so the dance moves by whole beats
        offset = dance_start - song_start
        assert abs(offset / 15 - round(offset / 15)) < 0.02
        moved += abs(offset) > 1
    assert moved >= 30  # nearly every window hears another stretch of its song
    # the song heard is the dance's own: the other clip's song is never drawn for it
    for seed in range(20):
        crossed = sampler.cross_pair(np.random.default_rng(seed), 1, same_song=True)
        assert crossed is not None and crossed[1][0, 1] > 5.0
