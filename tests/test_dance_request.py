"""One dance request, one pipeline: the request's checks and wire form, the CLI and server derived from it, and every
CLI generation feature giving the same dance here and through a server."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from bridge.request import DanceRequest, Edit, KeyedPoses, RequestError, default_of, option, option_fields
from bridge.request_wire import from_wire, to_wire, wire_schema
from tests.builders import random_motion
from tests.test_bridge import ServerProcess, song, tiny_model  # noqa: F401 - fixtures shared with the bridge tests


@pytest.mark.parametrize("field,value,says", [
    ("beta", 1.5, "beta must be in (0, 1], got 1.5"),
    ("steps", 0, "steps must be between 1 and 1000, got 0"),
    ("speed_limit", 0.5, "speed limit must be 0 (off) or in [1, 100] m/s, got 0.5"),
    ("repeat", "twice", "--repeat must be off, same or mirror, got 'twice'"),
    ("style", "salsa", "unknown style 'salsa'"),
    ("takes", 33, "--takes must be between 1 and 32, got 33"),
    ("beat_sync", 2.0, "beat sync must be a number from 0 (off) to 1 (full)"),
    ("seed", -1, "the seed must be a whole number"),
    ("loop", 61.0, "the loop blend must be from 0 to 60 s"),
    ("novelty", 1.5, "novelty must be a number from 0 (library figures) to 1 (pure generation), got 1.5"),
])
def test_a_bad_option_is_one_sentence_naming_it(field, value, says):
    with pytest.raises(RequestError, match=None) as info:
        DanceRequest(**{field: value}).validate()
    assert says in str(info.value) and info.value.name == field
    assert DanceRequest(speed_limit=0.0).validate().speed_limit == 0.0  # 0 turns it off, outside [1, 100]
    assert DanceRequest(style="Cha_Cha").validate().style == "cha-cha"


def test_parts_that_cannot_go_together_are_refused():
    ref = random_motion(60)
    with pytest.raises(RequestError, match="cannot be combined"):
        DanceRequest(repeat="same", path_xz=np.zeros((5, 2))).validate()
    with pytest.raises(RequestError, match="needs the dance to edit"):
        DanceRequest(edit=Edit(keep_joints=["left_knee"])).validate()
    with pytest.raises(RequestError, match="asks for nothing"):
        DanceRequest(reference=ref, edit=Edit()).validate()
    with pytest.raises(RequestError, match="two rows of two finite numbers"):
        DanceRequest(path_xz=np.array([[0.0, np.nan], [1.0, 1.0]])).validate()
    assert DanceRequest(repeat="mirror", reference=ref).validate().repeat == "mirror"  # repeat a given dance
    takes = DanceRequest(seed=7, takes=3).validate().each_take()
    assert [t.seed for t in takes] == [7, 8, 9] and {t.takes for t in takes} == {1}


def test_a_request_crosses_the_wire_unchanged():
    ref = random_motion(90, seed=2, fps=25.0)
    keys = KeyedPoses(np.array([10, 40]), ref.rotations[[3, 8]].astype(np.float64), None, None, snap_to_beats=True)
    request = DanceRequest(beta=0.6, seed=11, loop=1.5, style="waltz", edit_guidance=2.0, lock_feet=False,
                           reference=ref, edit=Edit(keep_frames=[(0, 20), (50, 10 ** 7)], keep_joints=["pelvis"],
                                                    keep_root=True, transition_frames=12),
                           path_xz=np.linspace(0, 1, 14).reshape(7, 2), keys=keys).validate()
    options, arrays = to_wire(request)
    assert "steps" not in options and "seed" in options  # only what differs from the defaults travels
    assert set(options) <= set(wire_schema())
    back = from_wire(options, arrays)
    for f in option_fields():
        if f.metadata["spec"].wire:
            assert getattr(back, f.name) == getattr(request, f.name), f.name
    assert back.edit == request.edit and back.reference.fps == 25.0
    assert np.array_equal(back.reference.rotations, ref.rotations)
    assert back.path_xz.dtype == np.float64 and np.array_equal(back.path_xz, request.path_xz)
    assert np.array_equal(back.keys.rotations, keys.rotations) and back.keys.root is None and back.keys.snap_to_beats
    with pytest.raises(RequestError, match="option 'beta' must be a finite number"):
        from_wire({"beta": "hot"}, {})
    with pytest.raises(RequestError, match="beta must be in"):
        from_wire({"beta": 3.0}, {})


def test_the_cli_and_the_server_schema_are_derived_from_the_request():
    from backend import cli
    from backend.server.schema import MOTION

    params = inspect.signature(cli.generate).parameters
    for f in option_fields():
        assert params[f.name].default.default == f.default, f.name  # same default
        assert params[f.name].default.help == f.metadata["spec"].help  # same help
        assert (f.name in MOTION) == f.metadata["spec"].wire
    assert set(MOTION) - {f.name for f in option_fields()} == {"audio_name", "fps", "edit", "keys"}
    for name in ("steps", "seed", "beat_guidance"):
        assert inspect.signature(cli.comp).parameters[name].default.default == default_of(name)


def test_a_new_request_field_is_one_declaration():
    """A future option (--sway here), declared once: the CLI option, the schema and the wire form follow (--novelty
    came this way)."""
    @dataclass
    class WithSway(DanceRequest):
        sway: float = option(1.0, "number", "0: upright; 1: full sway.",
                             low=0.0, high=1.0, error="sway must be in [0, 1], got {value}")

    from backend.cli.request_options import request_from_options, with_request_options

    seen = {}

    @with_request_options(cls=WithSway)
    def command(**options) -> None:
        seen["request"] = request_from_options(options, cls=WithSway)

    app = typer.Typer()
    app.command()(command)
    app.command("other")(lambda: None)
    res = CliRunner().invoke(app, ["command", "--sway", "0.25", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert seen["request"].sway == 0.25 and seen["request"].seed == 3
    res = CliRunner().invoke(app, ["command", "--sway", "2"])
    assert isinstance(res.exception, RequestError) and "sway must be in [0, 1], got 2.0" in str(res.exception)
    options, arrays = to_wire(WithSway(sway=0.5))
    assert options == {"sway": 0.5} and from_wire(options, arrays, cls=WithSway).sway == 0.5
    assert "sway" in wire_schema(WithSway)
    with pytest.raises(RequestError, match="unknown option sway"):
        from_wire(options, arrays)  # a server without the field says so in one line


# --- every CLI generation feature, here and through a server ------------------------------------------------------

def _cli(*args):
    from backend.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res


def _same(a, b):
    from rigs.motion import Motion

    ma, mb = Motion.load_npz(a), Motion.load_npz(b)
    assert ma.num_frames == mb.num_frames
    assert np.abs(ma.rotations - mb.rotations).max() < 1e-5, a
    assert np.abs(ma.root_translation - mb.root_translation).max() < 1e-5, a
    for name in ("root_motion", "contacts"):
        x, y = getattr(ma, name), getattr(mb, name)
        assert (x is None) == (y is None) and (x is None or np.abs(x - y).max() < 1e-5), (a, name)


@pytest.mark.slow
def test_every_cli_feature_gives_the_same_dance_through_a_server(tiny_model, song, tmp_path,  # noqa: F811
                                                                 monkeypatch):
    import soundfile as sf

    from backend import cpu_threads
    from backend.music.features import SR
    from tests.builders import C, F_SHARP, chord_song

    # One thread on both sides: the thread policy sizes each step's team to the cores free at that moment, and a
    # machine busy with other tests gave the two processes different teams, whose sums round apart (1.7e-5 after a
    # mirrored repeat's passes); this test is about what crosses the wire, not about rounding.
    # The policy is made as the server makes its own (policy() from the environment), which also puts numpy's BLAS on
    # one thread: set directly, it left this process's OpenBLAS team on, and a test run alone danced 6e-5 apart.
    monkeypatch.setenv(cpu_threads.ENV, "1")
    monkeypatch.setattr(cpu_threads, "_policy", None)
    assert cpu_threads.policy().decide() == 1
    server = ServerProcess(tiny_model, tmp_path / "server")
    try:
        base = tmp_path / "base"
        _cli("generate", song, "-o", base, "--model-dir", tiny_model, "--steps", 3, "--seed", 5)
        np.savetxt(tmp_path / "path.csv", [[0, 0], [1, 0], [1, 1]], delimiter=",")
        np.savez(tmp_path / "keys.npz", times=np.array([1.0, 2.5]),
                 rotations=random_motion(2, seed=4).rotations.astype(np.float64))
        aba = tmp_path / "aba.wav"
        sf.write(str(aba), chord_song([C, F_SHARP, C]), SR)
        features = {
            "plain": (song, "--beta", 0.6, "--beat-sync", 0.5, "--speed-limit", 5),
            "takes": (song, "--takes", 2, "--loop", 1, "--in-place"),
            "edit": (song, "--reference", base / "dance.npz", "--regenerate", "1:2.5", "--keep-joints", "lower-body",
                     "--edit-guidance", 2),
            "path": (song, "--path", tmp_path / "path.csv"),
            "keys": (song, "--poses", tmp_path / "keys.npz", "--snap-poses"),
            "repeat": (aba, "--repeat", "mirror", "--steps", 2),
        }
        for name, args in features.items():
            here, there = tmp_path / "here" / name, tmp_path / "there" / name
            common = ("--model-dir", tiny_model, "--steps", 3, *args[1:])
            _cli("generate", args[0], "-o", here, *common)
            _cli("generate", args[0], "-o", there, "--server", server.endpoint, *common[2:])
            for file in sorted(here.rglob("dance.npz")):
                _same(file, there / file.relative_to(here))
            assert len(list(here.rglob("dance.npz"))) == (2 if name == "takes" else 1)
        takes = [tmp_path / "here" / "takes" / f"take_{k}" / "dance.npz" for k in (1, 2)]
        comp = ("--take", takes[0], "--take", takes[1], "--use", "0:2=2", "--use", "2:end=1", "--steps", 3)
        _cli("comp", song, "-o", tmp_path / "here" / "comp", "--model-dir", tiny_model, *comp)
        _cli("comp", song, "-o", tmp_path / "there" / "comp", "--server", server.endpoint, *comp)
        _same(tmp_path / "here" / "comp" / "dance.npz", tmp_path / "there" / "comp" / "dance.npz")
    finally:
        server.stop()


def test_keys_on_a_given_dance_redance_only_around_each_key(tiny_model, song):  # noqa: F811
    """Two changed elbow keys re-danced 524 of 601 frames and pulled the pelvis back to the old stand at each key
    (issue 31, failure 6): given the dance, only a window around each key is danced anew."""
    from backend.motion.constraints import KEY_WINDOW
    from backend.motion.generate import MotionExpert
    from backend.motion.pipeline import dance
    from backend.music.features import analyse_file

    music = analyse_file(song)
    expert = MotionExpert.load(tiny_model)
    given, _ = dance(DanceRequest(steps=2, seed=1), music, expert)
    posed = given.rotations[[30, 90]].copy()
    elbow = 18  # left_elbow
    posed[:, elbow] = [0.7071, 0.0, 0.7071, 0.0]  # the animator bent the elbow at two frames
    joints = np.zeros((2, 24), bool)
    joints[:, elbow] = True
    keys = KeyedPoses(np.array([30, 90]), posed, joints, given.root_translation[[30, 90]])
    out, report = dance(DanceRequest(steps=2, seed=2, reference=given, keys=keys, lock_feet=False), music, expert)
    free = np.zeros(music.num_frames, bool)
    for k in (30, 90):
        free[k - KEY_WINDOW:k + KEY_WINDOW] = True
    moved = np.linalg.norm(out.joint_positions() - given.joint_positions(), axis=-1).max(axis=1)
    assert moved[~free].max() < 0.01  # the rest of the dance is the dance given
    assert np.abs(out.matrices()[[30, 90], elbow] - given.matrices()[[30, 90]][:, elbow]).max() > 0.1
    from rigs import rotations as rot

    assert np.abs(out.matrices()[[30, 90], elbow] - rot.quaternion_to_matrix(posed[:, elbow])).max() < 1e-3
    assert report.key_frames == [30, 90]
