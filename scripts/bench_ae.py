#!/usr/bin/env python
"""Appearance Expert benchmark: the chunk relay on a tiny random pipeline (CPU), and the real-size transformer (GPU).

CPU: a dance rendered end to end (projection, pose drawing, the diffusers WanAnimatePipeline, colour correction) with the
chunk relay, against the same frames rendered as ONE segment in the same run: the ratio is what the relay costs
(overlapping conditioning frames, per-segment encoding). The tiny config is diffusers' test size, so absolute seconds
mean little; the ratio and per-chunk cost are the figures.
GPU (when CUDA is present, or --real): WanAnimateTransformer3DModel at its 14B default size with random bf16 weights,
one denoising step for one 480p segment (77 frames -> 20 latent frames + the reference, 832x480 -> 104x60 latents,
512 text tokens, 257 CLIP tokens, 512x512 face crops): seconds per step and peak GPU memory, with a 33-frame segment as
the same-run baseline.
`--quick` (CPU only, under a minute) ends with `ae_tiny_chunk_s=<seconds per chunk> chunks=<n>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def tiny_relay(frames: int, segment: int, steps: int) -> dict:
    """Render `frames` frames in `segment`-frame chunks and as one segment; times and seam drift."""
    from PIL import Image

    from backend.appearance.pipeline import AppearanceExpert, VideoOptions
    from rigs.motion import Motion

    rng = np.random.default_rng(0)
    motion = Motion.from_axis_angle(rng.normal(size=(frames, 24, 3)) * 0.2, np.tile([0.0, 0.95, 0.0], (frames, 1)))
    ref = Image.fromarray((rng.uniform(size=(16, 16, 3)) * 255).astype(np.uint8))
    expert = AppearanceExpert.tiny()
    expert.render(motion.slice(0, min(frames, 9)), ref, options=VideoOptions(16, 16, 9, 1, steps=1))  # warm-up
    rows = {}
    whole = frames if (frames - 1) % 4 == 0 else frames + (4 - (frames - 1) % 4)
    for name, seg in (("relay", segment), ("one segment", whole)):
        t0 = time.perf_counter()
        result = expert.render(motion, ref, options=VideoOptions(16, 16, seg, 1, steps=steps))
        wall = time.perf_counter() - t0
        rows[name] = {"wall": wall, "chunks": len(result.seams) + 1, "frames": len(result.frames),
                      "drift_before": result.seam_drift_before, "drift_after": result.seam_drift_after}
    return rows


def real_size_step(frames: int, width: int, height: int, repeats: int) -> dict:
    """Seconds per denoising step and peak memory of the 14B transformer on one segment (random bf16 weights)."""
    import torch
    from diffusers import WanAnimateTransformer3DModel

    dev = torch.device("cuda")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # build the 14B directly in bf16 on the GPU (no 56 GB fp32 copy)
    try:
        with dev:
            model = WanAnimateTransformer3DModel().eval()
    finally:
        torch.set_default_dtype(default)
    cfg = model.config
    lat_t, lat_h, lat_w = (frames - 1) // 4 + 1, height // 8, width // 8
    inputs = {
        "hidden_states": torch.randn(1, cfg.in_channels, lat_t + 1, lat_h, lat_w, device=dev, dtype=torch.bfloat16),
        "timestep": torch.tensor([500], device=dev),
        "encoder_hidden_states": torch.randn(1, 512, cfg.text_dim, device=dev, dtype=torch.bfloat16),
        "encoder_hidden_states_image": torch.randn(1, 257, cfg.image_dim, device=dev, dtype=torch.bfloat16),
        "pose_hidden_states": torch.randn(1, cfg.latent_channels, lat_t, lat_h, lat_w, device=dev,
                                          dtype=torch.bfloat16),
        "face_pixel_values": torch.randn(1, 3, frames, cfg.motion_encoder_size, cfg.motion_encoder_size, device=dev,
                                         dtype=torch.bfloat16),
    }
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model(**inputs, return_dict=False)  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(**inputs, return_dict=False)
        torch.cuda.synchronize()
    step = (time.perf_counter() - t0) / repeats
    params = sum(p.numel() for p in model.parameters()) / 1e9
    peak = torch.cuda.max_memory_allocated() / 2**30
    del model, inputs
    torch.cuda.empty_cache()
    return {"frames": frames, "step_s": step, "peak_gib": peak, "params_b": params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU tiny relay only, under a minute")
    ap.add_argument("--frames", type=int, default=None, help="dance frames for the tiny relay (default 81, quick 41)")
    ap.add_argument("--segment", type=int, default=9, help="tiny relay segment length (4N+1)")
    ap.add_argument("--steps", type=int, default=4, help="denoising steps for the tiny relay")
    ap.add_argument("--real", action="store_true", help="time the real-size transformer (needs a CUDA GPU)")
    args = ap.parse_args()
    import torch

    frames = args.frames or (41 if args.quick else 81)
    rows = tiny_relay(frames, args.segment, args.steps)
    print(f"tiny WanAnimatePipeline on CPU, {frames} frames at 16x16, {args.steps} steps")
    print(f"{'render':>12} {'chunks':>7} {'wall s':>8} {'s/chunk':>8} {'seam step before/after':>24}")
    for name, r in rows.items():
        print(f"{name:>12} {r['chunks']:>7d} {r['wall']:>8.2f} {r['wall'] / r['chunks']:>8.2f} "
              f"{r['drift_before']:>11.1f} / {r['drift_after']:<10.1f}")
    relay, single = rows["relay"], rows["one segment"]
    print(f"relay cost: {relay['wall'] / single['wall']:.2f}x the one-segment render of the same frames")

    if not args.quick and (args.real or torch.cuda.is_available()):
        if not torch.cuda.is_available():
            print("real-size timing skipped: no CUDA GPU here")
        else:
            print(f"real-size WanAnimateTransformer3DModel (random bf16 weights) on {torch.cuda.get_device_name()}")
            print(f"{'frames':>7} {'s/step':>8} {'peak GiB':>9} {'params (B)':>11}")
            res = [real_size_step(n, 480, 832, repeats=3) for n in (33, 77)]
            for r in res:
                print(f"{r['frames']:>7d} {r['step_s']:>8.2f} {r['peak_gib']:>9.1f} {r['params_b']:>11.2f}")
            print(f"77-frame segment: {res[1]['step_s'] / res[0]['step_s']:.2f}x the 33-frame step time")
    print(f"ae_tiny_chunk_s={relay['wall'] / relay['chunks']:.3f} chunks={relay['chunks']}")


if __name__ == "__main__":
    main()
