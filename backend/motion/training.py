"""Training loop for the denoiser: windows of the train split, GFT objective, EMA, resumable checkpoints.

One readable loop (nanoGPT's habit). Distributed runs come from torchrun's environment: with WORLD_SIZE > 1 the model
is wrapped in DistributedDataParallel and each rank draws its own batches; the CPU path is the same code.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from backend.motion.checkpoint import load_model, save_model
from backend.motion.conditioning import STYLES, music_dim, music_inputs
from backend.motion.diffusion import LossWeights, MotionLosses, Schedule, gft_prediction, snr_weights
from backend.motion.model import Denoiser, DenoiserConfig
from backend.motion.representation import Normalizer, canonicalize, mirror, motion_to_features
from backend.motion.windows import AugmentConfig, WindowSampler


# parameters a fine-tune may add to its --init model (zero-initialised)
GROWN = ("music.style.", "style_film.", "skip.")


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in the run folder)."""

    out: str = "runs/me"
    arch: str = "mamba"
    steps: int = 20000
    batch: int = 32
    window: int = 150  # 5 s at 30 fps
    stride: int = 15  # window start spacing when cutting the train split
    lr: float = 4e-4
    weight_decay: float = 0.01
    warmup: int = 500
    ema: float = 0.999
    p_uncond: float = 0.1
    p_style_alone: float = 0.0  # models with styles: share of samples trained on their style with the music dropped
    grown_lr_scale: float = 10.0  # learning-rate factor for style parameters grown onto an --init model
    guidance: str = "gft"  # "gft": guidance-free training (one pass at sampling); "cfg": classic CFG (two passes)
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 250
    threads: int = 0  # 0: all cores
    init: str = ""  # a model folder to fine-tune from (its weights, architecture and normaliser); "" = from scratch
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tempo_augment: bool = True  # False: every window at the recorded tempo (mirror images and style drop still apply)
    prediction: str = ""  # "x0" or "v" (see model.Denoiser); "": the --init model's, or x0 from scratch
    noisy_skip: bool = False  # add the x0 head's gated skip of the noisy input (grown at zero onto an --init model)
    balance_styles: bool | None = None  # draw rare styles' windows more often; None: only for a style condition
    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    losses: LossWeights = field(default_factory=LossWeights)


def build_windows(clips, window: int, stride: int, normalizer: Normalizer | None = None,
                  with_mirror: bool = True, rhythm: bool = False) -> tuple[np.ndarray, np.ndarray, Normalizer]:
    """Cut clips into canonicalised windows (and their mirror images): motion (N, W, 151), music (N, W, D)."""
    motions, musics = [], []
    for clip in clips:
        inputs = music_inputs(clip.music, rhythm)
        for start in range(0, clip.motion.num_frames - window + 1, stride):
            piece = canonicalize(clip.motion.slice(start, start + window))
            variants = [piece, canonicalize(mirror(piece))] if with_mirror else [piece]
            for v in variants:
                motions.append(motion_to_features(v))
                musics.append(inputs[start : start + window])
    if not motions:
        raise ValueError(f"no clip is at least {window} frames long")
    if normalizer is None:
        normalizer = Normalizer.fit(motions, musics)
    m = normalizer.norm_motion(np.stack(motions)).astype(np.float32)
    a = normalizer.norm_music(np.stack(musics)).astype(np.float32)
    return m, a, normalizer


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def plot_losses(history: list[dict], path: Path) -> None:
    """Loss curve (total and parts, log scale) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for key in ("loss", "simple", "vel", "fk", "foot", "rhythm"):
        if key not in history[0]:
            continue
        ax.plot(steps, [h[key] for h in history], label=key, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _prepare_config(cfg: TrainConfig):
    """Settle the model config (from --init's model when fine-tuning); returns (source model, its normaliser)."""
    cfg.model.arch = cfg.arch
    start_from = init_normalizer = None
    if cfg.init:
        start_from, init_normalizer, _ = load_model(Path(cfg.init))
        if start_from.cfg.arch != cfg.arch:
            raise ValueError(f"--init {cfg.init} holds a {start_from.cfg.arch} model, not {cfg.arch}")
        wanted_styles, wanted_film = cfg.model.n_styles, cfg.model.style_film
        cfg.model = copy.deepcopy(start_from.cfg)
        # a style condition can be grown onto a model without one: its embeddings start at zero, so the fine-tune
        # starts from exactly the source model's behaviour
        cfg.model.n_styles = cfg.model.n_styles or wanted_styles
        cfg.model.style_film = cfg.model.style_film or (wanted_film and cfg.model.n_styles > 0)
    cfg.model.noisy_skip = cfg.model.noisy_skip or cfg.noisy_skip
    if cfg.prediction:
        # an x0 model can be fine-tuned into a v model: the trunk is kept, and at high noise, where -v is nearly x0,
        # its head already says the right thing
        cfg.model.prediction = cfg.prediction
    cfg.model.music_dim = music_dim(cfg.model.rhythm)
    return start_from, init_normalizer


def _build_model(cfg: TrainConfig, start_from, device: str):
    """The model (grown from --init's when given), its EMA copy and the optimiser."""
    model = Denoiser(cfg.model).to(device)
    if start_from is not None:
        missing, unexpected = model.load_state_dict(start_from.state_dict(), strict=False)
        if unexpected or any(not k.startswith(GROWN) for k in missing):
            raise ValueError(f"--init {cfg.init}: weights do not fit the model (missing {missing}, "
                             f"unexpected {unexpected})")
        for name, p in model.named_parameters():
            if name in missing:
                torch.nn.init.zeros_(p)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    # parameters grown onto a fine-tuned model start at zero and must travel further than the rest in the same steps
    grown, rest = [], []
    for name, p in model.named_parameters():
        (grown if start_from is not None and name.startswith(GROWN) else rest).append(p)
    groups = [{"params": rest, "scale": 1.0}] + ([{"params": grown, "scale": cfg.grown_lr_scale}] if grown else [])
    return model, ema, torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _resume(out: Path, model, ema, opt, device: str) -> tuple[int, float, list]:
    """(step, wall seconds, loss history) of a run folder's saved state, loaded into the model; zeros when new."""
    state_path = out / "state.pt"
    if not state_path.is_file():
        return 0, 0.0, []
    state = torch.load(state_path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
    return int(state["step"]), float(state.get("wall", 0.0)), history


def _step_loss(cfg: TrainConfig, net, world: int, batch, schedule: Schedule, losses, rng, device: str) -> dict:
    """The loss terms of one batch (the diffusion objective of the run's guidance kind)."""
    motion_b, music_b, style_b = batch
    x0 = torch.from_numpy(motion_b).to(device)
    cond = torch.from_numpy(music_b).to(device)
    style = torch.from_numpy(style_b).to(device) if cfg.model.n_styles else None
    t = torch.from_numpy(rng.integers(0, schedule.steps, cfg.batch)).to(device)
    x_t = schedule.q_sample(x0, t, torch.randn_like(x0))
    core = net if world == 1 else net.module
    if cfg.guidance == "cfg":  # EDGE: drop the music for p_uncond of the samples, no beta
        drop = torch.rand(cfg.batch, device=device) < cfg.p_uncond
        ones = torch.ones(cfg.batch, device=device)
        kept = None if style is None else torch.where(drop, torch.zeros_like(style), style)  # none: no style
        pred = net(x_t, t, ones, core.encode_music(cond, drop, kept), kept)
    else:
        pred, _ = gft_prediction(core, x_t, t, cond, cfg.p_uncond, style=style, p_style_alone=cfg.p_style_alone)
    return losses(pred, x0, snr_weights(schedule, t, cfg.losses.snr_gamma))


def _run_record(cfg: TrainConfig, step: int, wall: float, sampler, augment, device: str) -> dict:
    """What the saved model folder records about its training run."""
    return {"steps": step, "wall_seconds": round(wall), "batch": cfg.batch, "window": cfg.window,
            "guidance": cfg.guidance, "init": cfg.init, "losses": asdict(cfg.losses),
            "train_clips": len(sampler.clips), "tempo_augment": augment.p_stretch > 0,
            "balance_styles": bool(cfg.balance_styles if cfg.balance_styles is not None else cfg.model.n_styles),
            "style_alone": cfg.p_style_alone, "cross_style": augment.p_cross_style,
            "cross_song": augment.p_cross_song, "cross_place": augment.p_cross_place, "disguise": augment.p_disguise,
            "drop_block": augment.p_drop_block, "audio_variant": augment.p_variant,
            "audio_variants": max((len(r) - 1 for r in sampler.recordings), default=0),
            "rhythm": cfg.model.rhythm, "styles": list(STYLES) if cfg.model.n_styles else [],
            "device": device, "torch_threads": torch.get_num_threads()}


def train(cfg: TrainConfig, train_clips, progress: bool = True, should_stop=None, variants: dict | None = None) -> Path:
    """Train (or resume) a denoiser in cfg.out; returns the folder of the EMA model (cfg.out/ema).

    `variants` (clip name -> MusicFeatures of other recordings of its song, backend.data.audio_variants) are heard by
    a share cfg.augment.p_variant of the windows."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    rng = np.random.default_rng(cfg.seed + rank)
    start_from, normalizer = _prepare_config(cfg)
    if start_from is None:  # a fine-tuned model keeps its source's normaliser, so inputs and outputs keep their meaning
        _, _, normalizer = build_windows(train_clips, cfg.window, cfg.stride, rhythm=cfg.model.rhythm)
    augment = copy.deepcopy(cfg.augment)
    if not cfg.tempo_augment:
        augment.p_stretch = 0.0
    sampler = WindowSampler(train_clips, cfg.window, normalizer, cfg.model.rhythm, augment, cfg.model.n_styles > 0,
                            cfg.balance_styles, variants)
    model, ema, opt = _build_model(cfg, start_from, device)
    schedule = Schedule()
    losses = MotionLosses(torch.tensor(normalizer.motion_mean, device=device),
                          torch.tensor(normalizer.motion_std, device=device), cfg.losses)
    step, wall, history = _resume(out, model, ema, opt, device)
    if step:
        rng = np.random.default_rng(cfg.seed + rank + step)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=1))

    from rich.progress import Progress

    t0 = time.time()
    running: dict[str, float] = {}
    with Progress(disable=not progress or rank != 0) as bar:
        task = bar.add_task(f"training {cfg.arch}", total=cfg.steps, completed=step)
        while step < cfg.steps:
            batch = sampler.draw(rng, cfg.batch)
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg) * g.get("scale", 1.0)
            model.train()
            parts = _step_loss(cfg, net, world, batch, schedule, losses, rng, device)
            opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                # EMA warm-up: early averages would otherwise be dominated by the random initial weights
                decay = min(cfg.ema, (1 + step) / (10 + step))
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
            step += 1
            for k, v in parts.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            bar.advance(task)
            if step % cfg.log_every == 0:
                history.append({"step": step, **{k: v / cfg.log_every for k, v in running.items()}})
                running = {}
                bar.update(task, description=f"training {cfg.arch} loss {history[-1]['loss']:.4f}")
            stop = should_stop() if should_stop else False
            if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.steps or stop):
                wall_now = wall + time.time() - t0
                torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                            "step": step, "wall": wall_now}, out / "state.pt.part")
                (out / "state.pt.part").replace(out / "state.pt")
                (out / "history.json").write_text(json.dumps(history))
                save_model(out / "ema", ema, normalizer, _run_record(cfg, step, wall_now, sampler, augment, device))
                if history:
                    plot_losses(history, out / "loss.png")
            if stop:
                break
    if world > 1:
        torch.distributed.destroy_process_group()
    return out / "ema"
