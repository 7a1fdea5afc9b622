import numpy as np
import pytest

from backend.metrics.joins import foot_slide as floor_slides
from backend.motion.cleanup import (ANKLE_LOW, MAX_DROP, contact_segments, foot_lock, grow_stances, lift_skims,
                                    planted_feet)
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()


def sliding_walk(frames=60):
    """Knees a little bent, the body gliding forward 0.6 m: feet that should be planted skate with it."""
    t = np.arange(frames)
    aa = np.zeros((frames, 24, 3))
    aa[:, SK.index("left_knee"), 0] = 0.4
    aa[:, SK.index("right_knee"), 0] = 0.4
    aa[:, SK.index("left_hip"), 0] = -0.2 + 0.1 * np.sin(t / 6)
    trans = np.stack([np.zeros(frames), np.full(frames, 0.9), np.linspace(0, 0.6, frames)], 1)
    contacts = np.zeros((frames, 4))
    contacts[10:40, 0] = 1  # left ankle planted for a second
    contacts[30:55, 1] = 1
    return Motion.from_axis_angle(aa, trans, contacts=contacts)


def test_segments():
    assert contact_segments(np.array([0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1], bool), 3) == [(1, 4), (8, 12)]


def test_foot_lock_pins_planted_ankles_and_keeps_the_rest():
    m = sliding_walk()
    out, report = foot_lock(m)
    assert report.slide_before > 0.4 and report.slide_after < 0.02 * report.slide_before, report
    before, after = m.joint_positions(), out.joint_positions()
    la = SK.index("left_ankle")
    assert np.ptp(after[12:38, la, [0, 2]], axis=0).max() < 1e-3  # pinned
    for j in ("pelvis", "spine3", "head", "left_wrist", "left_hip", "right_hip"):
        assert np.allclose(after[:, SK.index(j)], before[:, SK.index(j)], atol=1e-5)  # only the legs move
    free = np.r_[0:5]  # far from any contact (and its blend): untouched
    assert np.allclose(after[free], before[free], atol=1e-5)
    # bone lengths are the skeleton's, and the foot keeps its world orientation
    g0, _ = m.forward()
    g1, _ = out.forward()
    assert np.allclose(g1[:, la], g0[:, la], atol=1e-5)


def test_foot_lock_needs_contacts():
    m = sliding_walk()
    m.contacts = None
    with pytest.raises(ValueError, match="foot-contact labels"):
        foot_lock(m)


def test_feet_on_the_floor_count_as_planted_when_slow_and_unlabelled():
    frames = 60
    aa = np.zeros((frames, 24, 3))
    m0 = Motion.from_axis_angle(aa, np.zeros((frames, 3)))
    lift = -m0.joint_positions()[:, [SK.index("left_foot"), SK.index("right_foot")], 1].min()
    # standing on the floor, creeping forward 12 cm in 2 s (6 cm/s), with no contact label at all
    trans = np.stack([np.zeros(frames), np.full(frames, lift + 0.01), np.linspace(0, 0.12, frames)], 1)
    creep = Motion.from_axis_angle(aa, trans, contacts=np.zeros((frames, 4)))
    planted = planted_feet(creep)
    assert planted.all()  # both feet low and slow
    out, report = foot_lock(creep, planted=planted)
    assert report.slide_after < 0.05 * report.slide_before
    # the same feet gliding at 1.5 m/s are a dance step, and the same feet 20 cm up are not on the floor
    glide = Motion.from_axis_angle(aa, trans * [1, 1, 25], contacts=np.zeros((frames, 4)))
    assert not planted_feet(glide).any()
    up = Motion.from_axis_angle(aa, trans + [0, 0.2, 0], contacts=np.zeros((frames, 4)))
    assert not planted_feet(up).any()
    # the model's labels still count where they say planted
    labelled = Motion.from_axis_angle(aa, trans + [0, 0.2, 0], contacts=np.tile([1.0, 0.0, 0, 0], (frames, 1)))
    assert planted_feet(labelled)[:, 0].all() and not planted_feet(labelled)[:, 1].any()


def test_a_stance_grows_over_the_low_skim_into_it_and_pins_the_foot_where_it_stands():
    frames = 90
    aa = np.zeros((frames, 24, 3))
    m0 = Motion.from_axis_angle(aa, np.zeros((frames, 3)))
    lift = -m0.joint_positions()[:, [SK.index("left_foot"), SK.index("right_foot")], 1].min()
    # skim in at 1.5 m/s (5 cm a frame), stand still, skim out; then the same again 1 m further on
    z = np.concatenate([np.linspace(-0.5, 0.0, 11)[:-1], np.zeros(20), np.linspace(0.0, 1.0, 21)[:-1],
                        np.full(20, 1.0), np.linspace(1.0, 1.5, 20)])
    trans = np.stack([np.zeros(frames), np.full(frames, lift + 0.01), z], 1)
    trans[:3, 1] += 0.3  # the first frames are in the air
    m = Motion.from_axis_angle(aa, trans, contacts=np.zeros((frames, 4)))
    stances = planted_feet(m)
    assert stances[11:29, 0].all() and not stances[5:9, 0].any()  # the skim is too fast to count as standing
    grown = grow_stances(m, stances, reach=0.2)
    ankle = m.joint_positions()[:, SK.index("left_ankle")]
    spot = ankle[stances[:45, 0].nonzero()[0], 2].mean()
    near = np.abs(ankle[:, 2] - spot) <= 0.2
    assert grown[near & (np.arange(frames) >= 3) & (np.arange(frames) < 45), 0].all()  # low and near: grown
    assert not grown[:3, 0].any()  # in the air: never
    first = np.arange(frames) < 45
    assert not grown[(np.abs(ankle[:, 2] - spot) > 0.25) & first, 0].any()  # too far from where it stands
    gap = np.flatnonzero(~grown[30:70, 0])
    assert len(gap) >= 1  # two stances of one foot stay two stances
    out, report = foot_lock(m, planted=grown, anchors=stances)
    pinned = out.joint_positions()[:, SK.index("left_ankle")]
    seg = np.flatnonzero(grown[:45, 0])
    inner = seg[4:-4]  # past the ease-in and -out
    assert np.abs(pinned[inner, 2] - spot).max() < 1e-3  # pinned where the foot stands, not the skim's mean
    assert report.slide_after < 0.5 * report.slide_before


def test_feet_skimming_the_floor_too_fast_to_stand_are_raised_just_clear_of_it():
    frames = 80
    aa = np.zeros((frames, 24, 3))
    m0 = Motion.from_axis_angle(aa, np.zeros((frames, 3)))
    lift = -m0.joint_positions()[:, [SK.index("left_foot"), SK.index("right_foot")], 1].min()
    # stand, glide 0.5 m at 0.75 m/s (slow enough to be a real glide), stand, skim 1 m at 2 m/s, stand
    z = np.concatenate([np.zeros(15), np.linspace(0.0, 0.5, 21)[1:], np.full(15, 0.5), np.linspace(0.5, 1.5, 16)[1:],
                        np.full(15, 1.5)])[:frames]
    trans = np.stack([np.zeros(frames), np.full(frames, lift + 0.01), z], 1)
    m = Motion.from_axis_angle(aa, trans)
    out, raised = lift_skims(m)
    j0, j1 = m.joint_positions(), out.joint_positions()
    ankle, toe = SK.index("left_ankle"), SK.index("left_foot")
    fast = np.zeros(frames, dtype=bool)
    fast[52:64] = True  # inside the 2 m/s skim (its ends ease)
    assert raised > 0
    clear = (j1[:, ankle, 1] > 0.08) | (j1[:, toe, 1] > 0.05)
    assert clear[fast].all()  # no longer at planted height: a swing, not a slide
    assert (j1[:, ankle, 1] - j0[:, ankle, 1]).max() <= 0.06 + 1e-6  # raised only as far as it must
    np.testing.assert_allclose(j1[:45], j0[:45], atol=1e-6)  # standing and the slow glide are left alone
    standing = np.r_[35:49, 66:80]  # the stances either side of the skim (still feet): never raised
    np.testing.assert_allclose(j1[standing, ankle], j0[standing, ankle], atol=1e-6)
    assert np.abs(np.diff(j1[:, ankle, 1])).max() < 0.025  # eased in and out, not a hop
    np.testing.assert_allclose(j1[:, toe] - j1[:, ankle], j0[:, toe] - j0[:, ankle], atol=1e-6)  # foot kept
    np.testing.assert_allclose(j1[:, 0], j0[:, 0])  # the body does not move
    still, n = lift_skims(Motion.from_axis_angle(aa, trans * [1, 1, 0]))
    assert n == 0


def test_two_close_stances_of_one_foot_are_never_grown_into_one():
    frames = 40
    aa = np.zeros((frames, 24, 3))
    m0 = Motion.from_axis_angle(aa, np.zeros((frames, 3)))
    lift = -m0.joint_positions()[:, [SK.index("left_foot"), SK.index("right_foot")], 1].min()
    # stand, skim 30 cm along the floor in 6 frames (1.5 m/s), stand again: each skim frame is near both spots
    z = np.concatenate([np.zeros(17), np.linspace(0.0, 0.3, 7)[1:-1], np.full(18, 0.3)])[:frames]
    trans = np.stack([np.zeros(frames), np.full(frames, lift + 0.01), z], 1)
    m = Motion.from_axis_angle(aa, trans, contacts=np.zeros((frames, 4)))
    stances = planted_feet(m)
    assert len(contact_segments(stances[:, 0], 1)) == 2
    grown = grow_stances(m, stances, reach=0.2)
    assert len(contact_segments(grown[:, 0], 1)) == 2  # still two spots, with a free frame between
    assert grown[:, 0].sum() > stances[:, 0].sum()  # and each did grow over its side of the skim


def _max_turn_deg(motion: Motion, joint: str) -> float:
    q = motion.rotations[:, SK.index(joint)].astype(np.float64)
    dot = np.abs(np.sum(q[1:] * q[:-1], axis=-1)).clip(0, 1)
    return float(np.degrees(2 * np.arccos(dot)).max())


def test_foot_lock_never_flips_a_straight_knee():
    """A nearly straight leg whose lock point passes under the hip: the knee must bend forward smoothly, not pop."""
    frames = 60
    aa = np.zeros((frames, 24, 3))
    aa[:, SK.index("right_knee"), 0] = 0.03  # almost straight
    trans = np.stack([np.zeros(frames), np.full(frames, 0.92), np.linspace(-0.3, 0.3, frames)], 1)
    contacts = np.zeros((frames, 4))
    contacts[5:55, 1] = 1  # right ankle 'planted' while the body glides over it
    m = Motion.from_axis_angle(aa, trans, contacts=contacts)
    out, _ = foot_lock(m)
    assert _max_turn_deg(out, "right_knee") < 15.0
    # and the knee bends the way knees bend: forward (+z, the facing), never backwards
    _, pos = out.forward()
    hip, knee, ankle = (SK.index(n) for n in ("right_hip", "right_knee", "right_ankle"))
    mid = (pos[:, hip] + pos[:, ankle]) / 2
    assert (pos[:, knee, 2] - mid[:, 2] >= -1e-3).all()


def test_foot_lock_moves_smoothly_between_close_plants():
    """Two plants a few frames apart: their ease-in/out ramps overlap and the ankle must glide, not jump."""
    m = sliding_walk()
    contacts = np.zeros((m.num_frames, 4))
    contacts[8:22, 0] = 1
    contacts[25:45, 0] = 1  # a 3-frame lift: the blends of the two plants overlap
    m.contacts = contacts
    out, _ = foot_lock(m)
    la = SK.index("left_ankle")
    step = np.linalg.norm(np.diff(out.joint_positions()[:, la], axis=0), axis=-1)
    gap = out.joint_positions()[25, la] - out.joint_positions()[21, la]
    assert np.linalg.norm(gap) > 0.1  # the two lock points really differ
    assert step.max() < 0.6 * np.linalg.norm(gap)  # spread over the gap's frames, not one step


def test_root_flip_is_reinterpolated_and_real_turns_are_left_alone():
    from backend.motion.cleanup import repair_root_flips

    frames = 60
    heading = np.where(np.arange(frames) < 30, 0.0, np.pi * 0.8)  # a 144-degree snap between frames 29 and 30 ...
    aa = np.zeros((frames, 24, 3))
    aa[:, 0, 1] = heading
    aa[29, 0] = [1.0, 1.2, 0.0]  # ... through a tipped-over pose
    trans = np.tile([0.0, 0.9, 0.0], (frames, 1))
    m = Motion.from_axis_angle(aa, trans)
    out, n = repair_root_flips(m)
    assert n == 1
    q = out.rotations[:, 0].astype(np.float64)
    step = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], -1)), 0, 1)))
    assert step.max() < 40  # the turn is spread over a few frames
    assert (out.matrices()[:, 0, 1, 1] > 0.99).all()  # and nobody tips over
    np.testing.assert_array_equal(out.rotations[:20], m.rotations[:20])
    np.testing.assert_array_equal(out.rotations[40:], m.rotations[40:])
    np.testing.assert_array_equal(out.rotations[:, 1:], m.rotations[:, 1:])  # only the pelvis
    # a fast but real waltz turn (30 degrees per frame) is not a glitch
    aa2 = np.zeros((frames, 24, 3))
    aa2[:, 0, 1] = np.radians(30) * np.arange(frames)
    turn = Motion.from_axis_angle(aa2, trans)
    assert repair_root_flips(turn)[1] == 0
    # in an edit, kept frames come back exactly: the blend starts at the last kept frame instead of running through it
    keep = np.zeros(frames, bool)
    keep[:28] = True  # the unrepaired blend would start at frame 26
    kept_out, n = repair_root_flips(m, keep=keep)
    assert n == 1
    np.testing.assert_array_equal(kept_out.rotations[keep], m.rotations[keep])
    q = kept_out.rotations[:, 0].astype(np.float64)
    step = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], -1)), 0, 1)))
    assert step.max() < 60 and (kept_out.matrices()[:, 0, 1, 1] > 0.99).all()  # over fewer frames than 144 deg in 1


def test_feet_are_raised_out_of_the_floor_smoothly_and_only_where_they_sink():
    from backend.motion.cleanup import FOOT_POINTS, keep_above_floor

    m = sliding_walk(90)
    low = m.joint_positions()[:, FOOT_POINTS, 1].min(axis=1)
    trans = m.root_translation.copy()
    dip = 0.07 * np.exp(-0.5 * ((np.arange(90) - 45) / 4.0) ** 2)  # sinks up to 7 cm mid-dance
    trans[:, 1] += -low - dip * (np.arange(90) > 30)  # feet exactly on the floor, except a dip
    sunk = Motion(m.rotations, trans, fps=m.fps, contacts=m.contacts)
    out, lift = keep_above_floor(sunk)
    feet = out.joint_positions()[:, FOOT_POINTS, 1].min(axis=1)
    assert lift == pytest.approx(0.07, abs=2e-3)
    assert feet.min() >= -1e-6  # nothing under the floor (float32 rotations)
    assert np.allclose(out.root_translation[:20], sunk.root_translation[:20])  # untouched far from the dip
    assert np.abs(np.diff(out.root_translation[:, 1], 2)).max() < 0.01  # no pop: the lift eases in and out
    same, none = keep_above_floor(out, floor=-1e-6)
    assert none == 0.0 and same is out


def test_a_half_turn_snap_is_spread_until_it_is_under_the_limit():
    from backend.motion.cleanup import repair_flip_quaternions
    from rigs import rotations as rot

    frames = 80
    yaw = np.zeros(frames)
    yaw[30:] = np.radians(170)  # a 170-degree snap ...
    yaw[34:] = np.radians(340)  # ... and another four frames later, inside the first one's widened blend
    q = rot.axis_angle_to_quaternion(np.stack([np.zeros(frames), yaw, np.zeros(frames)], 1))
    fixed, n = repair_flip_quaternions(q, max_deg=30.0, calm_deg=15.0)
    step = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(fixed[1:] * fixed[:-1], -1)), 0, 1)))
    assert n >= 1 and step.max() <= 30.0 + 1e-6
    np.testing.assert_allclose(fixed[:5], q[:5])
    np.testing.assert_allclose(fixed[-5:], q[-5:])


def _standing_height() -> float:
    """The pelvis height that puts the rest pose's lowest toe on the floor."""
    m0 = Motion.from_axis_angle(np.zeros((1, 24, 3)), np.zeros((1, 3)))
    return float(-m0.joint_positions()[0, [SK.index("left_foot"), SK.index("right_foot")], 1].min())


def test_a_straight_leg_reaches_its_pinned_foot_where_the_pelvis_may_sink():
    """Keyed windows of val waltzes dragged a pinned foot a millimetre a frame: the pelvis moved on over a straight
    leg, and the IK stops at the leg's length. Where the pelvis may sink it sinks by the shortfall (the standing knee
    bends) and the foot stays put; elsewhere nothing moves the pelvis."""
    T = 40
    root = np.stack([np.zeros(T), np.full(T, _standing_height() + 0.005), 0.01 * np.arange(T)], 1)  # 30 cm/s
    aa = np.zeros((T, 24, 3))
    aa[:, SK.index("right_knee"), 0] = 1.2  # the other foot up in the air, the standing leg straight
    m = Motion.from_axis_angle(aa, root)
    planted = np.zeros((T, 2), bool)
    planted[:, 0] = True
    la = SK.index("left_ankle")
    stuck, _ = foot_lock(m, planted=planted)
    assert np.ptp(stuck.joint_positions()[:, la, 2]) > 5e-3  # out of reach: dragged along
    np.testing.assert_array_equal(stuck.root_translation, m.root_translation)
    lower = np.ones(T, bool)
    lower[:5] = False
    out, _ = foot_lock(m, planted=planted, lower=lower)
    ankle = out.joint_positions()[:, la]
    assert np.ptp(ankle[5:, [0, 2]], axis=0).max() < 1e-5  # pinned where the pelvis may sink
    drop = m.root_translation[:, 1] - out.root_translation[:, 1]
    assert (drop[:5] == 0).all() and 0 < drop.max() <= MAX_DROP  # only where allowed, and no more than needed
    np.testing.assert_array_equal(out.root_translation[:, [0, 2]], m.root_translation[:, [0, 2]])
    # with the other foot on the floor and not held, the pelvis does not sink it into the floor (it would skid)
    both = Motion.from_axis_angle(np.zeros((T, 24, 3)), root)
    out, _ = foot_lock(both, planted=planted, lower=lower)
    np.testing.assert_array_equal(out.root_translation, both.root_translation)


def test_a_foot_easing_into_its_stance_reaches_the_floor_only_when_it_stands():
    """The lock eases a foot in over a few frames and pulled it down with the rest: a foot coming in 1.6 cm above
    planted height reached the floor a frame early while still moving (a 5 cm/s slide in the joins' check)."""
    T = 50
    z = np.concatenate([np.linspace(-0.4, 0.0, 21)[:-1], np.zeros(30)])  # 0.6 m/s in, then standing
    y = _standing_height() + 0.005 + np.concatenate([np.linspace(0.1, 0.016, 20), np.zeros(30)])
    m = Motion.from_axis_angle(np.zeros((T, 24, 3)), np.stack([np.zeros(T), y, z], 1))
    planted = np.zeros((T, 2), bool)
    planted[20:, 0] = True
    assert not floor_slides(m)[:, 0].any()  # in the air until it stands
    out, _ = foot_lock(m, planted=planted)
    assert not floor_slides(out)[:, 0].any()
    ankle = out.joint_positions()[:, SK.index("left_ankle")]
    assert np.ptp(ankle[22:, [0, 2]], axis=0).max() < 1e-5 and ankle[19, 1] > ANKLE_LOW  # pinned; in the air till then
