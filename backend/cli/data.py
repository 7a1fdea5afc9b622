"""Commands about the data and the music: analyse, prepare-data, eval, bench."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from backend.cli.common import DEFAULT_OUT, CliError, console


def analyse(
    audio: Optional[Path] = typer.Argument(None, metavar="SONG",
                                           help="Audio file (wav/flac/ogg/mp3); the built-in demo song if omitted."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", metavar="FOLDER",
                             help="Folder for music_features.npz and beats.png."),
    plot_start: Optional[float] = typer.Option(
        None, "--plot-start", metavar="SECONDS",
        help="Where the beat plot's close-up starts (the first bar from this time); by default the first full bar."),
    plot_bars: int = typer.Option(8, "--plot-bars", min=1, max=16, metavar="BARS",
                                  help="Bars in the beat plot's close-up (1-16)."),
) -> None:
    """Find a song's beats, bars, tempo and sections; beats.png shows 8 bars close up and the tempo over the song."""
    from backend.music.report import analyse_to_folder
    from backend.music.structure import song_sections

    result = analyse_to_folder(audio, out, bars=plot_bars, plot_start=plot_start)
    console.print(f"[green]analysed[/green] {result.source}: {result.features.duration:.1f} s, "
                  f"{result.features.tempo:.1f} BPM, {len(result.features.beat_frames)} beats")
    for path in result.files:
        print(path)
    fps = result.features.fps
    console.print("sections: " + ", ".join(f"{s.label} {s.start / fps:.1f}-{s.end / fps:.1f} s"
                                           for s in song_sections(result.features)))



def bench(
    which: str = typer.Argument(..., metavar="me|ae|bridge|blender",
                                help="me: dance generation speed; ae: video chunk relay; bridge: server overhead; "
                                     "blender: baking into Blender."),
    quick: bool = typer.Option(False, "--quick", metavar="", help="The short version (under a minute)."),
) -> None:
    """Run a benchmark from scripts/ (ME sampling speed, AE chunk relay, bridge overhead, Blender baking)."""
    import subprocess

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    names = {"me": "bench_me.py", "bridge": "bench_bridge.py", "blender": "bench_blender.py", "ae": "bench_ae.py"}
    if which not in names:
        raise CliError(f"unknown benchmark {which!r}; choose one of {', '.join(names)}")
    raise typer.Exit(subprocess.call([sys.executable, str(scripts / names[which]), *(["--quick"] if quick else [])]))



def prepare_data(
    data_dir: Path = typer.Option(Path("../shared/data"), "--data", help="The shared data folder."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default: .cache/ in the repo)."),
    figure: Optional[str] = typer.Option("DANCE_W_1", help="Sequence to draw (markers beside fitted SMPL)."),
    frame: int = typer.Option(600, help="Frame (25 fps) of that sequence to draw."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for the figure."),
) -> None:
    """Convert the paired dance data to SMPL motions (cached) and print dataset statistics."""
    from backend.data.dataset import DanceDataset, default_cache_dir

    ds = DanceDataset(data_dir, cache_dir or default_cache_dir(), progress=True)
    ds.print_statistics(console)
    if figure:
        from backend.data import tang2018
        from backend.data.plots import plot_fit_frame

        seq = tang2018.load_sequence(ds.root / figure)
        sides = tang2018.settle_sides(seq.positions)
        motion25, fit = tang2018.fit_smpl(seq, sides)
        if not 0 <= frame < motion25.num_frames:
            raise CliError(f"{figure} has {motion25.num_frames} frames; frame {frame} is out of range")
        print(plot_fit_frame(seq, motion25, fit.scale, frame, out / f"fit_{figure}_{frame}.png", sides.chain_a_is_left))


def evaluate(
    gt: bool = typer.Option(False, "--gt", metavar="", help="Score the real test split against the real train split."),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data", help="The shared data folder."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default: .cache/ in the repo)."),
) -> None:
    """Print the metric table (FID_k, FID_g, Div_k, Div_g, BAS, PFC)."""
    from backend.data.dataset import DanceDataset, default_cache_dir
    from backend.metrics.report import ground_truth_table

    if not gt:
        raise CliError("only --gt is available until a model is trained (issue 4)")
    ds = DanceDataset(data_dir, cache_dir or default_cache_dir(), progress=True)
    Console(width=160).print(ground_truth_table(ds))
