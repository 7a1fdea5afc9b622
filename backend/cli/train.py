"""`mace-dance train`: the Motion Expert's training run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import typer

from backend.cli.common import CliError, check_range, with_options

TRAIN_OPTIONS = {  # name: (type, option); the command takes them as keywords
    "arch": (str, typer.Option("mamba", help="mamba (the Motion Expert) or transformer (the EDGE-style baseline).")),
    "out": (Path, typer.Option(Path("runs/me"), "--out", "-o", help="Run folder (resumes when it holds a state).")),
    "steps": (int, typer.Option(20000, help="Optimiser steps.")),
    "batch": (int, typer.Option(32, help="Windows per step.")),
    "lr": (float, typer.Option(4e-4, help="Peak learning rate.")),
    "window": (int, typer.Option(150, help="Frames per training window (30 fps; 150 = 5 s).")),
    "warmup": (int, typer.Option(500, help="Learning-rate warm-up steps (then cosine down to lr / 10).")),
    "init": (Optional[Path], typer.Option(None, "--init", help="Fine-tune this model folder (weights/me, ...) instead of "
                                                                 "starting from random weights; its architecture and "
                                                                 "normaliser are kept.")),
    "d_model": (int, typer.Option(128, help="Model width.")),
    "blocks": (int, typer.Option(4, help="Denoiser blocks.")),
    "rhythm": (bool, typer.Option(True, "--rhythm/--no-rhythm", help="Dense rhythm inputs (beat phase, beat curve, "
                                                                      "tempo, accents) beside the 35 librosa columns.")),
    "music_skip": (bool, typer.Option(True, "--music-skip/--no-music-skip",
                                        help="Add the music encoding to the motion stream frame by frame.")),
    "styles": (bool, typer.Option(True, "--styles/--no-styles", help="Train with the dance style as a condition "
                                                                      "(dropped 30 % of the time, so 'auto' works).")),
    "tempo_augment": (bool, typer.Option(True, "--tempo-augment/--no-tempo-augment",
                                           help="Time-stretch music and dance together by 0.8-1.25x.")),
    "style_alone": (float, typer.Option(0.0, "--style-alone", help="With --styles: share of windows trained on their "
                                                                     "style with the music dropped, so the style "
                                                                     "condition carries the style by itself.")),
    "cross_style": (float, typer.Option(0.0, "--cross-style", help="With --styles: share of windows whose dance is set "
                                                                     "to another style's song, beat on beat, so the "
                                                                     "style condition can overrule the music's style.")),
    "cross_song": (float, typer.Option(0.0, "--cross-song", help="Share of windows whose dance is set to another song "
                                                                   "of its own style, beat on beat, so a style's "
                                                                   "styling belongs to its music, not to one recording "
                                                                   "(drawn after --cross-style's share).")),
    "cross_place": (float, typer.Option(0.0, "--cross-place", help="Share of windows whose dance is set to another "
                                                                     "stretch of its own song, beat on beat, so the "
                                                                     "model cannot answer a stretch of a train song with "
                                                                     "the dance it heard there.")),
    "disguise": (float, typer.Option(0.0, "--disguise", help="Share of windows whose music is transposed and "
                                                               "re-equalised, so the model cannot tell its train songs "
                                                               "apart by key and timbre.")),
    "drop_block": (float, typer.Option(0.0, "--drop-block", help="With --disguise: chance a disguised window's MFCC "
                                                                   "block (and, apart, its chroma block) is blanked.")),
    "audio_variants": (int, typer.Option(0, "--audio-variants", help="Other recordings rendered of each train song "
                                                                       "(re-pitched, re-equalised, analysed anew; cached), "
                                                                       "so the model cannot know a song by its sound.")),
    "variant_share": (float, typer.Option(0.8, "--variant-share", help="With --audio-variants: share of windows that "
                                                                         "hear one of the variants.")),
    "balance_styles": (Optional[bool], typer.Option(None, "--balance-styles/--no-balance-styles",
                                                      help="Draw windows of rare styles more often (style share ~ sqrt "
                                                           "of its frames); default: only with --styles.")),
    "prediction": (Optional[str], typer.Option(None, "--prediction", help="What the network's last layer predicts: x0 "
                                                                           "or v (the noisy input then reaches the output "
                                                                           "directly); default: --init's, else x0.")),
    "noisy_skip": (bool, typer.Option(False, "--noisy-skip", help="Give the x0 head a learned, gated skip of the noisy "
                                                                   "input (zero at first on an --init model), so nearly "
                                                                   "clean steps keep the quick small motions.")),
    "snr_gamma": (float, typer.Option(0.0, "--snr-gamma", help="Weigh each window's loss by its signal-to-noise ratio "
                                                               "clipped to [1, GAMMA], so nearly clean steps learn the "
                                                               "quick small motions (0: every noise level alike).")),
    "foot_loss": (float, typer.Option(0.5, "--foot-loss", help="Weight of EDGE's foot-contact loss (feet the data "
                                                                 "has planted must not move).")),
    "rhythm_loss": (float, typer.Option(0.0, "--rhythm-loss", help="Weight of the speed-spectrum loss that asks the "
                                                                     "motion's rhythm to have the real dance's periods.")),
    "threads": (int, typer.Option(0, help="CPU threads (0: all).")),
    "guidance": (str, typer.Option("auto", help="gft (one pass at sampling), cfg (EDGE's two passes); auto: gft for "
                                                  "mamba, cfg for the transformer baseline.")),
    "data_dir": (Path, typer.Option(Path("../shared/data"), "--data", help="The shared data folder.")),
    "cache_dir": (Optional[Path], typer.Option(None, "--cache", help="Cache folder (default: .cache/ in the repo).")),
}


@with_options(TRAIN_OPTIONS)
def train(**flags) -> None:
    """Train the denoiser on the train split (CPU or GPU; torchrun-ready), with EMA and resumable checkpoints."""
    from backend.data.dataset import DanceDataset, default_cache_dir
    from backend.motion.training import train as run_training

    f = SimpleNamespace(**flags)
    _check(f)
    cfg = _config(f)
    ds = DanceDataset(f.data_dir, f.cache_dir or default_cache_dir(), progress=True)
    train_clips = ds.split("train")
    variants = None
    if f.audio_variants:
        from backend.data.audio_variants import clip_variants

        print(f"audio variants: {f.audio_variants} per train song (rendered once, then cached)")
        variants = {c.name: clip_variants(ds, c, f.audio_variants) for c in train_clips}
    print(run_training(cfg, train_clips, variants=variants))


def _check(f: SimpleNamespace) -> None:
    """Refuse, in one line and before anything starts, a flag out of its range."""
    if f.guidance == "auto":
        f.guidance = "gft" if f.arch == "mamba" else "cfg"
    if f.guidance not in ("gft", "cfg"):
        raise CliError(f"guidance must be gft, cfg or auto, got {f.guidance!r}")
    if f.window < 16:
        raise CliError(f"--window must be at least 16 frames, got {f.window}")
    check_range("--foot-loss", f.foot_loss, "a weight", 0, 100, closed=False)
    check_range("--rhythm-loss", f.rhythm_loss, "a weight", 0, 100, closed=False)
    if f.prediction not in (None, "x0", "v"):
        raise CliError(f"--prediction must be x0 or v, got {f.prediction!r}")
    if f.snr_gamma != 0 and not 1 <= f.snr_gamma <= 1000:
        raise CliError(f"--snr-gamma must be 0 (off) or in [1, 1000], got {f.snr_gamma}")
    for flag, share in (("--style-alone", f.style_alone), ("--cross-style", f.cross_style),
                        ("--cross-song", f.cross_song), ("--cross-place", f.cross_place)):
        check_range(flag, share, "a share", 0, 1, closed=False)  # 1 would leave no window of its own
    for flag, share in (("--disguise", f.disguise), ("--drop-block", f.drop_block),
                        ("--variant-share", f.variant_share)):
        check_range(flag, share, "a share", 0, 1)
    check_range("--audio-variants", f.audio_variants, "a count", 0, 12)
    if f.init is not None and not (f.init / "config.json").is_file():
        raise CliError(f"--init {f.init}: not a model folder (needs model.safetensors and config.json)")


def _config(f: SimpleNamespace):
    """The training.TrainConfig of checked flags."""
    from backend.motion.conditioning import STYLES
    from backend.motion.diffusion import LossWeights
    from backend.motion.model import DenoiserConfig
    from backend.motion.training import TrainConfig

    cfg = TrainConfig(out=str(f.out), arch=f.arch, steps=f.steps, batch=f.batch, lr=f.lr, window=f.window,
                      warmup=f.warmup, threads=f.threads, guidance=f.guidance, init=str(f.init) if f.init else "",
                      tempo_augment=f.tempo_augment, balance_styles=f.balance_styles,
                      losses=LossWeights(foot=f.foot_loss, rhythm=f.rhythm_loss, snr_gamma=f.snr_gamma),
                      p_style_alone=f.style_alone, prediction=f.prediction or "", noisy_skip=f.noisy_skip,
                      model=DenoiserConfig(arch=f.arch, d_model=f.d_model, n_blocks=f.blocks, rhythm=f.rhythm,
                                           music_skip=f.music_skip, n_styles=len(STYLES) - 1 if f.styles else 0,
                                           style_film=f.styles))
    cfg.augment.p_cross_style = f.cross_style
    cfg.augment.p_cross_song = f.cross_song
    cfg.augment.p_cross_place = f.cross_place
    cfg.augment.p_disguise = f.disguise
    cfg.augment.p_drop_block = f.drop_block
    cfg.augment.p_variant = f.variant_share if f.audio_variants else 0.0
    return cfg
