"""Other recordings of a train song: re-pitched and re-equalised audio, analysed anew, heard by training windows."""

from dataclasses import replace

import numpy as np
import pytest

from backend.data.audio_variants import AudioVariant, draw_variants, equalise, render, variant_features
from backend.music.features import HOP, SR
from tests.test_rhythm import _clip, _flat_normalizer, _music


def _peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1.0 / SR)[spec.argmax()])


def test_render_moves_the_pitch_keeps_length_and_timing():
    t = np.arange(4 * SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    up = render(tone, AudioVariant(2, (0.0, 0.0, 0.0, 0.0), 0))
    assert len(up) == len(tone)
    assert _peak_hz(up[SR:3 * SR]) == pytest.approx(440.0 * 2 ** (2 / 12), rel=0.01)
    # a click train stays where it was (a pitch shift does not move time), up to the variant's sub-frame delay
    clicks = np.zeros(4 * SR, np.float32)
    clicks[SR::SR // 2] = 0.9
    delayed = render(clicks, AudioVariant(0, (0.0, 0.0, 0.0, 0.0), 100))
    assert np.flatnonzero(np.abs(delayed) > 0.45).tolist() == (np.flatnonzero(clicks) + 100).tolist()


def test_equaliser_tilts_the_spectrum_without_moving_the_signal():
    t = np.arange(2 * SR) / SR
    low, high = np.sin(2 * np.pi * 100.0 * t), np.sin(2 * np.pi * 5000.0 * t)
    tilt = (0.0, 6.0, 0.0, 0.0)  # +6 dB at the bottom of the range, -6 dB at the top
    out_low, out_high = equalise(low, SR, tilt), equalise(high, SR, tilt)
    gain = lambda a, b: 20 * np.log10(np.std(a) / np.std(b))  # noqa: E731
    assert gain(out_low, low) > 4.0 and gain(out_high, high) < -3.0
    assert np.corrcoef(out_low, low)[0, 1] > 0.999  # zero phase: the tone is scaled, not shifted


def test_variants_are_seeded_distinct_and_their_features_line_up_with_the_dance():
    a, b = draw_variants(4, seed=7), draw_variants(4, seed=7)
    assert a == b and len({v.semitones for v in a}) == 4 and len({v.key for v in a}) == 4
    assert all(0 <= v.delay < HOP and v.semitones != 0 for v in a)
    assert draw_variants(4, seed=8) != a
    rng = np.random.default_rng(0)
    t = np.arange(6 * SR) / SR
    beat = (np.sin(2 * np.pi * 2.0 * t) > 0.995).astype(np.float32)  # 120 bpm clicks over a chord
    audio = (0.2 * np.sin(2 * np.pi * 330 * t) + 0.2 * np.sin(2 * np.pi * 415 * t) + 0.6 * beat
             + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    music = variant_features(audio, 170, a[0])
    assert music.num_frames == 170
    with pytest.raises(ValueError, match="frames"):
        variant_features(audio, 10_000, a[0])


def test_sampler_hears_the_variants_for_the_share_asked():
    from backend.motion.windows import AugmentConfig, WindowSampler
    from backend.music.features import MFCC

    clips = [_clip("a", "waltz", 400, _music(400, 21, 2))]
    variant = _music(400, 21, 2)
    variant.features[:, MFCC] += 10.0  # another recording: the same beats, another sound
    aug = AugmentConfig(p_stretch=0.0, mirror=False, p_style_drop=0.0, p_variant=0.5)
    sampler = WindowSampler(clips, 60, _flat_normalizer(), rhythm=False, augment=aug, styles=False,
                            variants={"a": [variant]})
    rng = np.random.default_rng(5)
    heard = [sampler.draw_one(rng)[1][:, 1].mean() > 5.0 for _ in range(200)]
    assert 70 < sum(heard) < 130
    aug.p_variant = 0.0
    assert not any(sampler.draw_one(rng)[1][:, 1].mean() > 5.0 for _ in range(50))
    # a variant cut to other frames than the dance's cannot be lined up with it
    with pytest.raises(ValueError, match="frames do not match"):
        WindowSampler(clips, 60, _flat_normalizer(), rhythm=False, augment=aug, styles=False,
                      variants={"a": [replace(variant, features=variant.features[:300])]})
