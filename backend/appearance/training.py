"""Fine-tuning the Appearance Expert on video clips (Stage I pose adapter, Stage II LoRA), with accelerate.

A training example is one segment of a real video: its frames, the pose frames that drive it (projected from SMPL by
our projector, or drawn from 2D keypoints), the face crops and the reference image. The transformer inputs are built
with the pipeline's own helpers, exactly as inference builds them, so what is trained is what runs: the reference
latent frame followed by the segment's latent frames, noised on the flow-matching path x_s = (1 - s) x0 + s e, with
the velocity e - x0 as the target (Wan's FlowMatchEuler parameterisation, timestep = 1000 s).

Dataset layout (one folder per clip): frames/*.png (the video), poses/*.png (pose frames, same count) or motion.npz
(an SMPL Motion, projected with the frontal camera), reference.png (optional; the first frame otherwise).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.appearance.finetune import prepare_stage, training_step
from backend.appearance.pipeline import face_crops


@dataclass
class Clip:
    """One training segment (PIL images)."""

    frames: list
    poses: list
    reference: object


def load_clips(root: Path, width: int, height: int, segment: int) -> list[Clip]:
    """Clips under `root`, cut into segments of `segment` frames (4N+1)."""
    from PIL import Image

    from backend.appearance.projector import Camera, draw_pose_frames, project_motion
    from rigs.motion import Motion

    clips = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        frame_files = sorted((folder / "frames").glob("*.png"))
        if not frame_files:
            raise ValueError(f"{folder}: no frames/*.png")
        frames = [Image.open(f).convert("RGB").resize((width, height)) for f in frame_files]
        if (folder / "poses").is_dir():
            poses = [Image.open(f).convert("RGB").resize((width, height))
                     for f in sorted((folder / "poses").glob("*.png"))]
        elif (folder / "motion.npz").is_file():
            motion = Motion.load_npz(folder / "motion.npz")
            uv, vis = project_motion(motion, Camera.frontal(width, height))
            poses = [Image.fromarray(f) for f in draw_pose_frames(uv, vis, width, height)]
        else:
            raise ValueError(f"{folder}: needs poses/*.png or motion.npz")
        if len(poses) != len(frames):
            raise ValueError(f"{folder}: {len(frames)} frames but {len(poses)} poses")
        ref_file = folder / "reference.png"
        reference = Image.open(ref_file).convert("RGB") if ref_file.is_file() else frames[0]
        for start in range(0, len(frames) - segment + 1, segment - 1):
            clips.append(Clip(frames[start:start + segment], poses[start:start + segment], reference))
    if not clips:
        raise ValueError(f"{root}: no clip has {segment} frames")
    return clips


def segment_inputs(pipe, clip: Clip, width: int, height: int, generator: torch.Generator,
                   prompt: str = "a person dancing") -> tuple[dict, torch.Tensor]:
    """Transformer inputs (without the noisy latents) and the clean latents x0 of one segment."""
    device = pipe.transformer.device
    seg = len(clip.frames)
    size = int(pipe.transformer.config.motion_encoder_size)
    with torch.no_grad():
        prompt_embeds, _ = pipe.encode_prompt(prompt=prompt, negative_prompt=None, do_classifier_free_guidance=False,
                                              max_sequence_length=16, device=device)
        image_pixels = pipe.vae_image_processor.preprocess(clip.reference, height=height, width=width,
                                                           resize_mode="fill").to(device, dtype=torch.float32)
        image_embeds = pipe.encode_image(clip.reference, device)
        pose = pipe.video_processor.preprocess_video(clip.poses, height=height, width=width).to(device)
        face = pipe.video_processor.preprocess_video(face_crops(clip.reference, size, seg), height=size,
                                                     width=size).to(device)
        video = pipe.video_processor.preprocess_video(clip.frames, height=height, width=width).to(device)
        ref_latents = pipe.prepare_reference_image_latents(image_pixels, 1, generator=generator, device=device)
        pose_latents = pipe.prepare_pose_latents(pose, 1, generator=generator, device=device)
        prev = pipe.prepare_prev_segment_cond_latents(None, batch_size=1, segment_frame_length=seg, start_frame=0,
                                                      height=height, width=width, prev_segment_cond_frames=1,
                                                      task="animate", generator=generator, device=device)
        # the video's own latents, standardised exactly like the pose latents (same helper, same VAE), after the
        # reference frame's latents (its first z_dim channels; the rest of the reference latents are mask channels)
        z = int(pipe.vae.config.z_dim)
        video_latents = pipe.prepare_pose_latents(video, 1, generator=generator, device=device)
        x0 = torch.cat([ref_latents[:, :z], video_latents], dim=2)
    dtype = pipe.transformer.dtype
    inputs = {"encoder_hidden_states": prompt_embeds.to(dtype), "encoder_hidden_states_image": image_embeds.to(dtype),
              "pose_hidden_states": pose_latents.to(dtype), "face_pixel_values": face.to(dtype),
              "reference_latents": torch.cat([ref_latents, prev], dim=2).to(dtype)}
    return inputs, x0


def noisy_step_inputs(inputs: dict, x0: torch.Tensor, generator: torch.Generator) -> tuple[dict, torch.Tensor]:
    """Noise x0 to a random flow-matching time; returns the transformer kwargs and the velocity target."""
    sigma = torch.rand(1, generator=generator).item()
    noise = torch.randn(x0.shape, generator=generator)
    x_s = (1 - sigma) * x0 + sigma * noise
    kwargs = {k: v for k, v in inputs.items() if k != "reference_latents"}
    kwargs["hidden_states"] = torch.cat([x_s, inputs["reference_latents"].float()], dim=1).to(x0.dtype)
    kwargs["timestep"] = torch.tensor([sigma * 1000.0])
    return kwargs, noise - x0


def train_ae(pipe, clips: list[Clip], stage: int, steps: int, out: Path, lr: float = 1e-4, rank: int = 16,
             width: int = 480, height: int = 832, seed: int = 0, log=print) -> Path:
    """Fine-tune the transformer for `steps` optimiser steps; saves the trained weights (safetensors) in `out`."""
    from accelerate import Accelerator
    from safetensors.torch import save_file

    # Launched with `accelerate launch --config_file configs/accelerate/<fsdp|deepspeed>...yaml`, the same code runs
    # sharded over GPUs; alone it is a single process.
    accelerator = Accelerator()
    transformer = pipe.transformer
    trainable = prepare_stage(transformer, stage, rank=rank)
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    transformer, optimizer = accelerator.prepare(transformer, optimizer)
    device = accelerator.device
    gen = torch.Generator().manual_seed(seed + accelerator.process_index)  # a different noise stream per rank
    prepared = [segment_inputs(pipe, c, width, height, gen) for c in clips]
    history = []
    for step in range(steps):
        # each rank takes its own clip of the step, so N GPUs see N clips per optimiser step
        inputs, x0 = prepared[(step * accelerator.num_processes + accelerator.process_index) % len(prepared)]
        kwargs, target = noisy_step_inputs(inputs, x0, gen)
        kwargs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kwargs.items()}
        history.append(training_step(transformer, kwargs, target.to(device), optimizer, accelerator.backward))
        if accelerator.is_main_process and (step % 10 == 0 or step == steps - 1):
            log(f"stage {stage} step {step + 1}/{steps} loss {history[-1]:.4f}")
    # the full (gathered) state: under FSDP / ZeRO-3 each rank holds only a shard of every parameter
    full_state = accelerator.get_state_dict(transformer)
    if not accelerator.is_main_process:
        return out / f"stage{stage}.safetensors"
    out.mkdir(parents=True, exist_ok=True)
    model = accelerator.unwrap_model(transformer)
    if stage == 2:
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(model, state_dict=full_state)
    else:
        state = {n: v for n, v in full_state.items() if n in set(trainable)}
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(out / f"stage{stage}.safetensors"))
    (out / f"stage{stage}.json").write_text(json.dumps({"stage": stage, "steps": steps, "lr": lr, "rank": rank,
                                                         "losses": history, "trainable": len(trainable),
                                                         "processes": accelerator.num_processes}))
    return out / f"stage{stage}.safetensors"


def synthetic_clip_folder(root: Path, frames: int = 9, size: int = 16) -> Path:
    """A tiny dataset folder (moving blocks driven by a random dance) for dry runs and tests."""
    from PIL import Image

    from rigs.motion import Motion

    rng = np.random.default_rng(0)
    clip = root / "clip0"
    (clip / "frames").mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        img = np.zeros((size, size, 3), np.uint8)
        img[:, : (i % size) + 1] = (200, 120, 60)
        Image.fromarray(img).save(clip / "frames" / f"{i:05d}.png")
    Motion.from_axis_angle(rng.normal(size=(frames, 24, 3)) * 0.2,
                           np.tile([0.0, 0.95, 0.0], (frames, 1))).save_npz(clip / "motion.npz")
    return root
