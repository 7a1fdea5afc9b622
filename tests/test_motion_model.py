"""The Motion Expert's parts on tiny configurations built here (no shipped weights needed)."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from backend.motion.checkpoint import SHIPPED_ME, ModelFolderError, load_model, save_model
from backend.motion.diffusion import LossWeights, MotionLosses, Schedule, gft_prediction, snr_weights
from backend.motion.conditioning import STYLES
from backend.motion.editing import combine, follow_path, keep_frames, keep_joints
from backend.motion.generate import MotionExpert
from backend.motion.mamba import BiMamba, Mamba2, MambaConfig, ssd_chunked, ssd_reference
from backend.motion.smoothing import smooth_in_time
from backend.motion.model import SKIP_SIGMA, Denoiser, DenoiserConfig, WindowedCrossAttention
from backend.motion.representation import (Normalizer, canonicalize, features_to_motion, heading, mirror,
                                           motion_to_features)
from backend.motion.sampling import (DEFAULT_CUTOFF, DEFAULT_RECONSTRUCT, LONE_GAIN, LONE_RUN, Cancelled, Constraint,
                                     SampleOptions, guidance_weights, sample)
from backend.music.features import MusicFeatures
from rigs.motion import Motion

TINY = DenoiserConfig(d_model=32, n_blocks=2, n_music_layers=1, n_heads=2, d_state=8, headdim=16, chunk_size=16,
                      attn_window=4, dropout=0.0)


@pytest.mark.parametrize("length,chunk", [(37, 8), (64, 16), (5, 16), (100, 33), (203, 4)])  # 51 chunks: carried
# by the recurrence (CARRY_LOOP_ABOVE), the others by the matrix
def test_chunked_scan_equals_the_loop(length, chunk):
    g = torch.Generator().manual_seed(length)
    x = torch.randn(2, length, 3, 4, generator=g, dtype=torch.float64)
    a = -torch.rand(2, length, 3, generator=g, dtype=torch.float64)
    b = torch.randn(2, length, 5, generator=g, dtype=torch.float64)
    c = torch.randn(2, length, 5, generator=g, dtype=torch.float64)
    assert torch.allclose(ssd_chunked(x, a, b, c, chunk), ssd_reference(x, a, b, c), atol=1e-10)


def test_mamba_is_causal_and_bimamba_is_not():
    torch.manual_seed(0)
    cfg = MambaConfig(d_model=16, d_state=8, headdim=8, chunk_size=8)
    u = torch.randn(1, 30, 16)
    v = u.clone()
    v[:, 20:] += 1.0  # change only the future
    m, bi = Mamba2(cfg), BiMamba(cfg)
    with torch.no_grad():
        assert torch.allclose(m(u)[:, :20], m(v)[:, :20], atol=1e-6)
        assert not torch.allclose(bi(u)[:, :20], bi(v)[:, :20], atol=1e-4)
    names = {n for n, _ in m.named_parameters()}
    assert names == {"in_proj.weight", "conv1d.weight", "conv1d.bias", "dt_bias", "A_log", "D", "norm.weight",
                     "out_proj.weight"}  # mamba_ssm.Mamba2's names, so checkpoints load on either path


def test_windowed_cross_attention_sees_only_its_window():
    torch.manual_seed(0)
    attn = WindowedCrossAttention(16, 2, window=3, dropout=0.0).eval()
    x, ctx = torch.randn(1, 40, 16), torch.randn(1, 40, 16)
    far = ctx.clone()
    far[:, 30:] += 5.0
    with torch.no_grad():
        base, moved = attn(x, ctx), attn(x, far)
        assert torch.allclose(base[:, :27], moved[:, :27], atol=1e-6)  # frames >3 away from 30 are unaffected
        assert not torch.allclose(base[:, 27:30], moved[:, 27:30], atol=1e-4)
        # equals dense attention with a band mask
        q = attn.q(x).view(1, 40, 2, 8).transpose(1, 2)
        k, v = attn.kv(ctx).chunk(2, -1)
        k, v = (t.view(1, 40, 2, 8).transpose(1, 2) for t in (k, v))
        i = torch.arange(40)
        band = (i[:, None] - i[None]).abs() <= 3
        dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=band)
        dense = attn.out(dense.transpose(1, 2).reshape(1, 40, 16))
        assert torch.allclose(base, dense, atol=1e-5)


def test_windowed_cross_attention_keeps_keys_only_for_the_same_unchanged_music():
    torch.manual_seed(0)
    attn = WindowedCrossAttention(16, 2, window=3, dropout=0.0).eval()
    fresh = WindowedCrossAttention(16, 2, window=3, dropout=0.0).eval()
    fresh.load_state_dict(attn.state_dict())
    x, ctx = torch.randn(1, 40, 16), torch.randn(1, 40, 16)
    with torch.no_grad():
        attn(x, ctx)
        assert len(attn._kv) == 1  # kept for the next step of the run
        ctx.add_(1.0)  # the same tensor changed in place: its keys are computed anew
        assert torch.allclose(attn(x, ctx), fresh(x, ctx), atol=1e-6)
        other = torch.randn(1, 40, 16)
        assert torch.allclose(attn(x, other), fresh(x, other), atol=1e-6)
        attn.forget_music()
        assert not attn._kv
    with torch.enable_grad():  # a graph is never kept across calls
        attn(x, ctx)
        assert not attn._kv


def test_a_sampling_run_lets_go_of_its_music_keys():
    model = Denoiser(dataclasses.replace(TINY, dropout=0.0)).eval()
    out = sample(model, torch.randn(60, TINY.music_dim), SampleOptions(steps=3))
    assert out.shape == (60, TINY.motion_dim)
    assert all(not block.cross._kv and block.cross._mask is None for block in model.blocks)
    with pytest.raises(Cancelled):
        sample(model, torch.randn(60, TINY.music_dim), SampleOptions(steps=3), callback=lambda i, n: i == 2)
    assert all(not block.cross._kv for block in model.blocks)


@pytest.mark.parametrize("arch", ["mamba", "transformer"])
def test_denoiser_runs_at_any_length(arch):
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(**{**TINY.to_dict(), "arch": arch})).eval()
    for length in (1, 17, 150, 401):
        x = torch.randn(2, length, 151)
        out = model(x, torch.tensor([3, 900]), torch.tensor([0.2, 1.0]), model.encode_music(torch.randn(2, length, 35)))
        assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="unknown arch"):
        Denoiser(DenoiserConfig(arch="rnn"))


def test_gft_prediction_mixes_with_a_stop_gradient():
    torch.manual_seed(0)
    model = Denoiser(TINY)
    x, music = torch.randn(6, 20, 151), torch.randn(6, 20, 35)
    t = torch.randint(0, 1000, (6,))
    pred, beta = gft_prediction(model, x, t, music, p_uncond=0.5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        drop = beta == 1.0
        cond = model(x, t, beta, model.encode_music(music, drop))
        unc = model(x, t, torch.ones(6), model.encode_music(music, torch.ones(6, dtype=torch.bool)))
        expected = beta[:, None, None] * cond + (1 - beta[:, None, None]) * unc
    assert torch.allclose(pred, expected, atol=1e-5)
    pred.sum().backward()  # the unconditional branch carries no graph: backward works through the first term only
    assert model.music.null.grad is not None


def test_style_alone_keeps_the_style_when_the_music_is_dropped():
    torch.manual_seed(0)
    model = Denoiser(dataclasses.replace(TINY, n_styles=4)).eval()
    torch.nn.init.normal_(model.music.style.weight)
    music_a, music_b = torch.randn(3, 20, 35), torch.randn(3, 20, 35)
    drop = torch.ones(3, dtype=torch.bool)
    style = torch.tensor([0, 2, 3])
    with torch.no_grad():
        enc_a = model.encode_music(music_a, drop, style)
        enc_b = model.encode_music(music_b, drop, style)
        null = model.music.null
        assert torch.equal(enc_a, enc_b)  # a dropped song leaves no trace
        assert torch.allclose(enc_a[0], null.expand(20, -1))  # auto + no music: the unconditional condition
        assert torch.allclose(enc_a[1], (null + model.music.style.weight[2]).expand(20, -1))
        assert not torch.allclose(enc_a[1], enc_a[2])  # two styles, two conditions
    # in GFT with every conditioned sample trained on its style alone, the prediction cannot depend on the music
    x, t = torch.randn(3, 20, 151), torch.randint(0, 1000, (3,))
    styles = torch.tensor([1, 2, 3])
    kw = dict(p_uncond=0.0, style=styles, p_style_alone=1.0)
    pa, beta_a = gft_prediction(model, x, t, music_a, generator=torch.Generator().manual_seed(3), **kw)
    pb, beta_b = gft_prediction(model, x, t, music_b, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(beta_a, beta_b) and torch.allclose(pa, pb, atol=1e-6)
    pc, _ = gft_prediction(model, x, t, music_b, generator=torch.Generator().manual_seed(3),
                           p_uncond=0.0, style=styles, p_style_alone=0.0)
    assert not torch.allclose(pa, pc, atol=1e-4)  # without it the music does count


def _toy_motion(frames=60, seed=0):
    rng = np.random.default_rng(seed)
    aa = rng.normal(size=(frames, 24, 3)) * 0.2
    trans = np.cumsum(rng.normal(size=(frames, 3)) * 0.01, 0) + [0.5, 0.9, -0.3]
    return Motion.from_axis_angle(aa, trans, contacts=rng.uniform(size=(frames, 4)))


def test_representation_round_trip_canonical_and_mirror():
    m = _toy_motion()
    back = features_to_motion(motion_to_features(m))
    assert np.allclose(back.joint_positions(), m.joint_positions(), atol=1e-5)
    c = canonicalize(m)
    assert abs(heading(c.matrices()[0, 0])) < 1e-6
    assert np.allclose(c.root_translation[0, [0, 2]], 0, atol=1e-6)
    # canonicalising is a rigid motion of the whole dance: distances between joints are unchanged
    d = lambda mm: np.linalg.norm(mm.joint_positions()[:, 20] - mm.joint_positions()[:, 7], axis=-1)  # noqa: E731
    assert np.allclose(d(c), d(m), atol=1e-5)
    mm = mirror(m)
    left_wrist = m.joint_positions()[:, 20]
    right_wrist_mirrored = mm.joint_positions()[:, 21]
    assert np.allclose(right_wrist_mirrored[:, 1], left_wrist[:, 1], atol=0.03)  # heights match across the mirror
    assert np.allclose(mirror(mm).joint_positions(), m.joint_positions(), atol=1e-4)


def _expert(seed=0):
    torch.manual_seed(seed)
    feats = [motion_to_features(_toy_motion(80, s)) for s in range(3)]
    norm = Normalizer.fit(feats, [np.random.default_rng(s).normal(size=(80, 35)) for s in range(3)])
    return MotionExpert(Denoiser(TINY).eval(), norm, {})


def _music(frames):
    rng = np.random.default_rng(0)
    return MusicFeatures(rng.normal(size=(frames, 35)).astype(np.float32), np.arange(0, frames, 15),
                         np.arange(0, frames, 15), 120.0, frames / 30)


def test_sampling_is_deterministic_and_reports_progress():
    expert = _expert()
    calls = []
    a = expert.generate(_music(50), SampleOptions(steps=5, seed=3), callback=lambda i, n: calls.append((i, n)))
    b = expert.generate(_music(50), SampleOptions(steps=5, seed=3))
    c = expert.generate(_music(50), SampleOptions(steps=5, seed=4))
    assert a.num_frames == 50 and a.fps == 30
    synced = expert.run(_music(50), SampleOptions(steps=5, seed=3), beat_sync=True)
    assert synced.beat_sync is not None and synced.motion.num_frames == 50  # same dance, retimed
    looped = expert.run(_music(50), SampleOptions(steps=5, seed=3, loop=10), beat_sync=True)
    assert looped.beat_sync is None  # retiming would bend the loop's seam
    assert np.array_equal(a.rotations, b.rotations)
    assert not np.allclose(a.rotations, c.rotations)
    assert calls == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    with pytest.raises(Cancelled, match="cancelled at step 2"):
        expert.generate(_music(50), SampleOptions(steps=5), callback=lambda i, n: i == 2)
    with pytest.raises(ValueError, match="beta must be in"):
        expert.generate(_music(50), SampleOptions(beta=0.0))


def test_masked_denoising_keeps_what_it_is_told():
    expert = _expert()
    ref = _toy_motion(60, seed=7)
    kept = np.r_[0:20, 45:60]
    constraint = combine(keep_frames(ref, kept, expert.normalizer), keep_joints(ref, ["left_knee"], expert.normalizer))
    run = expert.run(_music(60), SampleOptions(steps=4, seed=1), constraint, lock_feet=True, beat_sync=True)
    out = run.motion
    assert run.beat_sync is None and run.foot_lock is None  # clean-ups would move what the edit keeps
    assert np.abs(out.joint_positions()[kept] - ref.joint_positions()[kept]).max() < 1e-4
    assert np.abs(out.matrices()[:, 4] - ref.matrices()[:, 4]).max() < 1e-4  # left knee, every frame
    free = np.r_[20:45]
    assert np.abs(out.matrices()[free, 1] - ref.matrices()[free, 1]).max() > 1e-2  # the rest is generated
    path = np.stack([np.linspace(0, 2, 60), np.linspace(0, -1, 60)], 1)
    walked = expert.generate(_music(60), SampleOptions(steps=4), follow_path(path, expert.normalizer))
    assert np.abs(walked.root_translation[:, [0, 2]] - path).max() < 1e-4
    with pytest.raises(ValueError, match="unknown joints"):
        keep_joints(ref, ["tail"], expert.normalizer)
    with pytest.raises(ValueError, match="constraint must be"):
        sample(expert.model, torch.zeros(10, 35), SampleOptions(steps=2),
               Constraint(np.zeros((5, 151)), np.zeros((5, 151), bool)))


def test_losses_and_schedule():
    s = Schedule()
    assert float(s.ab(torch.tensor(-1))) == 1.0 and float(s.ab(torch.tensor(999))) < 1e-3
    expert = _expert()
    mean, std = (torch.tensor(v) for v in (expert.normalizer.motion_mean, expert.normalizer.motion_std))
    losses = MotionLosses(mean, std, LossWeights())
    x = torch.tensor(expert.normalizer.norm_motion(motion_to_features(_toy_motion(30))), dtype=torch.float32)[None]
    zero = losses(x, x)
    assert float(zero["loss"]) == pytest.approx(0.5 * float(zero["foot"]), abs=1e-6)  # only the skate term remains
    assert float(losses(x + 0.1, x)["fk"]) > 0


def test_v_prediction_passes_a_nearly_clean_input_through():
    torch.manual_seed(0)
    x0_model = Denoiser(TINY).eval()
    v_model = Denoiser(DenoiserConfig(**{**TINY.to_dict(), "prediction": "v"})).eval()
    v_model.load_state_dict(x0_model.state_dict())  # the same network: only what its last layer means differs
    assert "alphas_cumprod" not in v_model.state_dict()  # the schedule is not saved, so old folders load unchanged
    x = torch.randn(2, 24, TINY.motion_dim)
    music = torch.randn(2, 24, TINY.music_dim)
    ab = Schedule().alphas_cumprod
    with torch.no_grad():
        enc = x0_model.encode_music(music, None)
        for step in (0, 500, 999):
            t, beta = torch.full((2,), step), torch.ones(2)
            head = x0_model(x, t, beta, enc)
            got = v_model(x, t, beta, enc)
            assert torch.allclose(got, ab[step].sqrt() * x - (1 - ab[step]).sqrt() * head, atol=1e-5)
        # nearly clean: the input itself (an x0 head redraws it); pure noise: the head alone says the motion
        assert (v_model(x, torch.zeros(2, dtype=torch.long), beta, enc) - x).abs().max() < 0.05
        assert (x0_model(x, torch.zeros(2, dtype=torch.long), beta, enc) - x).abs().max() > 0.5
    with pytest.raises(ValueError, match="unknown prediction"):
        Denoiser(DenoiserConfig(**{**TINY.to_dict(), "prediction": "eps"}))
    with pytest.raises(ValueError, match="noisy skip is for an x0 head"):
        Denoiser(DenoiserConfig(**{**TINY.to_dict(), "prediction": "v", "noisy_skip": True}))


def test_noisy_skip_starts_as_the_source_model_and_adds_back_what_the_head_missed():
    torch.manual_seed(0)
    x0_model = Denoiser(TINY).eval()
    skip_model = Denoiser(DenoiserConfig(**{**TINY.to_dict(), "noisy_skip": True})).eval()
    missing, unexpected = skip_model.load_state_dict(x0_model.state_dict(), strict=False)
    assert set(missing) == {"skip.weight", "skip.bias"} and not unexpected
    x = torch.randn(2, 24, TINY.motion_dim)
    ab = Schedule().alphas_cumprod
    with torch.no_grad():
        enc = x0_model.encode_music(torch.randn(2, 24, TINY.music_dim), None)
        beta = torch.ones(2)
        for step in (0, 500, 999):
            t = torch.full((2,), step)
            assert torch.equal(skip_model(x, t, beta, enc), x0_model(x, t, beta, enc))  # gate zero: the source model
        skip_model.skip.bias.fill_(1.0)  # full gain on every channel
        for step in (0, 500):
            t = torch.full((2,), step)
            head = x0_model(x, t, beta, enc)
            missed = smooth_in_time(x - ab[step].sqrt() * head, SKIP_SIGMA)
            assert torch.allclose(skip_model(x, t, beta, enc), head + missed, atol=1e-5)
        # nearly clean: what the head missed comes back at a body's pace, its frame-to-frame zigzag (noise) does not
        # (the formula above with ab = 1: the low-passed difference itself)
        t0 = torch.zeros(2, dtype=torch.long)
        head = x0_model(x, t0, beta, enc)
        added, missed = skip_model(x, t0, beta, enc) - head, x - head
        zigzag = lambda d: float((d[:, 2:] - 2 * d[:, 1:-1] + d[:, :-2]).pow(2).sum() / d.pow(2).sum())  # noqa: E731
        assert zigzag(added) < 0.2 * zigzag(missed)


def test_snr_weights_lift_the_nearly_clean_steps_and_keep_the_noisy_ones():
    s = Schedule()
    t = torch.arange(0, 1000, 37)
    assert torch.equal(snr_weights(s, t, 0.0), torch.ones(len(t)))  # off: every noise level alike
    w = snr_weights(s, t, 5.0)
    ab = s.ab(t)
    snr = ab / (1 - ab)
    assert torch.all(w[snr >= 5] == 5.0) and torch.all(w[snr <= 1] == 1.0)  # capped, and never under today's weight
    middle = (snr > 1) & (snr < 5)
    assert middle.any() and torch.allclose(w[middle], snr[middle])
    assert torch.all(w[1:] <= w[:-1])  # the cleaner the step, the more it counts


def test_weighted_losses_scale_each_sample_share():
    expert = _expert()
    mean, std = (torch.tensor(v) for v in (expert.normalizer.motion_mean, expert.normalizer.motion_std))
    losses = MotionLosses(mean, std, LossWeights(rhythm=0.5))
    clean = torch.tensor(expert.normalizer.norm_motion(motion_to_features(_toy_motion(40))), dtype=torch.float32)
    target = torch.stack([clean, clean])
    rough = 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    pred = target + torch.stack([0.05 * torch.ones_like(clean), rough])
    plain, ones = losses(pred, target), losses(pred, target, torch.ones(2))
    for key in plain:
        assert float(ones[key]) == pytest.approx(float(plain[key]), rel=1e-5)
    # weight (2, 0): the batch mean is the first sample's loss alone; the second, far worse, does not count
    first = losses(pred[:1], target[:1])
    weighted = losses(pred, target, torch.tensor([2.0, 0.0]))
    for key in ("simple", "vel", "fk", "foot", "rhythm", "loss"):
        assert float(weighted[key]) == pytest.approx(float(first[key]), rel=1e-4), key
    assert float(plain["simple"]) > 2 * float(first["simple"])


def test_training_writes_a_loadable_resumable_model(tmp_path):
    from backend.motion.training import TrainConfig, train

    clips = [SimpleNamespace(motion=_toy_motion(90, s), music=_music(90)) for s in range(2)]
    cfg = TrainConfig(out=str(tmp_path / "run"), steps=3, batch=4, window=40, stride=20, log_every=1, ckpt_every=2,
                      warmup=1, model=TINY)
    folder = train(cfg, clips, progress=False)
    assert (folder / "model.safetensors").is_file() and (tmp_path / "run" / "loss.png").is_file()
    model, norm, record = load_model(folder)
    assert record["steps"] == 3
    cfg.steps = 5
    train(cfg, clips, progress=False)  # resumes from step 3
    assert load_model(folder)[2]["steps"] == 5
    expert = MotionExpert.load(folder)
    assert expert.generate(_music(33), SampleOptions(steps=2)).num_frames == 33
    with pytest.raises(ModelFolderError, match="not a model folder"):
        load_model(tmp_path / "nothing")
    # fine-tuning starts from the folder's weights and keeps its normaliser (lr 0: nothing moves)
    tune = TrainConfig(out=str(tmp_path / "tune"), steps=2, batch=4, window=60, stride=30, lr=0.0, warmup=1,
                       init=str(folder), model=TINY)
    tuned, tuned_norm, tuned_record = load_model(train(tune, clips, progress=False))
    assert tuned_record["init"] == str(folder)
    assert np.array_equal(tuned_norm.motion_mean, norm.motion_mean)
    source = load_model(folder)[0].state_dict()
    assert all(torch.equal(v, source[k]) for k, v in tuned.state_dict().items())
    # a style condition grows onto a model without one: a zero embedding, so the fine-tune starts from the source
    grow = TrainConfig(out=str(tmp_path / "grow"), steps=1, batch=4, window=60, stride=30, lr=0.0, warmup=1,
                       init=str(folder), model=DenoiserConfig(**{**TINY.to_dict(), "n_styles": 4, "style_film": True}))
    grown = load_model(train(grow, clips, progress=False))[0]
    assert grown.cfg.n_styles == 4 and grown.cfg.style_film
    assert not grown.music.style.weight.any() and not grown.style_film.weight.any()
    assert all(torch.equal(v, source[k]) for k, v in grown.state_dict().items() if k in source)
    # and it learns: the grown embeddings move from zero for the styles the data holds
    learn = TrainConfig(out=str(tmp_path / "learn"), steps=3, batch=4, window=60, stride=30, lr=1e-3, warmup=1,
                        init=str(folder), p_style_alone=0.5,
                        model=DenoiserConfig(**{**TINY.to_dict(), "n_styles": 4, "style_film": True}))
    styled = [SimpleNamespace(motion=c.motion, music=c.music, style=st) for c, st in zip(clips, ("waltz", "tango"))]
    learned = load_model(train(learn, styled, progress=False))[0]  # the EMA folder: read the raw weights instead
    state = torch.load(tmp_path / "learn" / "state.pt", weights_only=True)["model"]
    film = state["style_film.weight"]
    assert film[[STYLES.index("waltz"), STYLES.index("tango")]].abs().max() > 1e-3
    assert learned.cfg.style_film
    # an x0 model fine-tuned into a v model: same weights (lr 0), a v head, and its folder loads as one
    to_v = TrainConfig(out=str(tmp_path / "to_v"), steps=1, batch=4, window=60, stride=30, lr=0.0, warmup=1,
                       init=str(folder), prediction="v", model=TINY)
    v_model = load_model(train(to_v, clips, progress=False))[0]
    assert v_model.cfg.prediction == "v" and load_model(folder)[0].cfg.prediction == "x0"
    assert all(torch.equal(v, source[k]) for k, v in v_model.state_dict().items())
    # the noisy skip grows onto an x0 model at zero, so the fine-tune starts from the source model exactly
    to_skip = TrainConfig(out=str(tmp_path / "to_skip"), steps=1, batch=4, window=60, stride=30, lr=0.0, warmup=1,
                          init=str(folder), noisy_skip=True, model=TINY)
    skipped = load_model(train(to_skip, clips, progress=False))[0]
    assert skipped.cfg.noisy_skip and not skipped.skip.weight.any() and not skipped.skip.bias.any()
    assert all(torch.equal(v, source[k]) for k, v in skipped.state_dict().items() if k in source)
    with pytest.raises(ValueError, match="holds a mamba model"):
        train(TrainConfig(out=str(tmp_path / "wrong"), arch="transformer", steps=1, batch=2, window=60,
                          init=str(folder), model=DenoiserConfig(**TINY.to_dict())), clips, progress=False)
    save_model(tmp_path / "other", Denoiser(DenoiserConfig(**{**TINY.to_dict(), "d_model": 16, "headdim": 8})), norm)
    (tmp_path / "other" / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(ModelFolderError, match="do not match"):
        load_model(tmp_path / "other")


def test_loop_ties_the_end_to_the_start():
    expert = _expert()
    music = torch.tensor(expert.normalizer.norm_music(_music(60).features), dtype=torch.float32)
    ext = sample(expert.model, music, SampleOptions(steps=4, loop=10), return_extended=True)
    assert ext.shape[0] == 70
    rest = [c for c in range(151) if c not in (4, 6)]  # all but the root's x and z
    assert torch.allclose(ext[60:70, rest], ext[0:10, rest], atol=1e-6)  # frame 60 is frame 0 again
    drift = ext[60:70, [4, 6]] - ext[0:10, [4, 6]]
    assert torch.allclose(drift, drift[:1].expand_as(drift), atol=1e-5)  # root path: same shape, shifted
    plain = sample(expert.model, music, SampleOptions(steps=4))
    assert plain.shape[0] == 60
    with pytest.raises(ValueError, match="loop overlap"):
        SampleOptions(loop=-1).validate()


def test_a_ten_minute_song_in_one_pass():
    """Non-autoregressive: any length in one pass; windowed attention keeps memory linear (checked by running it)."""
    import resource

    expert = _expert()
    frames = 10 * 60 * 30
    rng = np.random.default_rng(0)
    music = MusicFeatures(rng.normal(size=(frames, 35)).astype(np.float32), np.arange(0, frames, 15),
                          np.arange(0, frames, 15), 120.0, frames / 30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = expert.generate(music, SampleOptions(steps=2))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert m.num_frames == frames and np.isfinite(m.joint_positions()).all()
    assert grown_mb < 2000  # a full 18000 x 18000 attention map alone would need 1.3 GB per head


def test_cfg_sampling_for_the_baseline():
    """Two-pass classifier-free guidance: at beta = 1 (scale 1) it is the plain conditional model."""
    expert = _expert()
    music = torch.tensor(expert.normalizer.norm_music(_music(40).features), dtype=torch.float32)
    one_pass = sample(expert.model, music, SampleOptions(steps=3, beta=1.0, guidance="gft"))
    two_pass = sample(expert.model, music, SampleOptions(steps=3, beta=1.0, guidance="cfg"))
    assert torch.allclose(one_pass, two_pass, atol=1e-5)
    guided = sample(expert.model, music, SampleOptions(steps=3, beta=0.4, guidance="cfg"))
    assert not torch.allclose(guided, two_pass, atol=1e-3)
    with pytest.raises(ValueError, match="guidance must be"):
        SampleOptions(guidance="xyz").validate()


def test_half_precision_shipping_round_trip(tmp_path):
    expert = _expert()
    save_model(tmp_path / "full", expert.model, expert.normalizer)
    save_model(tmp_path / "half", expert.model, expert.normalizer, half=True)
    full, half = load_model(tmp_path / "full")[0], load_model(tmp_path / "half")[0]
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "full" / "model.safetensors").stat().st_size
    assert all(p.dtype == torch.float32 for p in half.parameters())
    for a, b in zip(full.parameters(), half.parameters()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)


def _documented_kernel(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False):
    """mamba_ssm's mamba_chunk_scan_combined as its docstring specifies it, written as a loop (CPU stand-in)."""
    assert B.dim() == 4 and C.dim() == 4 and B.shape[2] == 1 and z is None  # (batch, seqlen, ngroups, dstate)
    dt = dt + dt_bias if dt_bias is not None else dt
    dt = torch.nn.functional.softplus(dt) if dt_softplus else dt
    h = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], B.shape[-1])
    out = []
    for t in range(x.shape[1]):
        h = torch.exp(dt[:, t] * A)[:, :, None, None] * h + (x[:, t] * dt[:, t, :, None])[..., None] * B[:, t, 0, None, None]
        out.append(torch.einsum("bhpn,bn->bhp", h, C[:, t, 0]) + x[:, t] * D[:, None])
    return torch.stack(out, 1)


def test_mamba_ssm_kernel_call_matches_the_pytorch_scan(monkeypatch):
    """The arguments handed to mamba_ssm's kernel mean the same scan as ours (checked on CPU with its documented
    semantics; the real kernel is compared on a GPU below)."""
    from backend.motion import mamba

    torch.manual_seed(0)
    m = Mamba2(MambaConfig(d_model=16, d_state=8, headdim=8, chunk_size=8)).double()
    u = torch.randn(2, 21, 16, dtype=torch.float64)
    with torch.no_grad():
        ours = m(u)
        monkeypatch.setattr(mamba, "SCAN_KERNEL", _documented_kernel)
        monkeypatch.setattr(mamba, "kernel_scan_used", lambda _: True)
        theirs = m(u)
    assert torch.allclose(ours, theirs, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mamba_ssm_kernel_agrees_on_gpu(monkeypatch):
    from backend.motion import mamba

    if mamba.SCAN_KERNEL is None:
        pytest.skip("mamba_ssm is not installed (pip install -e .[gpu])")
    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig()).cuda().eval()
    x, music = torch.randn(2, 400, 151, device="cuda"), torch.randn(2, 400, 35, device="cuda")
    t, beta = torch.tensor([10, 500], device="cuda"), torch.tensor([0.5, 1.0], device="cuda")
    with torch.no_grad():
        assert mamba.kernel_scan_used(x)
        fused = model(x, t, beta, model.encode_music(music))
        monkeypatch.setattr(mamba, "kernel_scan_used", lambda _: False)
        plain = model(x, t, beta, model.encode_music(music))
    assert torch.allclose(fused, plain, atol=2e-3, rtol=1e-3), (fused - plain).abs().max()


@pytest.mark.skipif(not (SHIPPED_ME / "model.safetensors").is_file(), reason="no shipped weights in weights/me")
def test_reconstruction_guidance_makes_the_model_reach_its_keyframes():
    from backend.music.demo import synthesize_demo
    from backend.music.features import extract_features

    song = synthesize_demo(seconds=6.0)
    music = extract_features(song.samples, song.sr)
    me = MotionExpert.load()
    ref = me.generate(music, SampleOptions(steps=20, seed=0))
    keys = np.arange(30, music.num_frames - 1, 30)  # lone kept frames, every second, from another dance
    constraint = keep_frames(ref, keys, me.normalizer)
    cond = torch.from_numpy(me.normalizer.norm_music(music.features).astype(np.float32))

    def spike(reconstruct: float) -> float:
        """How far the raw sampled frames beside each keyframe sit from it (normalised units, no seam smoothing)."""
        out = []
        for seed in (1, 2):
            x = sample(me.model, cond, SampleOptions(steps=20, seed=seed, reconstruct=reconstruct), constraint).numpy()
            assert np.abs(x[keys] - constraint.values[keys]).max() < 1e-5  # kept frames stay exact either way
            out.append(np.abs(x[keys - 1] + x[keys + 1] - 2 * x[keys]).mean())
        return float(np.mean(out))

    # replacement alone leaves the keyframe as a spike; guidance through the model makes the dance arrive at it
    assert spike(DEFAULT_RECONSTRUCT) < 0.6 * spike(0.0)
    with pytest.raises(ValueError, match="reconstruct"):
        SampleOptions(reconstruct=-1.0).validate()


def test_guidance_weights_pull_lone_kept_frames_harder():
    mask = np.zeros((30, 4), bool)
    mask[0:12] = True  # a long kept run: ordinary weight
    mask[15, 2] = True  # a keyframe (one channel is enough to count)
    mask[20:20 + LONE_RUN] = True  # the longest run still counted as lone
    mask[28:30, 1] = True  # a short run at the end
    w = guidance_weights(mask)
    assert np.all(w[0:12] == 1) and w[15] == LONE_GAIN and np.all(w[20:20 + LONE_RUN] == LONE_GAIN)
    assert np.all(w[28:30] == LONE_GAIN) and np.all(w[[12, 13, 14, 16, 19, 25, 27]] == 1)
    mask[20:21 + LONE_RUN] = True  # one frame longer: no longer lone
    assert np.all(guidance_weights(mask)[20:21 + LONE_RUN] == 1)



def _pelvis_steps(motion: Motion) -> np.ndarray:
    q = motion.rotations[:, 0].astype(np.float64)
    return np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], -1)), 0, 1)))


def test_pelvis_flips_are_repaired_in_the_clean_estimate():
    from backend.motion.pelvis_flips import MAX_DEG, PELVIS, PelvisFlipRepair, repairs_at

    expert = _expert()
    frames = 60
    aa = np.zeros((frames, 24, 3))
    aa[:, 0, 1] = np.where(np.arange(frames) < 30, 0.0, np.pi * 0.8)  # a 144-degree snap between frames 29 and 30
    aa[:, 5, 0] = 0.3  # a bent knee, which the repair must leave alone
    flipped = Motion.from_axis_angle(aa, np.tile([0.0, 0.9, 0.0], (frames, 1)))
    x0 = torch.from_numpy(expert.normalizer.norm_motion(motion_to_features(flipped)))[None]
    repair = PelvisFlipRepair(expert.normalizer)
    out = repair.project(x0)
    fixed = features_to_motion(expert.normalizer.denorm_motion(out[0].numpy()))
    assert _pelvis_steps(flipped).max() > 140 and _pelvis_steps(fixed).max() <= MAX_DEG + 1e-3
    assert abs(_pelvis_steps(fixed).sum() - 144) < 2  # the turn is kept, spread over frames
    assert torch.equal(out[..., :PELVIS.start], x0[..., :PELVIS.start])  # only the pelvis channels move
    assert torch.equal(out[..., PELVIS.stop:], x0[..., PELVIS.stop:])
    aa[:, 0, 1] = np.radians(10) * np.arange(frames)  # a steady turn at 300 deg/s is a dance, not a flip
    turning = Motion.from_axis_angle(aa, np.tile([0.0, 0.9, 0.0], (frames, 1)))
    calm = torch.from_numpy(expert.normalizer.norm_motion(motion_to_features(turning)))[None]
    assert repair.project(calm) is calm  # nothing to repair: the estimate passes through untouched
    keep = np.zeros(frames, bool)
    keep[:29] = True  # an edit keeps the frames up to the snap: they come back bit for bit
    kept_out = repair.project(x0, keep)
    assert torch.equal(kept_out[0, :29], x0[0, :29])
    assert _pelvis_steps(features_to_motion(expert.normalizer.denorm_motion(kept_out[0].numpy())))[29:].max() < 100
    # the early, blurry estimates are left to the network; the last third of the steps and always the last one repair
    assert [i for i in range(12) if repairs_at(i, 12)] == [8, 9, 10, 11]
    assert [i for i in range(2) if repairs_at(i, 2)] == [1]


def test_the_sampler_repairs_its_estimates_only_when_asked():
    from backend.motion.pelvis_flips import PelvisFlipRepair

    class Counting(PelvisFlipRepair):
        def __init__(self, normalizer):
            super().__init__(normalizer)
            self.calls = 0

        def project(self, x0, keep=None):
            self.calls += 1
            return super().project(x0, keep)

    expert = _expert()
    cond = torch.from_numpy(expert.normalizer.norm_music(_music(40).features).astype(np.float32))
    on, off = Counting(expert.normalizer), Counting(expert.normalizer)
    sample(expert.model, cond, SampleOptions(steps=6, seed=2), flip_repair=on)
    sample(expert.model, cond, SampleOptions(steps=6, seed=2, flip_repair=False), flip_repair=off)
    assert on.calls == 2 and off.calls == 0


def test_an_asked_style_picks_the_shipped_style_model():
    from backend.motion.checkpoint import SHIPPED_ME_STYLES, model_for

    assert model_for("auto") is None and model_for(None) is None  # the shipped default
    assert model_for("Waltz") == SHIPPED_ME_STYLES and model_for("tango") == SHIPPED_ME_STYLES
    assert model_for("waltz", SHIPPED_ME) == SHIPPED_ME  # a folder the user names is never swapped
    model, norm, record = load_model(SHIPPED_ME_STYLES)
    assert model.cfg.n_styles == 4 and model.cfg.style_film and record["styles"][1:] == list(STYLES[1:])
    base_norm = load_model(SHIPPED_ME)[1]
    assert np.array_equal(norm.motion_mean, base_norm.motion_mean)  # fine-tuned from it: the same feature space


def test_the_last_clean_estimate_is_low_passed_but_not_the_contacts():
    expert = _expert()
    cond = torch.from_numpy(expert.normalizer.norm_music(_music(90).features).astype(np.float32))
    raw = sample(expert.model, cond, SampleOptions(steps=4, seed=5, cutoff=0.0))
    smooth = sample(expert.model, cond, SampleOptions(steps=4, seed=5))  # the product's cutoff
    assert SampleOptions().cutoff == DEFAULT_CUTOFF > 0

    def jitter(x):  # share of frame-to-frame change power above 8 Hz (an untrained model's output is mostly that)
        v = torch.diff(x[10:-10, 4:], dim=0)  # inner frames: the filter leaves each end frame about where it was
        p = torch.fft.rfft(v - v.mean(dim=0), dim=0).abs().pow(2).sum(dim=1)
        return float(p[torch.fft.rfftfreq(v.shape[0], 1 / 30) >= 8].sum() / p.sum())

    assert jitter(raw) > 0.2 and jitter(smooth) < 0.01
    assert torch.equal(raw[:, :4], smooth[:, :4])  # contacts are on/off labels, not motion
    with pytest.raises(ValueError, match="cutoff must be >= 0"):
        sample(expert.model, cond, SampleOptions(cutoff=-1.0))
