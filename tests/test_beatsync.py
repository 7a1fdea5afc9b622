"""Beat sync: motion beats move onto music beats, poses stay the dancer's own, time stays within its limits."""

import numpy as np
import pytest

from backend.metrics.beats import beat_align_score, motion_beats
from backend.motion.beatsync import BeatSyncConfig, beat_sync, beat_sync_config
from rigs import rotations as rot
from rigs.motion import Motion

L_SHOULDER, R_SHOULDER = 16, 17


def _swinging(frames: int = 300, period: float = 37.0) -> Motion:
    """Arms swinging sinusoidally: the mean joint speed stops at each swing's end, every period/2 frames."""
    t = np.arange(frames)
    angle = 0.8 * np.sin(2 * np.pi * t / period)
    aa = np.zeros((frames, 24, 3))
    aa[:, L_SHOULDER, 2] = angle
    aa[:, R_SHOULDER, 2] = -angle
    q = rot.axis_angle_to_quaternion(aa)
    root = np.zeros((frames, 3))
    root[:, 1] = 0.9
    return Motion(q, root)


def _offsets(motion: Motion, music: np.ndarray) -> np.ndarray:
    mb = motion_beats(motion.joint_positions())
    return np.abs(mb[:, None] - music[None, :]).min(axis=1)


def test_motion_beats_land_on_music_beats_and_poses_are_kept():
    motion = _swinging()
    beats = motion_beats(motion.joint_positions())
    assert len(beats) >= 12 and np.allclose(np.diff(beats), 18.5, atol=1)
    # a steady music grid at a slightly faster tempo, 4 frames late at the start and 4 early at the end
    music = np.round(beats[0] + 4 + 17.95 * np.arange(len(beats)))
    music = music[(music > 0) & (music < motion.num_frames - 1)]
    before = beat_align_score(music, beats)
    out, report = beat_sync(motion, music)
    after_offsets = _offsets(out, music)
    assert report.anchors >= len(music) - 2
    assert np.median(after_offsets) <= 1 and np.mean(_offsets(motion, music)) >= 2
    assert beat_align_score(music, motion_beats(out.joint_positions())) > max(0.9, before + 0.15)
    # timing only: same length, the ends untouched, every output pose is a pose the dancer passes through
    assert out.num_frames == motion.num_frames
    np.testing.assert_allclose(out.rotations[[0, -1]], motion.rotations[[0, -1]], atol=1e-6)
    angle = rot.quaternion_to_axis_angle(out.rotations[:, L_SHOULDER])[:, 2]
    assert np.abs(angle).max() <= 0.8 + 1e-4
    assert report.max_rate <= BeatSyncConfig().max_rate + 1e-6


def test_playback_rate_limit_holds_and_distant_beats_stay():
    motion = _swinging()
    beats = motion_beats(motion.joint_positions())
    # a music grid half a beat-step away from every stop: nothing is within max_shift, nothing may move
    music = beats + 9
    music = music[music < motion.num_frames - 1]
    out, report = beat_sync(motion, music, BeatSyncConfig(max_shift=0.3))
    assert report.anchors == 0
    np.testing.assert_allclose(out.rotations, motion.rotations, atol=1e-5)
    # a tight rate limit: large shifts are refused rather than played at double speed
    music = beats + np.where(np.arange(len(beats)) % 2 == 0, 5, -5)
    out, report = beat_sync(motion, music[(music > 0) & (music < 299)], BeatSyncConfig(max_shift=0.45, max_rate=1.1))
    times_rate = report.max_rate
    assert times_rate <= 1.1 + 1e-6


def test_strength_zero_and_no_beats_leave_the_dance_alone():
    motion = _swinging()
    music = motion_beats(motion.joint_positions()) + 3
    out, report = beat_sync(motion, music, BeatSyncConfig(strength=0.0))
    assert out is motion and report.anchors == 0
    out, report = beat_sync(motion, np.zeros(0))
    assert out is motion
    half, _ = beat_sync(motion, music, BeatSyncConfig(strength=0.5))
    full, _ = beat_sync(motion, music, BeatSyncConfig(strength=1.0))
    d = lambda m: np.median(_offsets(m, music))  # noqa: E731
    assert d(full) <= d(half) <= d(motion)


def test_user_settings_are_checked():
    assert beat_sync_config(0) is None and beat_sync_config(False) is None
    assert beat_sync_config(0.5).strength == 0.5 and beat_sync_config(True).strength == 1.0
    for bad in (-0.1, 1.5, float("nan"), "lots", None):
        with pytest.raises(ValueError, match="beat sync"):
            beat_sync_config(bad)
    with pytest.raises(ValueError, match="strength"):
        beat_sync(_swinging(30), np.array([5]), BeatSyncConfig(strength=2.0))
