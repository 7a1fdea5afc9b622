"""Seam smoothing after masked denoising: joins become smooth, kept values and far frames stay as they were."""

import numpy as np

from backend.motion.seams import smooth_loop_seam, smooth_seams


def _jerk(x):
    return np.abs(np.diff(x, n=3, axis=0))


def test_a_jump_next_to_kept_frames_is_bent_into_a_smooth_join():
    t = np.arange(120, dtype=np.float64)
    kept_part = np.sin(t / 9.0)
    generated = np.sin(t / 9.0 + 0.3) + 0.4  # the model's fill: right shape, but it jumps at the seam
    x = np.stack([np.where(t < 60, kept_part, generated), np.cos(t / 7.0)], axis=1)
    kept = np.zeros_like(x, dtype=bool)
    kept[:60, 0] = True
    kept[:, 1] = True  # a channel kept everywhere has no seam
    out = smooth_seams(x, kept, window=12)
    assert np.array_equal(out[kept], x[kept])  # kept values exact
    assert np.array_equal(out[72:, 0], x[72:, 0])  # beyond the window: the generated motion as it was
    seam = slice(55, 66)
    assert _jerk(out[:, 0])[seam].max() < 0.1 * _jerk(x[:, 0])[seam].max()
    # close to the gentlest possible join: a quintic ease over the window has peak jerk 60 * jump / window^3
    jump = abs(generated[60] - kept_part[60])
    assert _jerk(out[:, 0])[seam].max() < 2.0 * 60 * jump / 12 ** 3
    # a kept range in the middle: both of its seams are joined
    kept2 = np.zeros((120, 1), bool)
    kept2[40:80] = True
    y = np.where(kept2[:, 0], kept_part, generated)[:, None]
    out2 = smooth_seams(y, kept2)
    assert np.array_equal(out2[40:80], y[40:80])
    for s in (39, 79):
        assert _jerk(out2[:, 0])[s - 4:s + 2].max() < 0.1 * _jerk(y[:, 0])[s - 4:s + 2].max()


def test_nothing_to_do_without_seams():
    x = np.random.default_rng(0).normal(size=(50, 3))
    assert np.array_equal(smooth_seams(x, np.zeros((50, 3), bool)), x)
    assert np.array_equal(smooth_seams(x, np.ones((50, 3), bool)), x)


def test_loop_join_is_smoothed_and_travel_is_kept():
    t = np.arange(90, dtype=np.float64)
    pose = np.sin(2 * np.pi * t / 90 + 0.2) + 0.02 * t  # almost periodic: a small jump from the end to the start
    root_x = 0.01 * t  # travels steadily: the next loop starts where this one left off
    x = np.stack([pose, root_x], axis=1)
    out = smooth_loop_seam(x, travel_channels=[1], window=8)

    def joined(a):
        return np.concatenate([a[-8:, 0], a[:8, 0]])

    assert _jerk(joined(out)).max() < 0.2 * _jerk(joined(x)).max()
    np.testing.assert_allclose(out[:, 1], x[:, 1], atol=1e-9)  # a steady travel already joins: left alone
    np.testing.assert_array_equal(out[10:80], x[10:80])


def test_a_seamless_join_keeps_the_dance_swinging():
    # the bridge minimises the whole jerk, so it flattens some swing beside any seam; at the default stiffness a
    # seamless join of a 1-Hz swing (a dance's step rate) moves by under 2 % of its amplitude, a 1.5-Hz one under 20 %
    t = np.arange(200) / 30.0
    kept = np.zeros((200, 1), bool)
    kept[:100] = True
    for hz, most in ((1.0, 0.02), (1.5, 0.2)):
        x = np.sin(2 * np.pi * hz * t)[:, None]
        assert np.abs(smooth_seams(x, kept) - x).max() < most
    # while a jump at the seam is bent into a join no jerkier than the swing itself
    x = np.sin(2 * np.pi * 1.5 * t)[:, None]
    x[100:] += 0.5
    jerk = np.abs(np.diff(smooth_seams(x, kept)[:, 0], 3))
    assert jerk[90:110].max() < 3 * np.median(jerk) and np.abs(np.diff(x[:, 0], 3))[90:110].max() > 20 * np.median(jerk)


def test_seam_distances_and_mask_patterns_match_their_definitions():
    """_near_seams finds each frame's nearest seam by search and _patterns groups the mask's columns by hashing:
    the same frames, distances and groups as the brute-force definitions, on random masks."""
    from backend.motion.seams import _near_seams, _patterns

    rng = np.random.default_rng(0)
    for trial in range(200):
        T, window = int(rng.integers(2, 200)), int(rng.integers(1, 20))
        pattern = rng.random(T) < rng.random() if trial % 2 else np.repeat(rng.random(T // 5 + 1) < 0.5, 5)[:T]
        seams = np.flatnonzero(pattern[1:] != pattern[:-1])
        free, dist = _near_seams(pattern, window)
        if seams.size == 0:
            assert free.size == 0
            continue
        frames = np.arange(T)[:, None]
        brute = np.min(np.minimum(np.abs(frames - seams), np.abs(frames - seams - 1)), axis=1)
        want = np.flatnonzero(~pattern & (brute < window))
        np.testing.assert_array_equal(free, want)
        np.testing.assert_array_equal(dist, brute[want].astype(np.float64))
        kept = rng.random((T, 7)) < 0.5
        kept[:, 3] = kept[:, 1]
        groups = _patterns(kept)
        assert len(groups) == len(np.unique(kept.T, axis=0))
        assert sorted(int(c) for _, chans in groups for c in chans) == list(range(7))
        for column, chans in groups:
            assert all(np.array_equal(kept[:, c], column) for c in chans)
