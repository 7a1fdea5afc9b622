"""Section 11 figures (figure distance, near-verbatim runs, acceleration) on synthetic dances."""

import numpy as np
import pytest

from backend.metrics.figures import (FigureIndex, figure_score, longest_run, median_acceleration, score_motion,
                                     window_features)
from tests.builders import smooth_dance


@pytest.fixture(scope="module")
def train() -> list[np.ndarray]:
    return [smooth_dance(20.0, seed).joint_positions() for seed in range(3)]


@pytest.fixture(scope="module")
def index(train) -> FigureIndex:
    return FigureIndex(train, ["a", "b", "c"])


def turned(joints: np.ndarray, yaw: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return joints @ R.T + np.array([shift[0], 0.0, shift[1]])


def test_windows_are_2s_every_half_second_with_480_points(train):
    f, starts = window_features(train[0])
    assert f.shape == (37, 1440)  # 600 frames: starts 0, 15, ..., 540
    assert starts[-1] == 540


def test_a_copied_train_dance_is_at_zero_distance_with_a_whole_verbatim_run(index, train):
    s = figure_score(index, train[1])
    assert s.distance < 1e-6
    assert s.verbatim == pytest.approx(20.0)
    # scored against the other dances only (its own windows excluded), it is neither close nor verbatim
    other = figure_score(index, train[1], exclude=1)
    assert other.distance > 0.06 and other.verbatim == 0.0


def test_a_turned_and_moved_copy_is_still_at_zero_distance(index, train):
    moved = turned(train[2][30:420], 2.3, (3.0, -1.5))
    s = figure_score(index, moved)
    assert s.distance < 1e-6
    assert s.verbatim == pytest.approx(13.0)  # 390 frames: 25 windows, 24 steps of 0.5 s + 2 s


def test_noise_raises_the_distance_by_its_rms(index, train):
    sigma = 0.01
    noisy = train[0].copy()
    # joints other than the root and the hips: the window's frame (root, hip line) stays put, 21 of 24 points move
    noisy[:, 3:] += np.random.default_rng(7).normal(size=noisy[:, 3:].shape) * sigma
    s = figure_score(index, noisy)
    assert s.distance == pytest.approx(sigma * np.sqrt(3 * 21 / 24), rel=0.05)


def test_a_time_shuffled_dance_has_no_long_run(index, train):
    blocks = np.split(train[0], 10)  # 2-s blocks, reversed so no block follows its own predecessor
    shuffled = np.concatenate(blocks[::-1])
    s = figure_score(index, shuffled)
    assert s.verbatim <= 2.0 + 1e-9
    assert s.distance > 0.06  # most windows straddle a cut: no train window looks like that


def test_verbatim_chains_need_one_dance_and_advancing_offsets():
    d = np.zeros(6)
    dance = np.zeros(6, int)
    assert longest_run(d, dance, np.array([0, 15, 30, 45, 60, 75])) == pytest.approx(4.5)
    assert longest_run(d, dance, np.array([0, 30, 60, 90, 120, 150])) == pytest.approx(4.5)  # 1 s per step: still
    assert longest_run(d, dance, np.array([0, 15, 15, 30, 45, 60])) == pytest.approx(3.5)  # standing still breaks
    assert longest_run(d, dance, np.array([0, 15, 60, 75, 90, 105])) == pytest.approx(3.5)  # a jump breaks
    assert longest_run(d, np.array([0, 0, 1, 1, 1, 1]), np.array([0, 15, 30, 45, 60, 75])) == pytest.approx(3.5)
    assert longest_run(np.array([0, 0, 0.07, 0, 0, 0]), dance, np.arange(6) * 15) == pytest.approx(3.0)
    assert longest_run(np.full(6, 0.07), dance, np.arange(6) * 15) == 0.0


def test_median_acceleration_of_a_constant_acceleration_is_that_acceleration():
    t = np.arange(90) / 30.0
    joints = np.zeros((90, 24, 3))
    joints[:, :, 1] = 0.5 * 2.5 * t[:, None] ** 2
    assert median_acceleration(joints) == pytest.approx(2.5)
    assert median_acceleration(joints[:, :, [0, 0, 0]]) == 0.0


def test_a_motion_at_another_frame_rate_is_scored_at_30fps(train):
    dance = smooth_dance(10.0, 11)
    index = FigureIndex.from_motions([dance])
    assert score_motion(index, dance.resample(60.0)).distance < 0.005
