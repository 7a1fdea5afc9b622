"""The Appearance Expert on a tiny random Wan-Animate pipeline built here (the real 14B loads the same way)."""

import json

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the 'ae' extra is not installed (scripts/test installs it)")

from PIL import Image  # noqa: E402

from backend.appearance.pipeline import AppearanceExpert, AppearanceModelError, VideoOptions, check_model_folder  # noqa: E402
from rigs.motion import Motion  # noqa: E402

TINY = VideoOptions(width=16, height=16, segment_frames=9, prev_frames=1, steps=2)


@pytest.fixture(scope="module")
def expert():
    return AppearanceExpert.tiny()


def dance(frames=30):
    rng = np.random.default_rng(0)
    return Motion.from_axis_angle(rng.normal(size=(frames, 24, 3)) * 0.2, np.tile([0.0, 0.95, 0.0], (frames, 1)))


def reference():
    return Image.fromarray((np.random.default_rng(1).uniform(size=(16, 16, 3)) * 255).astype(np.uint8))


def test_segments_are_anchored_on_the_previous_segments_frames(expert, monkeypatch):
    pipe = expert.pipe
    seen = []
    original = pipe.prepare_prev_segment_cond_latents

    def spy(prev_segment_cond_video=None, *args, **kwargs):
        seen.append(None if prev_segment_cond_video is None else prev_segment_cond_video.detach().float().clone())
        return original(prev_segment_cond_video, *args, **kwargs)

    monkeypatch.setattr(pipe, "prepare_prev_segment_cond_latents", spy)
    result = expert.render(dance(30), reference(), options=VideoOptions(**{**TINY.__dict__, "colour_correction": False}))
    assert result.frames.shape == (30, 16, 16, 3)  # exactly one frame per motion frame
    assert result.seams == [9, 17, 25] and len(seen) == 4 and seen[0] is None
    for k, seam in enumerate(result.seams, start=1):
        cond = ((seen[k][0, :, -1].permute(1, 2, 0).numpy() + 1) / 2 * 255)  # (H, W, 3) the frame passed in
        assert np.abs(cond - result.frames[seam - 1].astype(np.float32)).max() <= 1.0  # = the previous output frame


def test_colour_correction_reduces_seam_drift(expert):
    result = expert.render(dance(30), reference(), options=TINY)
    assert result.seam_drift_after < result.seam_drift_before
    assert result.frames.dtype == np.uint8


def test_cancel_stops_the_pipeline(expert):
    from backend.motion.sampling import Cancelled

    full = []
    expert.render(dance(9), reference(), options=TINY, callback=lambda i, n: full.append(i) and None)
    assert full == [0, 1]
    calls = []
    with pytest.raises(Cancelled, match="video cancelled at step 0"):
        expert.render(dance(9), reference(), options=TINY, callback=lambda i, n: calls.append(i) or True)
    assert calls == [0]  # the second step never ran


def test_model_folder_errors(tmp_path):
    with pytest.raises(AppearanceModelError, match="no such folder"):
        check_model_folder(tmp_path / "nope")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanAnimatePipeline"}))
    (tmp_path / "vae").mkdir()
    with pytest.raises(AppearanceModelError, match="missing transformer, text_encoder"):
        check_model_folder(tmp_path)
    with pytest.raises(AppearanceModelError, match="incomplete"):
        AppearanceExpert.from_folder(tmp_path)


def test_video_command_writes_frames_and_an_mp4_with_the_song(tmp_path):
    import subprocess
    import sys

    import imageio_ffmpeg

    from backend.music.demo import write_demo_wav

    dance(12).save_npz(tmp_path / "dance.npz")
    reference().save(tmp_path / "ref.png")
    write_demo_wav(tmp_path / "song.wav", seconds=2.0)
    res = subprocess.run([sys.executable, "-m", "backend.cli", "video", str(tmp_path / "dance.npz"),
                          str(tmp_path / "ref.png"), "--tiny", "--width", "16", "--height", "16", "--steps", "2",
                          "--audio", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(list((tmp_path / "out" / "frames").glob("frame_*.png"))) == 12
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(tmp_path / "out" / "video.mp4")],
                           capture_output=True, text=True).stderr
    assert "Video: h264" in probe and "Audio: aac" in probe
    bad = subprocess.run([sys.executable, "-m", "backend.cli", "video", str(tmp_path / "dance.npz"),
                          str(tmp_path / "ref.png"), "--model-dir", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no such folder" in bad.stderr and "Traceback" not in bad.stderr


def _recorded_inputs(expert):
    """The transformer inputs of one real pipeline call (shapes exactly as the pipeline builds them)."""
    calls = []
    t = expert.pipe.transformer
    original = t.forward

    def spy(*args, **kwargs):
        if not calls:
            calls.append({k: (v.detach().clone() if hasattr(v, "detach") else v) for k, v in kwargs.items()})
        return original(*args, **kwargs)

    t.forward = spy
    try:
        expert.render(dance(9), reference(), options=TINY)
    finally:
        t.forward = original
    inputs = {k: v for k, v in calls[0].items() if k not in ("return_dict", "attention_kwargs")}
    return inputs


@pytest.mark.parametrize("stage", [1, 2])
def test_fine_tuning_stages_train_only_their_parameters(stage):
    import torch

    from backend.appearance.finetune import (expected_lora_targets, lora_wrapped_modules, prepare_stage,
                                             training_step)

    expert = AppearanceExpert.tiny(seed=3)
    inputs = _recorded_inputs(expert)
    t = expert.pipe.transformer
    trainable = prepare_stage(t, stage, rank=4)
    if stage == 1:
        assert trainable and all(n.startswith("pose_patch_embedding.") for n in trainable)
    else:
        wrapped = lora_wrapped_modules(t)
        assert wrapped == expected_lora_targets(t) and len(wrapped) == 2 * (8 + 2)  # 2 blocks x (8 attn + 2 ffn)
        assert not any(n.startswith("face_adapter") for n in wrapped)  # the regex spares face_adapter.*.to_q
        assert all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in t.named_parameters()}
    with torch.no_grad():
        target = torch.randn_like(t(**inputs, return_dict=False)[0])
    opt = torch.optim.AdamW([p for p in t.parameters() if p.requires_grad], lr=1e-2)
    training_step(t, inputs, target, opt)
    training_step(t, inputs, target, opt)
    changed = {n for n, p in t.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= set(trainable)


def test_fine_tuning_on_clips_lowers_the_loss_and_saves_only_what_trained(tmp_path):
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    from backend.appearance.training import load_clips, segment_inputs, synthetic_clip_folder, train_ae

    root = synthetic_clip_folder(tmp_path / "data", frames=9, size=16)
    clips = load_clips(root, 16, 16, 9)
    assert len(clips) == 1 and len(clips[0].poses) == 9
    expert = AppearanceExpert.tiny(seed=1)
    gen = torch.Generator().manual_seed(0)
    inputs, x0 = segment_inputs(expert.pipe, clips[0], 16, 16, gen)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))

    def fixed_loss():
        with torch.no_grad():
            kwargs = {k: v for k, v in inputs.items() if k != "reference_latents"}
            x_s = 0.5 * x0 + 0.5 * noise
            kwargs["hidden_states"] = torch.cat([x_s, inputs["reference_latents"].float()], dim=1)
            kwargs["timestep"] = torch.tensor([500.0])
            pred = expert.pipe.transformer(**kwargs, return_dict=False)[0]
            return float(torch.nn.functional.mse_loss(pred, noise - x0))

    before = fixed_loss()
    train_ae(expert.pipe, clips, 2, 30, tmp_path / "out", lr=5e-3, rank=4, width=16, height=16, log=lambda _: None)
    assert fixed_loss() < before  # it learns this clip
    lora = load_file(str(tmp_path / "out" / "stage2.safetensors"))
    assert lora and all("lora" in k and k.startswith("blocks.") for k in lora)
    res = subprocess.run([sys.executable, "-m", "backend.cli", "train-ae", "--stage", "1", "--data", str(root),
                          "--tiny", "--steps", "3", "--width", "16", "--height", "16", "--segment", "9", "-o",
                          str(tmp_path / "s1")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    pose_only = load_file(str(tmp_path / "s1" / "stage1.safetensors"))
    assert pose_only and all(k.startswith("pose_patch_embedding.") for k in pose_only)


@pytest.mark.parametrize("name", ["fsdp_wan14b.yaml", "deepspeed_zero3_wan14b.yaml"])
def test_multi_gpu_configs_are_valid_for_accelerate(name):
    """The documented 14B configs load in accelerate, use only options its launcher knows, and wrap real classes."""
    from pathlib import Path

    pytest.importorskip("accelerate", reason="the 'train' extra is not installed")
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser
    from diffusers.models.transformers import transformer_wan_animate

    path = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / name
    config = load_config_from_file(str(path))  # raises on keys accelerate does not know
    known = {a.dest for a in launch_command_parser()._actions}
    options = {**config.fsdp_config, **config.deepspeed_config}
    assert options and set(options) <= known, set(options) - known
    assert config.mixed_precision == "bf16" and config.num_processes == 8
    wrapped = config.fsdp_config.get("fsdp_transformer_layer_cls_to_wrap")
    if wrapped:
        for cls in wrapped.split(","):
            assert hasattr(transformer_wan_animate, cls), cls
        assert config.fsdp_config["fsdp_use_orig_params"]  # frozen and trained weights share wrapped units


def test_sizes_the_pipeline_cannot_take_are_refused_in_one_sentence(expert):
    from backend.appearance.sizes import PipelineLimits, VideoSizeError, check_video_size

    small = PipelineLimits(positions=32)
    check_video_size(480, 512, 77, 1, small)  # 32 patch rows, 21 latent frames: fits exactly
    for args, words in [((500, 832, 77, 1), "width 500 is not a multiple of 16: use 496 or 512"),
                        ((480, 830, 77, 1), "height 830 is not a multiple of 16"),
                        ((480, 832, 76, 1), "must be 4N+1"),
                        ((480, 832, 77, 77), "carried over"),
                        ((480, 832, 77, 1), "needs 52 patch positions but the model's position table has 32"),
                        ((480, 512, 129, 1), "129 frames per segment need 34 latent positions")]:
        with pytest.raises(VideoSizeError) as err:
            check_video_size(*args, small)
        message = str(err.value).replace(" (the VAE's 8x downsampling times the transformer's patch)", "")
        assert words in message and "\n" not in message
    # the pipeline refuses before it encodes anything: the transformer is never called
    calls = []
    expert.pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    with pytest.raises(VideoSizeError, match="needs 52 patch positions"):
        expert.render(dance(5), reference(), options=VideoOptions(width=480, height=832, segment_frames=5, steps=1))
    assert not calls


def test_dry_run_at_the_default_video_size_writes_a_playable_mp4(tmp_path):
    """`video --tiny` with the default 480x832 and 77-frame segments (the README's dry run), on a 6-frame dance."""
    import subprocess
    import sys
    import time

    import imageio_ffmpeg

    dance(6).save_npz(tmp_path / "dance.npz")
    Image.fromarray((np.random.default_rng(2).uniform(size=(448, 256, 3)) * 255).astype(np.uint8)).save(
        tmp_path / "ref.png")
    res = subprocess.run([sys.executable, "-m", "backend.cli", "video", str(tmp_path / "dance.npz"),
                          str(tmp_path / "ref.png"), "--tiny", "--steps", "1", "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "torchvision" not in res.stderr + res.stdout  # the processor is chosen explicitly: no warning
    frames = sorted((tmp_path / "out" / "frames").glob("frame_*.png"))
    assert len(frames) == 6 and Image.open(frames[0]).size == (480, 832)
    n, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp_path / "out" / "video.mp4"))
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(tmp_path / "out" / "video.mp4")],
                           capture_output=True, text=True).stderr
    assert n == 6 and "480x832" in probe and "Video: h264" in probe
    t0 = time.perf_counter()
    bad = subprocess.run([sys.executable, "-m", "backend.cli", "video", str(tmp_path / "dance.npz"),
                          str(tmp_path / "ref.png"), "--tiny", "--width", "500"], capture_output=True, text=True,
                         timeout=120)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "width 500 is not a multiple of 16" in lines[0], bad.stderr
    assert not (tmp_path / "out2").exists() and time.perf_counter() - t0 < 60
