import pickle

import numpy as np
import pytest

import builders
from rigs.bvh import read_bvh, read_bvh_motion, write_bvh
from rigs.motion import Motion, MotionFileError
from rigs.smpl_pickle import load_smpl_pickle


def random_motion(frames=40, seed=0, **kw):
    return builders.random_motion(frames, seed, scale=0.6, drift=0.01, **kw)


def test_motion_validates_shapes_and_values():
    q = np.zeros((5, 24, 4)); q[..., 0] = 1
    with pytest.raises(ValueError, match="22 joints but the rig names 24"):
        Motion(q[:, :22], np.zeros((5, 3)))
    with pytest.raises(ValueError, match="root_translation must have shape"):
        Motion(q, np.zeros((4, 3)))
    bad = q.copy(); bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Motion(bad, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="zero-length"):
        Motion(np.zeros((5, 24, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="contacts must have shape"):
        Motion(q, np.zeros((5, 3)), contacts=np.zeros((5, 2)))


def test_rest_motion_stands_on_the_floor():
    pos = Motion.rest(3).joint_positions()
    assert abs(pos[..., 1].min()) < 1e-6
    assert pos[0, 15, 1] > 1.4  # head height of the neutral body


def test_npz_round_trip(tmp_path):
    m = random_motion(contacts=np.random.default_rng(1).uniform(size=(40, 4)), betas=np.arange(10) * 0.1, fps=25)
    path = m.save_npz(tmp_path / "a" / "dance.npz")
    m2 = Motion.load_npz(path)
    assert m2.fps == 25 and m2.joint_names == m.joint_names
    assert np.array_equal(m2.rotations, m.rotations)
    assert np.array_equal(m2.root_translation, m.root_translation)
    assert np.array_equal(m2.contacts, m.contacts) and np.array_equal(m2.betas, m.betas)
    assert not list(tmp_path.glob("**/*.part"))


def _write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def test_npz_bad_files_name_the_file_and_problem(tmp_path):
    good = random_motion().save_npz(tmp_path / "good.npz")
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(MotionFileError, match=r"truncated\.npz: unreadable or truncated"):
        Motion.load_npz(tmp_path / "truncated.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(MotionFileError, match="text.npz"):
        Motion.load_npz(tmp_path / "text.npz")
    names = np.asarray(random_motion().joint_names)
    q = random_motion().rotations
    _write_npz(tmp_path / "joints.npz", fps=30.0, rotations=q[:, :22], root_translation=np.zeros((40, 3)),
               joint_names=names)
    with pytest.raises(MotionFileError, match="joints.npz: rotations have 22 joints"):
        Motion.load_npz(tmp_path / "joints.npz")
    nan_q = q.copy(); nan_q[0, 0, 0] = np.nan
    _write_npz(tmp_path / "nan.npz", fps=30.0, rotations=nan_q, root_translation=np.zeros((40, 3)), joint_names=names)
    with pytest.raises(MotionFileError, match="nan.npz: rotations contain NaN"):
        Motion.load_npz(tmp_path / "nan.npz")
    _write_npz(tmp_path / "shape.npz", fps=30.0, rotations=q[..., :3], root_translation=np.zeros((40, 3)),
               joint_names=names)
    with pytest.raises(MotionFileError, match="shape.npz: rotations must have shape"):
        Motion.load_npz(tmp_path / "shape.npz")
    _write_npz(tmp_path / "missing.npz", rotations=q)
    with pytest.raises(MotionFileError, match="missing.npz: not a motion file"):
        Motion.load_npz(tmp_path / "missing.npz")
    # object arrays would need pickle: refused, not executed
    _write_npz(tmp_path / "obj.npz", fps=30.0, rotations=np.array([object()], dtype=object),
               root_translation=np.zeros((40, 3)), joint_names=names)
    with pytest.raises(MotionFileError, match="obj.npz"):
        Motion.load_npz(tmp_path / "obj.npz")
    with pytest.raises(MotionFileError, match="nowhere.npz: file not found"):
        Motion.load_npz(tmp_path / "nowhere.npz")


def test_resample_keeps_shared_frames_and_duration():
    m = random_motion(frames=51, fps=25)
    r = m.resample(30)
    assert r.num_frames == 61 and r.fps == 30
    # frames at common instants (every 5th at 25 fps = every 6th at 30 fps) are unchanged
    assert np.allclose(r.matrices()[::6], m.matrices()[::5], atol=1e-5)
    assert np.allclose(r.root_translation[::6], m.root_translation[::5], atol=1e-5)
    assert abs((r.num_frames - 1) / r.fps - (m.num_frames - 1) / m.fps) < 1e-9


def test_slice_bounds():
    m = random_motion(frames=10)
    assert m.slice(2, 5).num_frames == 3
    with pytest.raises(ValueError, match="outside"):
        m.slice(5, 20)


def test_bvh_round_trip_is_exact_to_1e5(tmp_path):
    m = random_motion(frames=60, fps=30)
    path = write_bvh(tmp_path / "dance.bvh", m)
    m2 = read_bvh_motion(path)
    assert m2.num_frames == 60 and abs(m2.fps - 30) < 1e-6
    assert np.abs(m2.matrices() - m.matrices()).max() < 1e-5
    assert np.abs(m2.root_translation - m.root_translation).max() < 1e-5
    assert np.abs(m2.joint_positions() - m.joint_positions()).max() < 1e-5
    # the file is ordinary BVH: centimetres, ZXY rotations, depth-first joints
    clip = read_bvh(path)
    assert clip.channels[0][:3] == ("Xposition", "Yposition", "Zposition")
    assert clip.joint_names[:4] == ("pelvis", "left_hip", "left_knee", "left_ankle")
    assert np.allclose(clip.values[:, :3] / 100, m.root_translation, atol=1e-6)


def test_bvh_in_metres_loads_with_the_same_motion(tmp_path):
    m = random_motion(frames=5)
    m2 = read_bvh_motion(write_bvh(tmp_path / "m.bvh", m, scale=1.0))
    assert np.abs(m2.root_translation - m.root_translation).max() < 1e-5


def test_bvh_bad_files(tmp_path):
    path = write_bvh(tmp_path / "ok.bvh", random_motion(frames=10))
    text = path.read_text()
    (tmp_path / "cut.bvh").write_text(text[: int(len(text) * 0.8)])
    with pytest.raises(MotionFileError, match=r"cut.bvh: .*expected 10 frames .*truncated"):
        read_bvh(tmp_path / "cut.bvh")
    (tmp_path / "nohier.bvh").write_text(text[text.index("MOTION"):])
    with pytest.raises(MotionFileError, match="nohier.bvh: .*HIERARCHY"):
        read_bvh(tmp_path / "nohier.bvh")
    (tmp_path / "half.bvh").write_text(text[: text.index("MOTION") // 2])
    with pytest.raises(MotionFileError, match="half.bvh: .*MOTION"):
        read_bvh(tmp_path / "half.bvh")
    lines = text.splitlines()
    lines[-1] = "nan " + lines[-1].split(" ", 1)[1]
    (tmp_path / "nan.bvh").write_text("\n".join(lines))
    with pytest.raises(MotionFileError, match="nan.bvh"):
        read_bvh(tmp_path / "nan.bvh")


def test_bvh_of_another_skeleton_is_refused_by_the_smpl_reader(tmp_path):
    text = write_bvh(tmp_path / "ok.bvh", random_motion(frames=3)).read_text().replace("left_knee", "LeftLeg")
    (tmp_path / "other.bvh").write_text(text)
    with pytest.raises(MotionFileError, match="other.bvh: not an SMPL-skeleton BVH"):
        read_bvh_motion(tmp_path / "other.bvh")


def _aist_pickle(path, poses, trans, scaling):
    with open(path, "wb") as fh:
        pickle.dump({"smpl_loss": 0.1, "smpl_poses": poses, "smpl_scaling": np.array([scaling]),
                     "smpl_trans": trans}, fh)
    return path


def test_aist_pickle_reader(tmp_path):
    m = random_motion(frames=12)
    poses = m.axis_angle().reshape(12, 72)
    path = _aist_pickle(tmp_path / "gBR_sBM_cAll_d04_mBR0_ch01.pkl", poses, m.root_translation * 93.0, 93.0)
    m2 = load_smpl_pickle(path)
    assert m2.fps == 60
    assert np.abs(m2.joint_positions() - m.joint_positions()).max() < 1e-5


def test_pickle_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"smpl_poses": Evil()}))
    with pytest.raises(MotionFileError, match=r"evil.pkl: .*refusing to load builtins.print"):
        load_smpl_pickle(path)
    _aist_pickle(tmp_path / "bad.pkl", np.zeros((5, 69)), np.zeros((5, 3)), 1.0)
    with pytest.raises(MotionFileError, match=r"bad.pkl: poses must be \(frames, 72\)"):
        load_smpl_pickle(tmp_path / "bad.pkl")


def test_in_place_moves_the_travel_into_its_own_channel(tmp_path):
    from backend.motion.gameready import in_place

    m = random_motion(frames=30)
    ip = in_place(m)
    assert np.allclose(ip.root_translation[:, [0, 2]], m.root_translation[0, [0, 2]])  # on the spot
    assert np.allclose(ip.root_translation[:, 1], m.root_translation[:, 1])  # height kept
    assert np.allclose(ip.root_translation + ip.root_motion, m.root_translation, atol=1e-6)
    back = Motion.load_npz(ip.save_npz(tmp_path / "ip.npz"))
    assert np.array_equal(back.root_motion, ip.root_motion)
    assert back.resample(60).root_motion.shape == (59, 3) and back.slice(3, 9).root_motion.shape == (6, 3)
    with pytest.raises(ValueError, match="root_motion must have shape"):
        Motion(m.rotations, m.root_translation, root_motion=np.zeros((3, 3)))
