"""Real-data loaders on ../shared/data (skipped with a reason when it is absent)."""

import numpy as np
import pytest

from backend.data import tang2018
from backend.data.dataset import SPLITS, DanceDataset, split_of
from backend.data.unpaired import load_unpaired
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()


@pytest.fixture(scope="module")
def tang_dir(shared_data):
    return shared_data / "music2dance_tang2018"


@pytest.mark.parametrize("name", ["DANCE_W_1", "DANCE_R_2", "DANCE_T_5"])
def test_sides_are_settled_consistently(tang_dir, name):
    seq = tang2018.load_sequence(tang_dir / name)
    sides = tang2018.settle_sides(seq.positions)
    assert not sides.chain_a_is_left  # chain A is the dancer's right, as the data README suspects
    assert sides.side_agreement > 0.98
    assert sides.heel_toe_agreement > 0.8  # knees bend where the toes point: heel/toe read correctly
    # mirroring the recording (x -> -x) must flip the answer: the decision comes from the data
    mirrored = seq.positions * np.array([-1.0, 1.0, 1.0])
    assert tang2018.settle_sides(mirrored).chain_a_is_left


def test_fit_follows_the_markers(tang_dir):
    seq = tang2018.load_sequence(tang_dir / "DANCE_W_1")
    assert seq.positions.shape == (1430, 23, 3) and seq.style == "waltz"
    sides = tang2018.settle_sides(seq.positions)
    motion, fit = tang2018.fit_smpl(seq, sides, smooth_sigma=0.0)
    assert motion.num_frames == 1430 and motion.fps == 25
    assert 0.9 < fit.scale < 1.1
    assert fit.mpjpe_mm < 150  # dominated by SMPL's fixed proportions; directions are exact (below)
    joints = motion.joint_positions()
    for side, chain in (("left", tang2018.CHAIN_B), ("right", tang2018.CHAIN_A)):
        for a, b, ma, mb in ((f"{side}_hip", f"{side}_knee", "hip", "knee"),
                             (f"{side}_knee", f"{side}_ankle", "knee", "ankle"),
                             (f"{side}_shoulder", f"{side}_elbow", "shoulder", "elbow"),
                             (f"{side}_elbow", f"{side}_wrist", "elbow", "wrist")):
            d_fit = joints[:, SK.index(b)] - joints[:, SK.index(a)]
            d_obs = seq.positions[:, chain[mb]] - seq.positions[:, chain[ma]]
            cos = np.sum(d_fit * d_obs, -1) / np.linalg.norm(d_fit, axis=-1) / np.linalg.norm(d_obs, axis=-1)
            assert cos.min() > 0.9999, (a, b, cos.min())
    # feet on the floor throughout: the recording's floor drift is removed window by window
    feet = joints[:, [SK.index(n) for n in SK.foot_joints], 1].min(axis=1)
    windows = feet[: len(feet) // 50 * 50].reshape(-1, 50).min(axis=1)
    assert np.abs(windows).max() < 0.03, windows


def test_dataset_converts_caches_and_aligns(shared_data, tmp_path):
    names = ["DANCE_C_8", "DANCE_W_1"]
    ds = DanceDataset(shared_data, tmp_path, names=names)
    clips = ds.clips
    assert [c.name for c in clips] == names
    assert [c.split for c in clips] == ["test", "train"]
    w1 = clips[1]
    assert w1.motion.fps == 30 and abs(w1.motion.num_frames - 1430 * 1.2) <= 2
    assert w1.music.features.shape == (w1.motion.num_frames, 35)
    assert w1.motion.contacts.shape == (w1.motion.num_frames, 4) and 0.2 < w1.motion.contacts.mean() < 0.95
    assert 60 < w1.music.tempo < 200 and len(w1.music.beat_frames) > 50
    cached = sorted(p.name for p in (tmp_path / "tang2018").glob("*.npz"))
    assert [n.split("-")[0] for n in cached] == sorted(names)
    again = DanceDataset(shared_data, tmp_path, names=names).clips  # from the cache
    assert np.array_equal(again[1].motion.rotations, w1.motion.rotations)
    assert np.array_equal(again[1].music.features, w1.music.features)
    assert again[1].fit.mpjpe_mm == pytest.approx(w1.fit.mpjpe_mm)
    # the tracker's bars come back from the cache as the analysis gave them (a waltz: 3 beats a bar)
    assert w1.music.meter == again[1].music.meter == 3
    assert np.array_equal(again[1].music.downbeat_frames, w1.music.downbeat_frames)
    assert len(w1.music.downbeat_frames) >= len(w1.music.beat_frames) // 3 - 1


def test_cache_key_follows_the_source_files(tang_dir, tmp_path):
    import shutil

    from backend.data.dataset import _source_key

    copy = tmp_path / "DANCE_W_1"
    shutil.copytree(tang_dir / "DANCE_W_1", copy)
    before = _source_key(copy)
    assert before == _source_key(tang_dir / "DANCE_W_1")
    (copy / "config.json").chmod(0o644)
    (copy / "config.json").write_text('{"start_position": 5, "end_position": 1439}')
    assert _source_key(copy) != before


def test_splits_are_by_song_and_disjoint(tang_dir):
    names = sorted(p.name for p in tang_dir.glob("DANCE_*"))
    assert len(names) == 39
    test, val = set(SPLITS["test"]), set(SPLITS["val"])
    assert not test & val and test | val <= set(names)
    train = [n for n in names if split_of(n) == "train"]
    assert len(train) == 29 and not set(train) & (test | val)


def test_unpaired_bvh_clips_load_as_smpl(shared_data):
    clips = load_unpaired(shared_data)
    assert set(clips) == {"dataset-1_dance-short_normal_001.bvh", "60_01_scaled.bvh", "61_01_scaled.bvh"}
    bandai = clips["dataset-1_dance-short_normal_001.bvh"]
    assert bandai.fps == 30 and abs(bandai.duration - 63.4) < 0.2
    salsa = clips["60_01_scaled.bvh"]
    assert abs(salsa.duration - 18.7) < 0.1  # 120 fps resampled to 30
    for m in clips.values():
        heights = m.joint_positions()[..., 1]
        assert 1.3 < np.median(heights.max(axis=1) - heights.min(axis=1)) < 1.8  # an upright human on SMPL
        assert m.contacts is not None


@pytest.mark.slow
def test_ground_truth_metric_row(tang_dataset):
    from backend.metrics.report import ground_truth_row

    row = ground_truth_row(tang_dataset)
    assert row.n == 6
    values = [row.fid_k, row.fid_g, row.div_k, row.div_g, row.bas, row.pfc]
    assert all(np.isfinite(values)) and row.fid_k > 0 and row.div_k > 0 and np.isfinite(row.fid_g_varying)
    assert 0.05 < row.bas < 0.6 and row.pfc > 0
