"""The two fine-tuning stages of the Appearance Expert (the paper's decoupled kinematic-aesthetic strategy).

Stage I (kinematic): a body adapter on the pose conditioning. Only the pose path of WanAnimateTransformer3DModel
trains: `pose_patch_embedding`, the layer that turns pose-video latents into the tokens added to the video tokens.
Everything else (DiT blocks, face encoder/adapter, motion encoder, text/image embedders) stays frozen.
Stage II (aesthetic): LoRA (peft) on the DiT blocks' attention Q/K/V/out and FFN projections:
`blocks.N.attn1|attn2.{to_q,to_k,to_v,to_out.0}` and `blocks.N.ffn.net.0.proj`, `blocks.N.ffn.net.2`. Plain suffixes
such as "to_q" would also catch `face_adapter.N.to_q`, so the targets are one regex anchored on `blocks\\.\\d+\\.`.
"""

from __future__ import annotations

import re

import torch

STAGE1_TRAINABLE = ("pose_patch_embedding",)
LORA_TARGETS = r"blocks\.\d+\.(attn1|attn2)\.(to_q|to_k|to_v|to_out\.0)|blocks\.\d+\.ffn\.net\.(0\.proj|2)"


def prepare_stage(transformer, stage: int, rank: int = 16, alpha: int | None = None) -> list[str]:
    """Freeze/unfreeze (and for stage 2 add LoRA) in place; returns the names of the trainable parameters."""
    for p in transformer.parameters():
        p.requires_grad_(False)
    if stage == 1:
        for name, p in transformer.named_parameters():
            if name.split(".")[0] in STAGE1_TRAINABLE:
                p.requires_grad_(True)
    elif stage == 2:
        from peft import LoraConfig

        config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=LORA_TARGETS, init_lora_weights=True)
        transformer.add_adapter(config)  # diffusers' PEFT integration: only the LoRA matrices require grad
    else:
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    return [n for n, p in transformer.named_parameters() if p.requires_grad]


def lora_wrapped_modules(transformer) -> list[str]:
    """Names of the modules that carry LoRA layers."""
    return sorted(n for n, m in transformer.named_modules() if hasattr(m, "lora_A") and len(getattr(m, "lora_A")))


def expected_lora_targets(transformer) -> list[str]:
    """The module names LORA_TARGETS should wrap (for checks)."""
    pattern = re.compile(LORA_TARGETS)
    return sorted(n for n, _ in transformer.named_modules() if pattern.fullmatch(n))


def training_step(transformer, inputs: dict, target: torch.Tensor, optimizer: torch.optim.Optimizer,
                  backward=None) -> float:
    """One optimiser step of MSE between the transformer's prediction and `target` (the flow-matching velocity).

    `backward` is accelerate's `Accelerator.backward` under DeepSpeed/FSDP/mixed precision (it scales and
    reduces the loss as the backend needs); plain `loss.backward()` otherwise.
    """
    transformer.train()
    pred = transformer(**inputs, return_dict=False)[0]
    loss = torch.nn.functional.mse_loss(pred.float(), target.float())
    optimizer.zero_grad(set_to_none=True)
    (backward or torch.Tensor.backward)(loss)
    optimizer.step()
    return float(loss.detach())
