"""No head turns more than a neck can from the chest, small turns are untouched, and a turn through 180 deg keeps its
direction (no snap across) (issue 33, item 6)."""

from pathlib import Path

import numpy as np
import pytest

from backend.motion.neck_limit import HEAD, KNEE_DEG, LIMIT_DEG, NECK, head_turn, limit_head_turn, soft_limit
from backend.motion.passes import PASSES
from rigs.motion import Motion
from rigs.rotations import quaternion_conjugate, quaternion_multiply

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "music2dance_tang2018"


def test_the_soft_limit_keeps_small_turns_and_bounds_large_ones_smoothly():
    a = np.linspace(0, 360, 3601)
    b = soft_limit(a)
    assert np.array_equal(b[a <= KNEE_DEG], a[a <= KNEE_DEG])
    assert b.max() < LIMIT_DEG and (np.diff(b) >= 0).all()
    assert np.abs(np.diff(b)).max() <= np.diff(a).max() + 1e-9  # never steeper than the input: no new pops


def _yaw_sweep(degrees: np.ndarray) -> Motion:
    aa = np.zeros((len(degrees), 24, 3))
    aa[:, NECK, 1] = np.radians(degrees)  # about the spine's up axis
    return Motion.from_axis_angle(aa, np.zeros((len(degrees), 3)))


def _step_deg(m: Motion) -> np.ndarray:
    q = m.rotations[:, NECK].astype(np.float64)
    d = quaternion_multiply(quaternion_conjugate(q[:-1]), q[1:])
    return np.degrees(2 * np.arctan2(np.linalg.norm(d[:, 1:], axis=-1), np.abs(d[:, 0])))


def test_a_turn_through_180_degrees_is_limited_without_a_snap():
    m = _yaw_sweep(np.linspace(0, 230, 231))  # one degree a frame, past the back of the head
    out, changed = limit_head_turn(m)
    turn = head_turn(out)
    assert turn.max() <= LIMIT_DEG + 1e-6 and changed == int((np.linspace(0, 230, 231) > KNEE_DEG + 1e-6).sum())
    assert _step_deg(out).max() <= 1.0 + 1e-4  # a smooth sweep stays smooth: no jump to the other side at 180
    np.testing.assert_array_equal(out.rotations[:61], m.rotations[:61])  # within the knee: untouched
    others = [j for j in range(24) if j not in (NECK, HEAD)]
    np.testing.assert_array_equal(out.rotations[:, others], m.rotations[:, others])


def test_only_the_given_frames_are_limited_and_turns_within_the_knee_keep_their_values():
    m = _yaw_sweep(np.r_[np.full(10, 120.0), np.full(10, 40.0), np.full(10, 120.0), np.full(10, 150.0)])
    frames = np.r_[np.zeros(10, bool), np.ones(30, bool)]  # the first ten kept by an edit
    out, changed = limit_head_turn(m, frames)
    assert changed == 20  # the 120 and 150 deg frames among the given ones
    np.testing.assert_array_equal(out.rotations[:20], m.rotations[:20])  # not given; given but within the knee
    assert head_turn(out)[20:].max() <= LIMIT_DEG + 1e-6 and head_turn(out)[:10].min() > 119.0


def test_the_pass_runs_on_every_generated_dance_before_beat_sync():
    names = [p.name for p in PASSES]
    assert "head_turn" in names and names.index("head_turn") < names.index("beat_sync")


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/music2dance_tang2018 (the recorded waltzes)")
def test_a_recorded_waltz_with_swapped_head_markers_comes_out_with_its_head_on():
    from backend.data import tang2018

    seq = tang2018.load_sequence(DATA / "DANCE_W_10")
    motion, _ = tang2018.fit_smpl(seq, tang2018.settle_sides(seq.positions))
    before = head_turn(motion)
    assert (before > 90).mean() > 0.2  # the recording's flaw, as found
    out, _ = limit_head_turn(motion)
    after = head_turn(out)
    assert after.max() <= LIMIT_DEG + 1e-6
    calm = before <= KNEE_DEG
    np.testing.assert_allclose(after[calm], before[calm], atol=1e-4)


def test_an_edits_danced_anew_frames_get_the_limit_and_its_kept_frames_stay():
    """Edits skipped the limit: a val waltz's keyed windows came out with the head 135-145 deg from the chest. The
    frames the model dances anew are limited; the kept ones (here turned 100 deg on purpose) come back exactly."""
    from backend.motion.passes import Cleanup, StageNote, clean_up
    from backend.motion.representation import FEATURE_DIM, features_to_motion, motion_to_features
    from backend.motion.sampling import Constraint, SampleOptions
    from tests.test_joins import _normalizer

    T = 60
    m = _yaw_sweep(np.r_[np.full(20, 100.0), np.full(20, 150.0), np.full(20, 100.0)])
    norm = _normalizer()
    x = norm.norm_motion(motion_to_features(m))
    kept = np.r_[np.ones(20, bool), np.zeros(20, bool), np.ones(20, bool)]
    mask = np.zeros((T, FEATURE_DIM), bool)
    mask[kept] = True
    notes: list[StageNote] = []
    out = clean_up(Cleanup(norm, None, SampleOptions(speed_limit=0.0), Constraint(x.copy(), mask)), x, notes)
    decoded = [n for n in notes if n.name == "free_head_turn"]
    assert decoded and decoded[0].detail == 20 and "20 danced-anew frames, 20 of them turned back" in decoded[0].note
    assert head_turn(out)[~kept].max() <= LIMIT_DEG + 1e-4
    danced = features_to_motion(norm.denorm_motion(x), fps=30.0)
    np.testing.assert_array_equal(out.rotations[kept], danced.rotations[kept])
    assert head_turn(out)[kept].min() > 99.0
