"""--novelty end to end on a tiny model: the sampler holds an init's frames while the noise is above `novelty`, the
pipeline's retrieve stage feeds it the library's dance, novelty 1 is pure generation unchanged, and edits, keyed
poses, repeats and loops still work with a retrieved dance."""

import shutil

import numpy as np
import pytest
import torch

from backend.motion import figure_library as fl
from backend.motion import retrieval
from backend.motion.generate import MotionExpert
from backend.motion.neck_limit import HEAD, NECK
from backend.motion.pipeline import dance
from backend.motion.representation import motion_to_features
from backend.motion.sampling import SampleOptions, sample
from backend.music.features import BEATS
from bridge.request import DanceRequest, Edit, KeyedPoses, RequestError
from tests.builders import smooth_dance
from tests.test_bridge import tiny_model  # noqa: F401 - the shared tiny model folder
from tests.test_retrieval import duple, song, source  # noqa: F401 - two-beat bars for synthetic songs


@pytest.fixture(scope="module")
def with_library(tiny_model, tmp_path_factory):  # noqa: F811
    """The tiny model folder with a figure library of synthetic rumbas beside it."""
    folder = tmp_path_factory.mktemp("with_library") / "model"
    shutil.copytree(tiny_model, folder)
    lib = fl.build([source(f"r{k}", "rumba", k) for k in range(1, 4)], config_sha=fl.config_hash(folder))
    lib.save(folder / retrieval.LIBRARY_FILE)
    return folder


def _expert(folder) -> MotionExpert:
    return MotionExpert.load(folder)


def _join_setup(folder) -> tuple[MotionExpert, torch.Tensor, np.ndarray, np.ndarray]:
    """The tiny model, 3 s of random music, a random init and its held frames: all but a 10-frame join."""
    expert = _expert(folder)
    torch.manual_seed(0)
    music = torch.randn(90, expert.model.cfg.music_dim)
    init = np.random.default_rng(1).normal(size=(90, expert.model.cfg.motion_dim)).astype(np.float32)
    held = np.ones(90, bool)
    held[40:50] = False  # a join the model dances
    return expert, music, init, held


def test_the_sampler_holds_the_init_while_the_noise_is_above_novelty(tiny_model):  # noqa: F811
    expert, music, init, held = _join_setup(tiny_model)

    def run(**kw) -> np.ndarray:
        return sample(expert.model, music, SampleOptions(steps=4, seed=3, beat_guidance=0.0, **kw)).numpy()

    plain = run()
    assert np.array_equal(run(init=init, init_frames=held, novelty=1.0), plain)  # 1: the init is not used
    kept = run(init=init, init_frames=held, novelty=0.0)
    assert np.allclose(kept[held], init[held], atol=1e-6)  # 0: the library's frames come back exactly
    assert not np.allclose(kept[~held], init[~held], atol=1e-2)  # the join is the model's
    channels = np.repeat(held[:, None], init.shape[1], axis=1)
    channels[:, 4] = True  # one channel held through the join too (the pipeline holds the pelvis's floor path)
    both = run(init=init, init_frames=channels, novelty=0.0)
    assert np.allclose(both[:, 4], init[:, 4], atol=1e-6) and np.allclose(both[held], init[held], atol=1e-6)
    assert not np.allclose(both[~held][:, 5:], init[~held][:, 5:], atol=1e-2)
    half = run(init=init, init_frames=held, novelty=0.5)
    assert not np.allclose(half[held], init[held], atol=1e-3) and not np.allclose(half, plain, atol=1e-3)
    options = SampleOptions(init=init, novelty=0.5)
    assert [options.binds_init(t, 1000) for t in (999, 600, 499, 0)] == [True, True, False, False]
    with pytest.raises(ValueError, match="novelty must be a number from 0"):
        SampleOptions(novelty=1.5).validate()
    with pytest.raises(ValueError, match="the init must be"):
        run(init=init[:10], novelty=0.0)


def test_a_start_below_one_begins_from_the_init_noised_to_it(tiny_model):  # noqa: F811
    expert, music, init, held = _join_setup(tiny_model)
    seen = []
    hook = expert.model.register_forward_hook(lambda m, args, out: seen.append((args[0][0].clone(), int(args[1][0]))))

    def first_pass(**kw) -> tuple[np.ndarray, list[int]]:
        seen.clear()
        sample(expert.model, music, SampleOptions(steps=3, seed=3, beat_guidance=0.0, init=init, init_frames=held,
                                                  novelty=0.0, **kw))
        return seen[0][0][40:50].numpy(), [t for _, t in seen]

    def corr(x: np.ndarray) -> float:
        return float(np.corrcoef(x.ravel(), init[40:50].ravel())[0, 1])

    try:
        join, steps = first_pass(start=0.4)
        assert steps == [400, 200, 0]  # three passes over [0.4, 0] of the schedule
        assert corr(join) > 0.6  # the join's frames enter as the init's, noised: not as noise
        join, steps = first_pass()
        assert steps == [999, 500, 0] and abs(corr(join)) < 0.2  # from pure noise, as before
        seen.clear()
        sample(expert.model, music, SampleOptions(steps=3, seed=3, beat_guidance=0.0, start=0.4))
        assert [t for _, t in seen] == [999, 500, 0]  # without an init the start does nothing
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="start must be in"):
        SampleOptions(start=0.0).validate()
    with pytest.raises(ValueError, match="a loop is danced from noise"):
        SampleOptions(start=0.4, loop=30).validate()


def test_novelty_is_one_checked_option():
    assert DanceRequest().validate().novelty == DanceRequest().novelty
    with pytest.raises(RequestError) as info:
        DanceRequest(novelty=1.5).validate()
    assert info.value.name == "novelty" and "novelty must be a number from 0" in str(info.value)


def test_the_retrieve_stage_starts_the_dance_from_the_library(with_library, monkeypatch):
    monkeypatch.setattr(retrieval, "MODEL_JOIN", 0.0)  # every join danced anew by the model
    expert, music = _expert(with_library), song(12.0)
    raw = dict(steps=3, beat_sync=0.0, lock_feet=False, speed_limit=0.0)  # no clean-up that moves held frames
    motion, report = dance(DanceRequest(novelty=0.0, **raw), music, expert)
    line = next(n for n in report.stages if n.name == "retrieve")
    assert "rumba phrases" in line.note and "novelty 0" in line.note
    assert report.ran().index("retrieve") < report.ran().index("sample")
    got = line.detail
    assert motion.num_frames == music.num_frames and len(got.joins) == len(got.phrases) - 1
    # away from the joins the body is the library's, frame for frame
    assert got.model_joins() == got.joins
    held = retrieval.held_frames(music.num_frames, got.joins)
    # (not the neck and head: the head-turn limit may turn a library head back towards the chest)
    body = lambda m: m.rotations[held][:, [j for j in range(1, 24) if j not in (NECK, HEAD)]]  # noqa: E731
    assert np.abs(np.abs((body(motion) * body(got.motion)).sum(-1)) - 1).max() < 1e-4
    assert np.abs(np.abs((motion.rotations[~held] * got.motion.rotations[~held]).sum(-1)) - 1).max() > 1e-2
    # the pelvis crosses the floor on the library's path through the joins too: the model dances the body there
    # (danced freely, a real rumba's join 4 m out threw the pelvis at 4.7 m/s)
    floor = lambda m: m.root_translation[:, [0, 2]]  # noqa: E731
    assert np.abs(floor(motion) - floor(got.motion)).max() < 1e-4
    pure, pure_report = dance(DanceRequest(novelty=1.0, **raw), music, expert)
    assert "retrieve" not in pure_report.ran()
    again, _ = dance(DanceRequest(novelty=0.0, seed=1, **raw), music, expert)
    assert not np.allclose(again.rotations, motion.rotations)  # the seed picks among the matches


def test_a_half_time_dance_is_sampled_guided_and_synced_to_the_beats_it_steps(with_library, monkeypatch):
    """A 225-BPM song danced from 120-BPM rumbas steps on every other beat: the model's beat column, the beat guidance
    and the beat sync get those beats (on every beat they pulled a bob between the steps), the report says so."""
    expert, fast = _expert(with_library), song(12.0, beat=8, accent=1)
    seen = []
    run = MotionExpert.run
    monkeypatch.setattr(MotionExpert, "run",
                        lambda self, music, *a, **k: seen.append(music) or run(self, music, *a, **k))
    motion, report = dance(DanceRequest(novelty=0.0, steps=2), fast, expert)
    got = report.detail("retrieve")
    assert got.beat_ratio == 0.5 and any("half the song's 225" in line for line in report.lines())
    assert np.array_equal(seen[-1].beat_frames, fast.beat_frames[1::2]) and seen[-1] is got.music
    assert np.array_equal(np.flatnonzero(seen[-1].features[:, BEATS]), fast.beat_frames[1::2])
    assert motion.num_frames == fast.num_frames
    seen.clear()
    dance(DanceRequest(novelty=0.0, steps=2), song(12.0), expert)  # at the rumbas' own tempo
    assert np.array_equal(seen[-1].beat_frames, song(12.0).beat_frames)


def test_keys_snap_to_the_songs_beats_and_a_model_dancing_alone_hears_them(with_library, monkeypatch):
    """Under a double-time dance, keys snapped to beats go to the song's beats (the timeline's markers), not to the
    midpoints the figures also step; where no library frame is held, the model dances to the song's own beats."""
    expert, slow = _expert(with_library), song(12.0, beat=30)  # 60 BPM: the rumbas' 120 between its beats too
    keys = KeyedPoses(np.array([50, 200]), smooth_dance(1.0, 9).rotations[[3, 8]].astype(np.float64),
                      snap_to_beats=True)
    _, report = dance(DanceRequest(novelty=0.0, steps=2, keys=keys), slow, expert)
    assert report.key_frames == [39, 189]  # song beats: 50 is nearer the midpoint 54 the figures step, 200 to 204
    seen = []
    run = MotionExpert.run
    monkeypatch.setattr(MotionExpert, "run",
                        lambda self, music, *a, **k: seen.append(music) or run(self, music, *a, **k))
    base = dance(DanceRequest(novelty=1.0, steps=2), slow, expert)[0]
    seen.clear()
    _, report = dance(DanceRequest(novelty=0.0, steps=2, reference=base, edit=Edit(keep_joints=["left_knee"])),
                      slow, expert)
    assert any("no frame lies clear of the edit's kept values" in line for line in report.lines())
    assert np.array_equal(seen[-1].beat_frames, slow.beat_frames)


def test_the_pelvis_is_led_through_the_joins_but_not_beside_an_edits_kept_values(with_library, monkeypatch):
    from backend.motion.pipeline import _hold
    from backend.motion.representation import ROT6D
    from backend.motion.sampling import ROOT_XZ, Constraint

    monkeypatch.setattr(retrieval, "MODEL_JOIN", 0.0)  # every join danced anew by the model
    expert, music = _expert(with_library), song(12.0)
    got = retrieval.assemble(expert.library(), music, "rumba", 0)
    T, C = got.motion.num_frames, expert.model.cfg.motion_dim
    mask = np.zeros((T, C), bool)
    mask[:60] = True  # an edit keeps the first two seconds
    options = SampleOptions()
    _hold(got, DanceRequest(novelty=0.0), options, expert.normalizer, Constraint(np.zeros((T, C), np.float32), mask),
          None)
    frames = options.init_frames
    assert frames.shape == (T, C)
    joins = [j for j in got.joins if j > 60 + 2 * retrieval.TRANSITION_HALF + retrieval.JOIN_HALF]
    assert joins and all(frames[j, ROOT_XZ].all() and not frames[j, ROT6D].any() for j in joins)  # body: the model's
    assert not frames[60:60 + retrieval.TRANSITION_HALF, ROOT_XZ].any()  # the way from the kept values: the model's


def test_joins_the_eased_offset_makes_smooth_are_kept_not_danced_anew(with_library, monkeypatch):
    monkeypatch.setattr(retrieval, "MODEL_JOIN", 10.0)  # every join smooth enough: the model dances none
    expert, music = _expert(with_library), song(12.0)
    raw = dict(steps=3, beat_sync=0.0, lock_feet=False, speed_limit=0.0)
    motion, report = dance(DanceRequest(novelty=0.0, **raw), music, expert)
    got = report.detail("retrieve")
    assert got.joins and got.eased == got.joins and got.model_joins() == []
    assert "0 danced anew by the model" in got.describe()
    body = lambda m: m.rotations[:, [j for j in range(1, 24) if j not in (NECK, HEAD)]]  # noqa: E731 - the library's
    assert np.abs(np.abs((body(motion) * body(got.motion)).sum(-1)) - 1).max() < 1e-4


def test_without_a_library_the_model_dances_alone_and_says_so(tiny_model):  # noqa: F811
    expert, music = _expert(tiny_model), song(6.0)
    motion, report = dance(DanceRequest(novelty=0.0, steps=2), music, expert)
    assert any("no figure library" in line for line in report.lines())
    pure, _ = dance(DanceRequest(novelty=1.0, steps=2), music, expert)
    assert np.array_equal(motion.rotations, pure.rotations)


def test_edits_keys_repeats_and_loops_still_work_with_a_retrieved_dance(with_library):
    expert, music = _expert(with_library), song(12.0)
    base = dance(DanceRequest(novelty=1.0, steps=2), music, expert)[0]
    edit = Edit(keep_frames=[(0, 120), (240, 10 ** 7)])
    edited, report = dance(DanceRequest(novelty=0.0, steps=2, reference=base, edit=edit), music, expert)
    kept = np.r_[0:120, 240:music.num_frames]
    assert np.abs(edited.rotations[kept] - base.rotations[kept]).max() < 1e-4  # kept frames exact
    assert "retrieve" in report.ran()
    _, report = dance(DanceRequest(novelty=0.0, steps=2, reference=base, edit=Edit(keep_joints=["left_knee"])),
                      music, expert)
    assert any("no frame lies clear of the edit's kept values" in line for line in report.lines())
    keys = KeyedPoses(np.array([60, 200]), smooth_dance(1.0, 9).rotations[[3, 8]].astype(np.float64))
    keyed, report = dance(DanceRequest(novelty=0.0, steps=2, keys=keys), music, expert)
    assert report.key_frames == [60, 200] and np.isfinite(keyed.rotations).all()
    looped, _ = dance(DanceRequest(novelty=0.3, steps=2, loop=1.0), music, expert)
    assert looped.num_frames == music.num_frames and np.isfinite(looped.root_translation).all()
    repeated, report = dance(DanceRequest(novelty=0.0, steps=2, repeat="same"), music, expert)
    assert repeated.num_frames == music.num_frames and "retrieve" in report.ran()


def test_an_asked_style_is_danced_from_the_shipped_library():
    from backend.motion.checkpoint import model_for

    expert, music = _expert(model_for("waltz")), song(10.0)  # weights/me_styles shares weights/me's library
    motion, report = dance(DanceRequest(novelty=0.0, style="waltz", steps=2, beat_sync=0.0), music, expert)
    got = report.detail("retrieve")
    assert got is not None and got.style == "waltz" and "waltz phrases" in got.describe()
    assert motion.num_frames == music.num_frames and np.isfinite(motion.rotations).all()
