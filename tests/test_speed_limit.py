"""The speed limit: fast stretches of a finished dance are re-timed, poses and everything outside kept."""

import numpy as np
import pytest

from backend.motion.sampling import SampleOptions
from backend.motion.speed_limit import limit_motion_speed, slow_map
from rigs import rotations as rot
from rigs.motion import Motion


def _spin_dance(T: int = 150, fast: tuple[int, int] = (70, 78), deg_per_frame: float = 30.0) -> Motion:
    """A dancer with arms out turning slowly (3 deg per frame) except a burst of `deg_per_frame` in `fast`."""
    rate = np.full(T, 3.0)
    rate[fast[0]:fast[1]] = deg_per_frame
    yaw = np.radians(np.concatenate([[0.0], np.cumsum(rate[:-1])]))
    aa = np.zeros((T, 24, 3))
    aa[:, 0, 1] = yaw
    # SMPL's rest pose is the T-pose: the arms are already out to the side
    trans = np.zeros((T, 3))
    trans[:, 1] = 0.95
    trans[:, 0] = np.linspace(0, 1.0, T)  # walking across while turning
    return Motion.from_axis_angle(aa, trans, fps=30)


def _max_speed(m: Motion) -> np.ndarray:
    j = m.joint_positions()
    return np.linalg.norm(j[1:] - j[:-1], axis=-1).max(axis=1) * m.fps


def test_a_fast_turn_is_slowed_under_the_cap_and_the_rest_is_untouched():
    m = _spin_dance()
    assert _max_speed(m).max() > 9.0  # the burst swings the hands faster than the cap
    out, n = limit_motion_speed(m, cap=7.5)
    assert n == 1 and out.num_frames == m.num_frames
    assert _max_speed(out).max() <= 7.5 + 1e-6
    far = np.r_[0:40, 110:150]  # well outside the window (at most 1.5 s, but this one needs far less)
    np.testing.assert_array_equal(out.rotations[far], m.rotations[far])
    np.testing.assert_array_equal(out.root_translation[far], m.root_translation[far])
    # the turn itself is kept: the same heading is reached by the window's end
    yaw = lambda q: np.unwrap(np.arctan2(*rot.quaternion_to_matrix(q[:, 0])[:, [0, 2], 2].T))  # noqa: E731
    assert yaw(out.rotations)[-1] == pytest.approx(yaw(m.rotations)[-1], abs=1e-5)
    # re-timed, not smoothed: the pelvis still passes through the source's headings, only later
    moved = np.flatnonzero(np.abs(out.root_translation[:, 0] - m.root_translation[:, 0]) > 1e-9)
    assert 5 < len(moved) < 60


def test_calm_dances_come_back_as_they_are_and_kept_frames_are_never_moved():
    calm = _spin_dance(deg_per_frame=3.0)
    same, n = limit_motion_speed(calm, cap=7.5)
    assert n == 0 and same is calm
    m = _spin_dance()
    keep = np.zeros(m.num_frames, bool)
    keep[60:90] = True  # an edit keeps the whole turn: nothing may be re-timed through it
    out, n = limit_motion_speed(m, cap=7.5, keep=keep)
    assert n == 0
    np.testing.assert_array_equal(out.rotations, m.rotations)
    keep[:] = False
    keep[55:60] = True  # kept frames just before the turn: the window must grow the other way only
    out, n = limit_motion_speed(m, cap=7.5, keep=keep)
    np.testing.assert_array_equal(out.rotations[keep], m.rotations[keep])
    assert n == 1 and _max_speed(out).max() <= 7.5 + 1e-6


def test_the_time_map_gives_back_what_it_takes():
    speed = np.full(99, 3.0)
    speed[40:45] = 12.0
    src, n = slow_map(lambda t: np.interp(t[:-1] + 0.5, np.arange(99) + 0.5, speed) * np.diff(t), 100, 7.5)
    assert n >= 1
    assert np.all(np.diff(src) > 0)  # still plays forwards
    changed = np.flatnonzero(src != np.arange(100))
    assert changed.min() > 0 and changed.max() < 99  # both ends of the window stay where they were
    assert np.diff(src)[40:45].max() < 0.7  # the fast steps play at under 7.5 / 12 of their speed, about


def test_a_flourish_between_near_cap_steps_is_slowed_by_its_calmer_neighbours():
    # a hand flourish: the steps beside the fast run are just under the cap and cannot be sped up at all, so an equal
    # speed-up of every calm step (as before) never fit; the calm steps further out give the time instead
    speed = np.full(99, 2.0)
    speed[34:46] = [4.8, 6.3, 7.27, 7.27, 9.7, 11.0, 10.8, 8.0, 7.6, 7.27, 6.3, 5.3]  # 7.27: just under 0.97 cap
    speeds_at = lambda t: np.interp(t[:-1] + 0.5, np.arange(99) + 0.5, speed) * np.diff(t)  # noqa: E731
    src, n = slow_map(speeds_at, 100, 7.5)
    assert n >= 1
    assert speeds_at(src).max() <= 7.5 + 1e-6
    assert np.all(np.diff(src) > 0)
    moved = np.flatnonzero(src != np.arange(100))
    assert moved.min() < 36 and moved.max() > 46  # the window reaches past the near-cap steps to calmer ones


def test_speed_limit_option_is_checked():
    SampleOptions(speed_limit=0).validate()
    with pytest.raises(ValueError, match="speed limit"):
        SampleOptions(speed_limit=0.5).validate()


@pytest.mark.parametrize("cap", [3.0, 5.0])
def test_a_low_limit_is_kept_even_when_the_calm_time_lies_beyond_a_second_and_a_half(cap):
    """Issue 33: `--speed-limit 3` and `5` left a 14 m/s burst as it was: the calm steps within 1.5 s of a long fast
    run cannot give back its time at a low cap, and the window gave up there. It now grows on until they can."""
    from backend.motion.passes import Cleanup, _speed_limit

    m = _spin_dance(T=420, fast=(190, 210), deg_per_frame=32.0)
    assert _max_speed(m).max() > 13.0
    out, n = limit_motion_speed(m, cap=cap)
    assert n >= 1 and out.num_frames == m.num_frames
    assert _max_speed(out).max() <= cap * 1.01
    yaw = lambda q: np.unwrap(np.arctan2(*rot.quaternion_to_matrix(q[:, 0])[:, [0, 2], 2].T))  # noqa: E731
    assert yaw(out.rotations)[-1] == pytest.approx(yaw(m.rotations)[-1], abs=1e-5)  # the same turn, re-timed
    # the pass the pipeline runs last, with the asked limit: the finished dance keeps it and says so
    cleanup = Cleanup(normalizer=None, music=None, options=SampleOptions(speed_limit=cap))
    done, slowed, note = _speed_limit(cleanup, m)
    assert _max_speed(done).max() <= cap * 1.01 and slowed >= 1 and f"over {cap:g} m/s" in note


def test_a_limit_no_re_timing_can_reach_is_reported_not_silent():
    from backend.motion.passes import Cleanup, _speed_limit

    m = _spin_dance(T=120, fast=(10, 110), deg_per_frame=32.0)  # fast nearly throughout: no calm time to give
    done, slowed, note = _speed_limit(Cleanup(normalizer=None, music=None, options=SampleOptions(speed_limit=3.0)), m)
    assert "still reaches" in note and "3 m/s" in note
