"""The `train-ae` command: fine-tune the Appearance Expert's video model on your clips."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from backend.cli.common import CliError, console
from backend.cli.video import check_video_request


def train_ae_cmd(
    stage: int = typer.Option(..., metavar="1|2",
                              help="1: teach the model to follow the pose frames (the pose adapter); 2: teach it "
                                   "the look of your clips (LoRA on the video transformer's attention and "
                                   "feed-forward layers)."),
    data: Path = typer.Option(..., metavar="FOLDER",
                              help="Folder of clips (frames/*.png with poses/*.png or motion.npz)."),
    out: Path = typer.Option(Path("runs/ae"), "--out", "-o", metavar="FOLDER", help="Where the trained weights go."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", metavar="FOLDER",
                                             help="The video model to fine-tune: a Wan2.2-Animate folder on disk "
                                                  "(diffusers format)."),
    tiny: bool = typer.Option(False, metavar="", help="A dry run without the video model: tiny random weights."),
    steps: int = typer.Option(1000, metavar="N", help="Training steps."),
    lr: float = typer.Option(1e-4, metavar="RATE", help="Learning rate."),
    rank: int = typer.Option(16, metavar="N", help="Stage 2: LoRA rank (higher learns more, needs more memory)."),
    width: int = typer.Option(480, metavar="PIXELS", help="Training width (a multiple of 16)."),
    height: int = typer.Option(832, metavar="PIXELS", help="Training height (a multiple of 16)."),
    segment: int = typer.Option(77, metavar="FRAMES",
                                help="Frames per training piece: a multiple of 4 plus 1 (73, 77, 81, ...)."),
) -> None:
    """Fine-tune the video model on your clips (needs the ae and train extras; `accelerate launch` for more GPUs)."""
    from backend.appearance.pipeline import AppearanceExpert, VideoOptions
    from backend.appearance.training import load_clips, train_ae

    if stage not in (1, 2):
        raise CliError("--stage must be 1 or 2")
    options = VideoOptions(width=width, height=height, segment_frames=segment)
    check_video_request(options, model_dir, tiny)
    if tiny:
        expert = AppearanceExpert.tiny(options=options)
    else:
        expert = AppearanceExpert.from_folder(model_dir, dtype="bf16")
    clips = load_clips(data, width, height, segment)
    print(train_ae(expert.pipe, clips, stage, steps, out, lr=lr, rank=rank, width=width, height=height,
                   log=lambda line: console.print(line)))
