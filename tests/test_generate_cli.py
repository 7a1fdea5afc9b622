"""The main job as a user runs it: `mace-dance generate` with the shipped Motion Expert weights."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.motion.checkpoint import SHIPPED_ME
from rigs.motion import Motion

pytestmark = pytest.mark.skipif(not (SHIPPED_ME / "model.safetensors").is_file(),
                                reason="no shipped weights in weights/me")
REPO = Path(__file__).resolve().parents[1]
# a bare environment, as a fresh shell gives; no analysis kept in the machine user's ~/.cache
ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MACE_DANCE_ANALYSIS_CACHE": "off"}


def run(*args, cwd, cache="off"):
    return subprocess.run([sys.executable, "-m", "backend.cli", "generate", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env={**ENV, "MACE_DANCE_ANALYSIS_CACHE": str(cache)})


def test_generate_the_demo_song_writes_a_dance(tmp_path):
    res = run("-o", "out", "--seed", "4", "--plots", cwd=tmp_path, cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "analysed before" not in res.stderr and len(list((tmp_path / "cache").glob("*.npz"))) == 1
    out = tmp_path / "out"
    for name in ("dance.npz", "dance.bvh", "dance_preview.png", "dance_beats.png", "demo_song.wav"):
        assert (out / name).stat().st_size > 0, name
    printed = res.stdout.split()
    assert printed.index(str(Path("out") / "dance.bvh")) < printed.index(str(Path("out") / "dance_preview.png"))
    m = Motion.load_npz(out / "dance.npz")
    assert m.num_frames == 600 and m.fps == 30 and m.contacts is not None
    joints = m.joint_positions()
    assert np.isfinite(joints).all()
    height = joints[..., 1].max(axis=1) - joints[..., 1].min(axis=1)
    assert 1.2 < np.median(height) < 1.9  # an upright dancer, not a collapsed skeleton
    assert abs(joints[:, [7, 8, 10, 11], 1].min()) < 0.15  # feet near the floor
    again = run("-o", "out2", "--seed", "4", cwd=tmp_path, cache=tmp_path / "cache")
    assert again.returncode == 0
    assert "this section was analysed before" in again.stderr  # the second run read the first one's analysis
    # same seed, same dance: to a float32 rounding step, since each run sizes its thread team to the cores free at the
    # time (backend/cpu_threads.py) and a team of another size rounds some sums differently (6e-8 measured)
    np.testing.assert_allclose(Motion.load_npz(tmp_path / "out2" / "dance.npz").rotations, m.rotations, atol=1e-6)
    assert not list((tmp_path / "out2").glob("*.png"))  # plots only on request


def test_generate_follows_a_path_and_reports_bad_input(tmp_path):
    (tmp_path / "path.csv").write_text("0,0\n2,0\n2,2\n")
    res = run("-o", "out", "--path", str(tmp_path / "path.csv"), "--steps", "10", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    m = Motion.load_npz(tmp_path / "out" / "dance.npz")
    assert np.abs(m.root_translation[-1, [0, 2]] - [2.0, 2.0]).max() < 1e-3
    bad = run(str(tmp_path / "nope.mp3"), "-o", "out", cwd=tmp_path)
    assert bad.returncode == 2 and "nope.mp3: audio file not found" in bad.stderr and "Traceback" not in bad.stderr


def test_style_is_checked_against_the_model_in_one_line(tmp_path):
    from backend.motion.checkpoint import load_model

    styles = load_model(SHIPPED_ME)[0].cfg.n_styles
    bad = run("-o", "out", "--style", "salsa", "--steps", "2", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown style 'salsa'" in bad.stderr and "Traceback" not in bad.stderr
    # asked of the shipped default, a style is danced by the shipped style model (weights/me_styles) ...
    res = run("-o", "out", "--style", "waltz", "--steps", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "out" / "dance.npz").is_file()
    # ... but a model folder the user names is used as it is, and one without styles says so in one line
    named = run("-o", "out2", "--style", "waltz", "--steps", "2", "--model-dir", str(SHIPPED_ME), cwd=tmp_path)
    if styles:
        assert named.returncode == 0, named.stderr[-2000:]
    else:
        assert named.returncode == 2 and "no style condition" in named.stderr and "Traceback" not in named.stderr


def test_the_cli_samples_with_the_product_default_steps():
    import inspect

    from backend import cli
    from backend.motion.sampling import DEFAULT_STEPS, SampleOptions

    assert SampleOptions().steps == DEFAULT_STEPS
    # the CLI leaves the steps to the pipeline (6 from the figure library, 12 otherwise: tests/test_auto_steps.py)
    assert inspect.signature(cli.generate).parameters["steps"].default.default is None
    from backend.motion.beat_guidance import DEFAULT_BEAT_GUIDANCE

    for command in (cli.generate, cli.comp):
        assert inspect.signature(command).parameters["beat_guidance"].default.default == DEFAULT_BEAT_GUIDANCE
    assert inspect.signature(cli.generate).parameters["speed_limit"].default.default == SampleOptions().speed_limit
    assert inspect.signature(cli.generate).parameters["beta"].default.default == SampleOptions().beta
    assert inspect.signature(cli.generate).parameters["style_guidance"].default.default == SampleOptions().style_guidance


def test_takes_comp_repeat_and_keyed_poses_from_the_cli(tmp_path):
    from backend.motion.choreography import local_joints

    res = run("-o", "t", "--end", "12", "--takes", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    takes = [Motion.load_npz(tmp_path / "t" / f"take_{k}" / "dance.npz") for k in (1, 2)]
    assert not np.allclose(takes[0].rotations, takes[1].rotations)  # different seeds, different takes
    comp = subprocess.run([sys.executable, "-m", "backend.cli", "comp", "t/demo_song.wav", "--end", "12",
                           "--take", "t/take_1/dance.npz", "--take", "t/take_2/dance.npz", "--use", "0:6=2",
                           "--use", "6:end=1", "-o", "c"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=ENV)
    assert comp.returncode == 0, comp.stderr[-2000:]
    assert "transitions of 1.1 s at 6.00 s" in comp.stderr
    m = Motion.load_npz(tmp_path / "c" / "dance.npz")
    # take 2's poses before the transition, take 1's after it (placed where the dancer stands)
    assert np.abs(local_joints(m)[:164] - local_joints(takes[1])[:164]).max() < 1e-4
    assert np.abs(local_joints(m)[196:] - local_joints(takes[0])[196:360]).max() < 1e-4
    # the built-in song repeats its first 10 s: the repeat dances the same phrase again
    res = run("-o", "r", "--repeat", "same", cwd=tmp_path)
    assert res.returncode == 0 and "repeat: A' at 10.0 s dances the phrase from 0.0 s" in res.stderr, res.stderr
    r = Motion.load_npz(tmp_path / "r" / "dance.npz")
    assert np.abs(local_joints(r)[16:284] - local_joints(r)[316:584]).max() < 1e-4
    # keyed poses (times in seconds, the root where a free dance stands), moved onto beats
    np.savez(tmp_path / "poses.npz", times=np.array([2.1, 5.0, 8.2]), rotations=takes[1].rotations[[60, 150, 240]])
    res = run("-o", "k", "--poses", "poses.npz", "--snap-poses", cwd=tmp_path)
    assert res.returncode == 0 and "keyed poses at 2.00, 5.00, 8.00 s (moved onto beats)" in res.stderr, res.stderr
    k = Motion.load_npz(tmp_path / "k" / "dance.npz")
    assert np.abs(k.matrices()[[60, 150, 240]] - takes[1].matrices()[[60, 150, 240]]).max() < 1e-4
    bad = run("-o", "x", "--poses", "nope.npz", cwd=tmp_path)
    assert bad.returncode != 0 and "nope.npz: keyed poses file not found" in bad.stderr


@pytest.mark.parametrize("flag,value,says", [("--disguise", "1.5", "a share in [0, 1]"),
                                              ("--cross-song", "1", "a share in [0, 1)"),
                                              ("--drop-block", "-0.1", "a share in [0, 1]"),
                                              ("--style-alone", "1", "a share in [0, 1)"),
                                              ("--foot-loss", "-1", "a weight in [0, 100)"),
                                              ("--audio-variants", "13", "a count in [0, 12]"),
                                              ("--variant-share", "2", "a share in [0, 1]")])
def test_train_rejects_augmentation_shares_and_loss_weights_out_of_range_in_one_line(tmp_path, flag, value, says):
    res = subprocess.run([sys.executable, "-m", "backend.cli", "train", "--steps", "1", "--out", str(tmp_path / "r"),
                          flag, value], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=ENV)
    assert res.returncode == 2 and flag in res.stderr and says in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r").exists()  # nothing started
