"""Choreographer's tools: splicing dances (rigs.splice), repeats, keyed poses, and the model-made transitions."""

from __future__ import annotations

import numpy as np
import pytest

from backend.motion.choreography import (TRANSITION_HALF, PoseKeys, RepeatSpan, apply_repeats, keyed_pose_error, keys_constraint,
                                         keys_from_dance, local_joints, phrase_distance, repeat_plan, snap_to_beats,
                                         transition_constraint)
from backend.motion.checkpoint import SHIPPED_ME
from backend.motion.representation import ROOT, ROT6D, mirror
from backend.music.structure import Section
from rigs.splice import assemble, heading, place, stand_of, transition_keep, validate_cuts
from tests.builders import random_motion

shipped = pytest.mark.skipif(not (SHIPPED_ME / "model.safetensors").is_file(), reason="no shipped weights in weights/me")


def test_place_moves_and_turns_a_piece_rigidly():
    piece = random_motion(40, seed=1, drift=0.05)
    out = place(piece, 10, np.array([2.0, -1.0]), 1.2)
    xz, yaw = stand_of(out, 10)
    assert np.allclose(xz, [2.0, -1.0], atol=1e-5) and abs(yaw - 1.2) < 1e-5
    # the pose and the path relative to the dancer are unchanged: same local joints, same travelled distances
    assert np.allclose(local_joints(out), local_joints(piece), atol=1e-4)
    step = lambda m: np.linalg.norm(np.diff(m.root_translation[:, [0, 2]], axis=0), axis=1)  # noqa: E731
    assert np.allclose(step(out), step(piece), atol=1e-5)
    assert np.allclose(out.root_translation[:, 1], piece.root_translation[:, 1])
    assert np.allclose(out.rotations[:, 1:], piece.rotations[:, 1:])


def test_assemble_keeps_each_takes_poses_and_never_teleports():
    a = random_motion(90, seed=2, drift=0.03)
    b = place(random_motion(90, seed=3, drift=0.03), 0, np.array([5.0, 5.0]), 2.5)  # far away, facing elsewhere
    out, switches = assemble([a, b], [(0, 30, 0), (30, 60, 1), (60, 90, 0)])
    assert switches == [30, 60]
    assert np.allclose(local_joints(out)[30:60], local_joints(b)[30:60], atol=1e-4)
    assert np.allclose(local_joints(out)[60:], local_joints(a)[60:], atol=1e-4)
    assert np.array_equal(out.rotations[:30], a.rotations[:30])
    steps = np.linalg.norm(np.diff(out.root_translation[:, [0, 2]], axis=0), axis=1)
    own = max(np.linalg.norm(np.diff(t.root_translation[:, [0, 2]], axis=0), axis=1).max() for t in (a, b))
    assert steps.max() < 2.5 * own  # the switch continues the path: no 7-metre jump
    # ranges of one take next to each other are one range: no switch between them
    _, switches = assemble([a, b], [(0, 20, 1), (20, 50, 1), (50, 90, 0)])
    assert switches == [50]


@pytest.mark.parametrize("cuts, problem", [
    ([(0, 30, 0), (40, 90, 1)], "gap at frame 30"),
    ([(0, 50, 0), (40, 90, 1)], "overlap at frame 40"),
    ([(0, 30, 0), (30, 90, 2)], "take 3, but there are 2 takes"),
    ([(0, 30, 0), (30, 80, 1)], "end at frame 80"),
    ([], "at least one range"),
])
def test_cuts_that_do_not_tile_the_dance_are_refused(cuts, problem):
    with pytest.raises(ValueError, match=problem):
        validate_cuts(cuts, 90, 2)


def test_transition_windows_surround_each_switch():
    keep = transition_keep(100, [30, 98], 5)
    assert not keep[25:35].any() and keep[:25].all() and keep[35:93].all() and not keep[93:].any()


def test_repeat_plan_dances_each_repeat_as_its_first_occurrence():
    sections = [Section(0, 200, "A"), Section(200, 300, "B"), Section(300, 480, "A'"), Section(480, 520, "B'"),
                Section(520, 700, "A''")]
    plan = repeat_plan(sections, min_frames=60)
    # B' is too short to be a phrase (40 frames); A'' copies A, not A'
    assert plan == [RepeatSpan(0, 300, 180, "A'"), RepeatSpan(0, 520, 180, "A''")]


@pytest.mark.parametrize("mirrored", [False, True])
def test_apply_repeats_pastes_the_phrase_where_the_dancer_stands(mirrored):
    dance = random_motion(200, seed=4, drift=0.03)
    span = RepeatSpan(10, 120, 60, "A'")
    before = phrase_distance(dance, span, mirrored)
    out, joins = apply_repeats(dance, [span], mirrored)
    assert joins == [120, 180]
    assert phrase_distance(out, span, mirrored) < 1e-4 < before
    assert np.array_equal(out.rotations[:120], dance.rotations[:120])
    assert np.allclose(stand_of(out, 120)[0], stand_of(dance, 120)[0], atol=1e-5)
    # the dance after the phrase goes on from where the phrase ends: no jump for the transition to cover
    steps = np.linalg.norm(np.diff(out.root_translation[:, [0, 2]], axis=0), axis=1)
    assert steps[179] < 3 * np.linalg.norm(np.diff(dance.root_translation[:, [0, 2]], axis=0), axis=1).max()
    assert np.allclose(local_joints(out)[180:], local_joints(dance)[180:], atol=1e-4)
    assert abs(stand_of(out, 120)[1] - stand_of(dance, 120)[1]) < 1e-5
    if mirrored:  # a mirrored phrase is the mirror image: its left arm does what the source's right arm did
        src = mirror(dance.slice(10, 70))
        assert np.allclose(local_joints(out.slice(120, 180)), local_joints(src), atol=1e-4)


def test_keyframe_neighbourhood_fits_dances_shorter_than_its_reach():
    from backend.motion.sampling import _near_keyframes

    lone = np.zeros(10, bool)
    lone[5] = True
    near = _near_keyframes(lone, 3, "cpu")
    assert tuple(near.shape) == (1, 13, 1) and bool(near[0, :10, 0].all()) and not bool(near[0, 10:, 0].any())


def test_snap_to_beats_moves_keys_to_distinct_nearest_beats():
    beats = np.array([10, 25, 40, 55, 70])
    assert snap_to_beats(np.array([12, 38, 69]), beats, 80).tolist() == [10, 40, 70]
    # two keys nearest the same beat: the closer one gets it, the other its next best beat
    assert snap_to_beats(np.array([24, 31]), beats, 80).tolist() == [25, 40]
    with pytest.raises(ValueError, match="only 2 beats"):
        snap_to_beats(np.array([1, 2, 3]), np.array([5, 9]), 80)
    with pytest.raises(ValueError, match="swap their order"):
        snap_to_beats(np.array([30, 33]), np.array([10, 32, 34]), 80)  # 33 takes 32, 30 would get 34


def test_pose_keys_refuse_bad_input_with_a_sentence():
    q = np.tile([1.0, 0, 0, 0], (2, 24, 1))
    ok = dict(frames=[5, 9], rotations=q, joints=np.ones((2, 24), bool), root=np.zeros((2, 3)))
    PoseKeys(**ok)
    for change, problem in [(dict(frames=[5, 5]), "share a frame"), (dict(rotations=q[:, :10]), r"\(2, 24, 4\)"),
                            (dict(joints=np.zeros((2, 24), bool)), "at least one keyed joint"),
                            (dict(root=np.full((2, 3), np.nan)), "finite"), (dict(root=np.full((2, 3), 1e300)), "within 1000 m"), (dict(frames=[]), r"\(0, 24, 4\)|no keyed")]:
        with pytest.raises(ValueError, match=problem):
            PoseKeys(**{**ok, **change})
    with pytest.raises(ValueError, match="outside the dance"):
        PoseKeys(**ok).check_within(8)


def test_keys_constraint_keeps_the_keyed_joints_and_the_root_at_the_keyed_frames():
    from backend.motion.representation import Normalizer

    dance = random_motion(50, seed=5)
    joints = np.zeros((2, 24), bool)
    joints[0] = True
    joints[1, [18, 20]] = True  # the second key: the left arm only
    keys = keys_from_dance(dance, np.array([10, 30]), joints)
    norm = Normalizer(np.zeros(151, np.float32), np.ones(151, np.float32), np.zeros(35, np.float32),
                      np.ones(35, np.float32))
    c = keys_constraint(keys, norm, 50)
    assert set(np.flatnonzero(c.mask.any(axis=1))) == {10, 30}
    assert c.mask[10, ROT6D].all() and c.mask[10, ROOT].all() and not c.mask[10, :4].any()
    assert c.mask[30, ROT6D].sum() == 12 and c.mask[30, ROOT].all()
    assert np.allclose(c.values[30, ROOT], dance.root_translation[30])
    assert np.allclose(c.values[10, ROT6D].reshape(24, 6), dance.rotation_6d()[10], atol=1e-6)


def _demo(seconds: float):
    from backend.music.demo import synthesize_demo
    from backend.music.features import extract_features

    song = synthesize_demo(seconds=seconds)
    return extract_features(song.samples, song.sr)


def _seam_ratio(joints: np.ndarray, seams: list[int]) -> float:
    """Mean joint jerk within 2 frames of the seams over the median elsewhere (scripts/eval_edits.py's measure)."""
    jerk = np.linalg.norm(np.diff(joints, n=3, axis=0) * 30.0 ** 3, axis=-1).mean(axis=1)
    near = np.zeros(len(jerk), bool)
    for s in seams:
        near[max(0, s - 4):s + 2] = True
    return float(jerk[near].mean() / np.median(jerk[~near]))


@shipped
def test_comped_takes_keep_their_frames_and_join_with_model_made_transitions():
    from backend.motion.generate import MotionExpert
    from backend.motion.sampling import SampleOptions

    music = _demo(12.0)
    me = MotionExpert.load()
    takes = [me.generate(music, SampleOptions(seed=s), lock_feet=True, beat_sync=True) for s in (0, 1)]
    T = music.num_frames
    ref, switches = assemble(takes, [(0, T // 2, 0), (T // 2, T, 1)])
    constraint = transition_constraint(ref, switches, me.normalizer)
    out = me.generate(music, SampleOptions(seed=2), constraint)
    kept = constraint.mask[:, 0]
    assert np.abs(out.joint_positions()[kept] - ref.joint_positions()[kept]).max() < 1e-4
    edges = [switches[0] - TRANSITION_HALF, switches[0], switches[0] + TRANSITION_HALF]
    # the pasted-together reference snaps at the switch; the comp joins as smoothly as a regenerated range
    # (scripts/eval_edits.py: 1.2-1.4 for regenerated ranges, 1.2-1.6 for unedited dances at the same frames)
    assert _seam_ratio(ref.joint_positions(), switches) > 3.0
    assert _seam_ratio(out.joint_positions(), edges) < 1.6


@shipped
def test_dance_through_keys_reaches_the_poses_without_a_snap():
    from backend.motion.generate import MotionExpert
    from backend.motion.sampling import SampleOptions

    music = _demo(12.0)
    me = MotionExpert.load()
    dance = me.generate(music, SampleOptions(seed=0), lock_feet=True, beat_sync=True)
    other = me.generate(music, SampleOptions(seed=1), lock_feet=True, beat_sync=True)
    frames = snap_to_beats(np.array([80, 180, 280]), music.beat_frames, music.num_frames)
    assert set(frames.tolist()) <= set(np.asarray(music.beat_frames).tolist())
    arms = np.zeros((3, 24), bool)
    arms[:, 16:22] = True  # keyed bones only: the shoulders, elbows and wrists of the other dance
    for joints in (None, arms):
        keys = keys_from_dance(dance, frames, joints, poses=other)
        out = me.generate(music, SampleOptions(seed=0), keys_constraint(keys, me.normalizer, music.num_frames))
        assert keyed_pose_error(out, keys) < 1e-4
        # no one-frame snap onto the key: the jerk there is no worse than the unedited dance's
        assert _seam_ratio(out.joint_positions(), list(frames)) < max(1.5, 1.2 * _seam_ratio(dance.joint_positions(),
                                                                                                list(frames)))


def test_comp_cuts_start_from_the_base_take_and_later_marks_win():
    from blender_addon.core.choreo import comp_cuts

    assert comp_cuts(100, 0, []) == [(0, 100, 0)]
    assert comp_cuts(100, 0, [(1, 20, 40), (2, 35, 50)]) == [(0, 20, 0), (20, 35, 1), (35, 50, 2), (50, 100, 0)]
    assert comp_cuts(100, 1, [(0, 0, 200)]) == [(0, 100, 0)]  # a mark past the end is clipped to the dance
    with pytest.raises(ValueError, match="covers no frame"):
        comp_cuts(100, 0, [(1, 120, 130)])


def test_posed_frames_find_the_bones_the_animator_turned_or_moved():
    from blender_addon.core.choreo import posed_frames
    from rigs import rotations as rot

    dance = random_motion(30, seed=6)
    q = dance.rotations.copy()
    trans = dance.root_translation.copy()
    q[7, 18] = rot.quaternion_multiply(q[7, 18], rot.axis_angle_to_quaternion(np.array([0.0, 0.0, 0.2])))
    q[21, 3] = -q[21, 3]  # the same rotation written with the other sign: not a change
    trans[25, 0] += 0.05  # the pelvis moved
    keys = type(dance)(q, trans, fps=dance.fps)
    frames, joints = posed_frames(keys, dance)
    assert frames.tolist() == [7, 25]
    assert np.flatnonzero(joints[0]).tolist() == [18] and np.flatnonzero(joints[1]).tolist() == [0]


def test_rhythm_loss_rewards_the_real_dances_periods_and_is_zero_on_it():
    import torch

    from backend.motion.diffusion import LossWeights, MotionLosses, speed_spectrum
    from backend.motion.representation import motion_to_features

    t = np.arange(150) / 30.0

    def bouncing(hz: float) -> np.ndarray:
        m = random_motion(150, seed=1, scale=0.0, drift=0.0)
        m.root_translation[:, 1] += 0.05 * np.sin(2 * np.pi * hz * t)
        return motion_to_features(m)

    x2, x3 = (torch.tensor(bouncing(hz))[None] for hz in (2.0, 3.0))
    spec = speed_spectrum(MotionLosses(torch.zeros(151), torch.ones(151), LossWeights()).joints(x2))
    assert torch.allclose(spec.sum(-1), torch.ones(1)) and spec.shape[-1] > 20
    losses = MotionLosses(torch.zeros(151), torch.ones(151), LossWeights(rhythm=1.0))
    assert float(losses(x2, x2)["rhythm"]) < 1e-6
    assert float(losses(x3, x2)["rhythm"]) > 0.5  # same motion, another tempo: the loss sees it
    assert "rhythm" not in MotionLosses(torch.zeros(151), torch.ones(151), LossWeights())(x3, x2)
