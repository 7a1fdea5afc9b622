"""The `mace-dance` command line. Subcommands stay thin: they parse options and call into the backend modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MACE-Dance: music to 3D dance.")
console = Console(stderr=True, soft_wrap=True)  # soft wrap: an error stays one line

DEFAULT_OUT = Path("out")


class CliError(Exception):
    """An error to show the user as one line."""


@app.command()
def analyse(
    audio: Optional[Path] = typer.Argument(None, help="Audio file (wav/flac/ogg/mp3); the built-in demo song if omitted."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for the results."),
) -> None:
    """Analyse music: 30 fps librosa features, beats and tempo, with a beat plot (PNG)."""
    from backend.music.report import analyse_to_folder

    result = analyse_to_folder(audio, out)
    console.print(f"[green]analysed[/green] {result.source}: {result.features.duration:.1f} s, "
                  f"{result.features.tempo:.1f} BPM, {len(result.features.beat_frames)} beats")
    for path in result.files:
        print(path)


@app.command("prepare-data")
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


@app.command("eval")
def evaluate(
    gt: bool = typer.Option(False, "--gt", help="Score the real test split against the real train split."),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data", help="The shared data folder."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default: .cache/ in the repo)."),
) -> None:
    """Print the metric table (FID_k, FID_g, Div_k, Div_g, BAS, PFC)."""
    from backend.data.dataset import DanceDataset, default_cache_dir
    from backend.metrics.report import ground_truth_table

    if not gt:
        raise CliError("only --gt is available until a model is trained (issue 4)")
    ds = DanceDataset(data_dir, cache_dir or default_cache_dir(), progress=True)
    console.print(ground_truth_table(ds))


def main() -> None:
    """Entry point: run the app and turn expected failures into one clear line."""
    debug = bool(os.environ.get("MACE_DANCE_DEBUG"))
    try:
        app(standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: every failure becomes one line
        if debug:
            raise
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # typer's (vendored click's) usage errors
            exc.show()
            sys.exit(exc.exit_code)
        message = str(exc) or type(exc).__name__
        console.print(f"[red]error:[/red] {message}", highlight=False)
        if not isinstance(exc, (ValueError, OSError, CliError, LookupError)):
            console.print("(unexpected; set MACE_DANCE_DEBUG=1 for the traceback)", style="dim")
        sys.exit(2)


if __name__ == "__main__":
    main()
