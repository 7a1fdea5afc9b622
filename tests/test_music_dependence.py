"""Tempo lock, own-vs-other-song scoring, motion-fault figures and the style classifier."""

import numpy as np
import pytest

from backend.metrics.cleanliness import cleanliness, hip_turn_rate, summarise
from backend.metrics.music_dependence import SongRef, dependence, lock_shares, tempo_lock
from backend.metrics.style import StyleClassifier
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()


def bouncing(bpm: float, seconds: float = 20.0, fps: float = 30.0, knee: float = 0.5, turn: float = 0.0) -> Motion:
    """Knees bend once per beat (speed minima twice a beat), the body turning at `turn` rad/s."""
    t = np.arange(int(seconds * fps)) / fps
    aa = np.zeros((len(t), 24, 3))
    bend = knee * (0.5 - 0.5 * np.cos(2 * np.pi * bpm / 60 * t))
    for side in ("left", "right"):
        aa[:, SK.index(f"{side}_knee"), 0] = bend
        aa[:, SK.index(f"{side}_hip"), 0] = -bend / 2
    aa[:, 0, 1] = turn * t
    trans = np.stack([np.zeros_like(t), 0.95 - 0.05 * bend, np.zeros_like(t)], 1)
    return Motion.from_axis_angle(aa, trans, fps=fps)


def test_tempo_lock_is_high_at_the_dance_tempo_and_low_elsewhere():
    j60 = bouncing(120).resample(60).joint_positions()
    assert tempo_lock(j60, 120.0) > 0.8
    # speed peaks twice per knee bend (down and up): 4 Hz, the beat's multiple 2; at 240 bpm it is multiple 1
    assert tempo_lock(j60, 240.0) > 0.8
    assert tempo_lock(j60, 60.0) < 0.1  # 4 Hz is no listed multiple of a 1 Hz beat
    assert tempo_lock(j60, 93.0) < 0.1
    assert np.isnan(tempo_lock(j60, 0.0))


def test_lock_shares_say_which_multiple_of_the_beat_holds_the_rhythm():
    j60 = bouncing(120).resample(60).joint_positions()  # speed cycles at 4 Hz
    shares = lock_shares(j60, 120.0)  # 2 Hz beat: 4 Hz is twice per beat
    assert shares[3] > 0.8 and shares[:3].sum() < 0.05
    assert np.isclose(shares.sum(), tempo_lock(j60, 120.0))  # the multiples' windows do not overlap
    bar = lock_shares(j60, 720.0)  # a 12 Hz "beat": 4 Hz is once per three beats
    assert bar[0] > 0.8
    assert np.isnan(lock_shares(j60, 0.0)).all()


def test_own_song_scores_above_another_song_for_a_dance_that_listens():
    songs = [SongRef(np.arange(0, 600, 15), 120.0), SongRef(np.arange(5, 600, 19), 93.0)]
    listening = [bouncing(120), bouncing(93)]
    row = dependence("listens", listening, songs)
    assert row.lock_ratio > 3 and row.lock_own > 0.8
    deaf = [bouncing(120), bouncing(120)]  # the same dance for both songs
    assert dependence("deaf", deaf, songs).lock_ratio == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="3 dances for 2 songs"):
        dependence("bad", listening + listening[:1], songs)


def test_fault_figures_see_turn_snaps_sinking_feet_and_sliding():
    calm = cleanliness(bouncing(120))
    assert calm.fast_turn_frames == 0 and calm.max_joint_speed < 3
    m = bouncing(120)
    rot = m.axis_angle()
    rot[300:, 0, 1] += np.pi / 2  # the hips snap a quarter turn in one frame
    trans = m.root_translation.copy()
    trans[:, 1] -= 0.05  # and the body sinks 5 cm
    trans[:, 2] += np.linspace(0, 3, len(trans))  # while gliding 3 m in 20 s on planted feet
    bad = Motion.from_axis_angle(rot, trans, fps=30.0)
    c = cleanliness(bad)
    assert c.fast_turn_frames == 1 and c.max_joint_speed > 10
    assert c.lowest_foot < calm.lowest_foot - 0.045
    assert c.foot_slide > calm.foot_slide + 0.1  # the 0.15 m/s glide on top of the knee bends' own foot travel
    j = bad.joint_positions()
    assert hip_turn_rate(j, 30.0)[299] == pytest.approx(90 * 30, rel=0.01)
    row = summarise("two", [bouncing(120), bad])
    assert row.max_joint_speed == c.max_joint_speed and row.fast_turns_per_dance == 0.5


def test_jitter_shows_in_the_median_acceleration():
    calm = bouncing(120)
    trans = calm.root_translation.copy()
    trans[::2, 1] += 0.005  # the whole body shakes 5 mm up and down, frame to frame
    shaking = Motion.from_axis_angle(calm.axis_angle(), trans, fps=30.0)
    a, b = cleanliness(calm).median_acceleration, cleanliness(shaking).median_acceleration
    assert a < 3 and b > 8  # 5 mm up on every other frame is 2 * 0.005 * 30^2 = 9 m/s^2 on every joint
    assert cleanliness(shaking).max_joint_speed < 3  # a shake, not a snap: the speed figures miss it
    assert summarise("two", [calm, shaking]).median_acceleration == pytest.approx((a + b) / 2)


def test_style_classifier_tells_dances_apart_by_how_they_move():
    rng = np.random.default_rng(0)
    deep = [bouncing(rng.uniform(90, 130), knee=0.9) for _ in range(4)]
    turning = [bouncing(rng.uniform(90, 130), knee=0.3, turn=3.0) for _ in range(4)]
    clf = StyleClassifier.fit(deep[:3] + turning[:3], ["deep"] * 3 + ["turning"] * 3)
    assert clf.predict(deep[3]) == "deep" and clf.predict(turning[3]) == "turning"
    lp = clf.log_probs(turning[3])
    assert lp["turning"] > lp["deep"]
