#!/usr/bin/env python
"""Motion Expert sampling benchmark: time and peak memory vs dance length, ME (BiMamba) vs the transformer baseline.

Each measurement runs in a fresh process so its peak resident memory is its own. Both models have the shipped ME's
width and depth (random weights when a model folder is absent: timing does not depend on the weights). Lengths where a
full sampling run would take too long are timed on a few denoiser passes and scaled to the full step count (marked
'est.'). The growth exponent k is the slope of log(time) against log(length) (time ~ length^k).
`--quick` (under a minute) ends with `me_60s_s=<seconds> speedup_3min_vs_transformer=<ratio>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(arch: str, seconds: float, steps: int, passes: int | None) -> dict:
    """Runs in the child: build the model, time sampling (or `passes` denoiser calls), report peak RSS."""
    import resource

    import torch

    from backend.motion.checkpoint import SHIPPED_ME, load_model, torch_threads
    from backend.motion.model import Denoiser, DenoiserConfig
    from backend.motion.precision import network_pass, sampler_dtype
    from backend.motion.sampling import SampleOptions, sample
    from backend.runtime import tune_allocator

    tuned = tune_allocator()  # as the CLI does; MACE_DANCE_MALLOC=default measures glibc's own behaviour
    torch_threads()
    if (SHIPPED_ME / "model.safetensors").is_file():
        model, _, _ = load_model(SHIPPED_ME)
        cfg = model.cfg
    else:
        cfg = DenoiserConfig()
    if arch != cfg.arch:
        model = Denoiser(DenoiserConfig(**{**cfg.to_dict(), "arch": arch})).eval()
    elif not (SHIPPED_ME / "model.safetensors").is_file():
        model = Denoiser(cfg).eval()
    frames = int(seconds * 30)
    music = torch.randn(frames, 35)
    with torch.no_grad():
        warm = torch.randn(1, min(frames, 300), 151)
        model(warm, torch.tensor([10]), torch.tensor([0.5]), model.encode_music(torch.randn(1, warm.shape[1], 35)))
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if passes is None:
            sample(model, music, SampleOptions(steps=steps))
            total = time.perf_counter() - t0
        else:
            enc = model.encode_music(music[None])
            t_enc = time.perf_counter() - t0
            x = torch.randn(1, frames, 151)
            t1 = time.perf_counter()
            with network_pass(sampler_dtype("cpu")):  # as the sampler runs its passes (bf16 where native)
                for _ in range(passes):
                    model(x, torch.tensor([10]), torch.tensor([0.5]), enc)
            total = t_enc + (time.perf_counter() - t1) / passes * steps
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"arch": arch, "seconds": seconds, "time_s": total, "peak_mb": r1.ru_maxrss / 1024,
            "estimated": passes is not None, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "sys_s": r1.ru_stime - r0.ru_stime, "cpu_s": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime,
            "minor_faults": r1.ru_minflt - r0.ru_minflt, "allocator": "tuned" if tuned else "default"}


def run_child(arch: str, seconds: float, steps: int, passes: int | None, timeout: float,
              allocator: str = "tuned") -> dict | None:
    cmd = [sys.executable, __file__, "--child", arch, str(seconds), str(steps), str(passes or 0)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             env={**os.environ, "MACE_DANCE_MALLOC": allocator}, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def growth(rows: list[dict]) -> float:
    import numpy as np

    pts = [(r["seconds"], r["time_s"]) for r in rows if r]
    if len(pts) < 2:
        return float("nan")
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def allocator_table(steps: int, repeats: int) -> None:
    """The 60 s ME dance under glibc's default malloc and tuned (backend.runtime), alternating runs."""
    import numpy as np

    runs: dict[str, list[dict]] = {"default": [], "tuned": []}
    for _ in range(repeats):
        for allocator in runs:
            r = run_child("mamba", 60, steps, None, timeout=600, allocator=allocator)
            if r:
                runs[allocator].append(r)
    print(f"{'allocator':>10} {'median s':>9} {'min-max s':>13} {'sys share':>10} {'minor faults':>13}")
    med = {}
    for allocator, rs in runs.items():
        if not rs:
            continue
        t = [r["time_s"] for r in rs]
        med[allocator] = float(np.median(t))
        share = np.median([r["sys_s"] / max(r["cpu_s"], 1e-9) for r in rs])
        print(f"{allocator:>10} {med[allocator]:>9.2f} {min(t):>6.2f}-{max(t):<6.2f} {share:>10.1%} "
              f"{int(np.median([r['minor_faults'] for r in rs])):>13d}")
    if len(med) == 2:
        print(f"allocator tuning: 60 s dance {med['default'] / med['tuned']:.2f}x faster than glibc's default")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--steps", type=int, default=12, help="DDIM steps (the generate default)")
    ap.add_argument("--malloc", type=int, default=None, metavar="N",
                    help="also time the 60 s ME dance N times with glibc's default allocator and N times tuned "
                         "(alternating; default: 3, or 0 with --quick)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        arch, seconds, steps, passes = args.child
        print(json.dumps(measure(arch, float(seconds), int(steps), int(passes) or None)))
        return

    if args.quick:
        plan = [(5, None), (60, None), (180, 2)]
    else:
        plan = [(5, None), (60, None), (180, None), (600, 3)]
    rows: dict[str, list[dict]] = {"mamba": [], "transformer": []}
    for seconds, passes in plan:
        for arch in ("mamba", "transformer"):
            p = passes if arch == "mamba" or seconds <= 60 else (passes or 2)
            r = run_child(arch, seconds, args.steps, p, timeout=600)
            if r:
                rows[arch].append(r)
    print(f"{'length':>8} {'arch':>12} {'time (s)':>12} {'peak MB':>10} {'params (M)':>11}")
    for arch, rs in rows.items():
        for r in rs:
            est = " est." if r["estimated"] else ""
            print(f"{r['seconds']:>7.0f}s {arch:>12} {r['time_s']:>12.2f}{est:<5}{r['peak_mb']:>10.0f} {r['params_m']:>11.2f}")
    print(f"growth exponent k (time ~ length^k): ME {growth(rows['mamba']):.2f}, "
          f"transformer {growth(rows['transformer']):.2f}")
    repeats = args.malloc if args.malloc is not None else (0 if args.quick else 3)
    if repeats:
        allocator_table(args.steps, repeats)
    me60 = next(r["time_s"] for r in rows["mamba"] if r["seconds"] == 60)
    t180 = {a: next((r["time_s"] for r in rs if r["seconds"] == 180), float("nan")) for a, rs in rows.items()}
    print(f"goal: a 60 s dance in <= 5 s at {args.steps} steps: ME takes {me60:.2f} s")
    print(f"me_60s_s={me60:.2f} speedup_3min_vs_transformer={t180['transformer'] / t180['mamba']:.2f}")


if __name__ == "__main__":
    main()
