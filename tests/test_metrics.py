import numpy as np
import pytest

from backend.metrics.beats import beat_align_score, motion_beats
from backend.metrics.contact import clips_of, pfc, pfc_clip
from backend.metrics.fid import diversity, fid
from backend.metrics.geometric import geometric_features
from backend.metrics.kinetic import kinetic_features
from rigs.motion import Motion


def kinetic_reference(P):
    """A literal, loop-by-loop transcription of spec section 1, to check the vectorised version against."""
    T = P.shape[0]
    dt = 1 / 60
    out = []
    for j in range(P.shape[1]):
        keh = kev = ee = 0.0
        for i in range(1, T):
            ks = range(max(1, i - 2), min(T - 1, i + 2) + 1)
            v = sum(P[k, j] - P[k - 1, j] for k in ks) / (len(ks) * dt)
            keh += v[0] ** 2 + v[2] ** 2
            kev += v[1] ** 2
            ks2 = range(max(1, i - 2), min(T - 2, i + 2) + 1)
            acc = [((P[k + 1, j] - P[k, j]) / dt - (P[k, j] - P[k - 1, j] / dt)) / dt for k in ks2]
            ee += np.linalg.norm(np.mean(acc, axis=0))
        out += [keh / (T - 1), kev / (T - 1), ee / (T - 1)]
    return np.array(out)


def test_kinetic_matches_the_literal_spec():
    P = np.random.default_rng(0).normal(size=(17, 24, 3)) * 0.1
    f = kinetic_features(P)
    assert f.shape == (72,)
    assert np.allclose(f, kinetic_reference(P), rtol=1e-5)


def test_kinetic_static_body_has_no_kinetic_energy():
    P = np.broadcast_to(np.random.default_rng(1).normal(size=(24, 3)), (30, 24, 3))
    f = kinetic_features(P).reshape(24, 3)
    assert np.allclose(f[:, :2], 0)
    # the precedence bug makes EE measure distance from the origin for a still body
    assert (f[:, 2] > 0).all()


def _dance(frames=240, seed=0, fps=30):
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    aa = np.zeros((frames, 24, 3))
    aa[:, 16, 2] = -0.8 + 0.6 * np.sin(2 * np.pi * t * (1 + seed * 0.1))  # left arm waves
    aa[:, 17, 2] = 0.8 + 0.6 * np.sin(2 * np.pi * t * 1.3)
    aa[:, 1, 0] = 0.3 * np.sin(2 * np.pi * t)
    aa += rng.normal(size=aa.shape) * 0.02
    trans = np.stack([0.3 * np.sin(t), np.full(frames, 0.93), 0.2 * t], axis=1)
    return Motion.from_axis_angle(aa, trans, fps=fps).joint_positions()


def test_geometric_features_on_known_poses():
    still = np.broadcast_to(Motion.rest().joint_positions()[0], (10, 24, 3))
    f = geometric_features(still)
    assert f.shape == (32,)
    assert f[4] == f[5]
    assert f[12] == f[13] == f[21] == f[22] == f[31] == 0  # nothing moves fast
    assert f[19] == f[20] == 0  # straight knees: the knee angle is not below 110 degrees
    assert f[28] == 0  # an upright trunk is not 70-110 degrees from vertical
    moving = still.copy()
    moving[5:, 21] += np.array([1.0, 0, 0]) * np.arange(5)[:, None]  # right wrist flies at 120 m/s in the spec's dt
    assert geometric_features(moving)[12] > 0.3
    lying = still[..., [1, 0, 2]]  # swap x and y: the body lies on its side
    assert geometric_features(lying)[28] == 1


def test_fid_and_diversity_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    assert abs(fid(a, a.copy())) < 1e-6
    shifted = a + np.array([3.0] + [0] * 7)
    assert fid(a, shifted) > 8.0  # normalised shift of ~3 std in one dimension: ~9
    assert diversity(a, np.repeat(a[:1], 5, axis=0)) == pytest.approx(0.0, abs=1e-9)
    assert diversity(a, a) == pytest.approx(np.sqrt(2 * 8), rel=0.15)  # expected distance of two std normals


def test_bas_high_when_motion_stops_on_the_beats_and_lower_when_shifted():
    period = 15
    t = np.arange(600)
    speed = 1.0 - np.cos(2 * np.pi * t / period)  # minima every 15 frames at 0, 15, 30, ...
    # P_{t+1} - P_t = speed[t]: motion beats (minima of s_t) sit exactly on multiples of the period
    pos = np.concatenate([[0.0], np.cumsum(speed)])[:, None, None] * np.ones((1, 24, 3)) * 0.01
    beats = np.arange(30, 570, period)
    mb = motion_beats(pos)
    assert beat_align_score(beats, mb) > 0.95
    half = np.arange(30, 570, period) + period / 2
    assert beat_align_score(half, mb) < 0.3
    assert np.isnan(beat_align_score([], mb))
    assert beat_align_score(beats, []) == 0.0


def test_pfc_rises_when_a_planted_foot_skates():
    base = _dance(150)
    planted = base.copy()
    planted[:, [7, 10], 0] = planted[0, [7, 10], 0]  # left foot pinned ...
    planted[:, [7, 10], 2] = planted[0, [7, 10], 2]
    skating = planted.copy()
    skating[:, [7, 10], 0] += np.linspace(0, 1.5, 150)[:, None]  # ... versus sliding 1.5 m
    assert pfc_clip(planted) == pytest.approx(0.0, abs=1e-9)
    assert pfc_clip(skating) > 1e-4
    assert pfc([skating]) > pfc([planted])
    assert len(clips_of(np.zeros((400, 24, 3)))) == 4  # 5-s clips, 2.5-s stride at 30 fps
