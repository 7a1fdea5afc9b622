"""`mace-dance comp`: the best parts of several takes joined, the model dancing each switch (here or on a server)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from backend.cli.common import (CliError, client, client_key_option, console, follow_job, server_key_option,
                                submit_showing_upload)
from bridge.request import GENERATION_STEPS, DanceRequest, Edit, RequestError, default_of


def _comp_spans(uses: list[str], seconds: float, takes: int) -> list[tuple[float, float, int]]:
    """`START:END=TAKE` texts (seconds from the section's start, END may be 'end', TAKE from 1) as sorted (start,
    end, take index) spans in s, checked to cover the `seconds`-long section once with existing takes: one line in
    the seconds typed when they do not."""
    slack = 0.5 / 30.0  # half a frame
    spans = []
    for text in uses:
        try:
            span, k = text.split("=")
            a, b = span.split(":")
            start = float(a)
            end = seconds if b.strip() in ("end", "") else float(b)
            take = int(k)
        except ValueError:
            raise CliError(f"--use {text!r}: write START:END=TAKE in seconds, e.g. 0:12.5=2 (END may be 'end')") from None
        if not (math.isfinite(start) and math.isfinite(end)) or not 0 <= start < end:
            raise CliError(f"--use {text}: START must be 0 s or later and come before END")
        if end - start < 1.0 / 30.0 and end < seconds:
            raise CliError(f"--use {text}: a range must last at least a frame ({1 / 30:.3f} s)")
        if end > seconds + slack:
            raise CliError(f"--use {text}: it ends at {end:g} s but the song section lasts {seconds:.2f} s (write "
                           f"END as 'end' to run to its end)")
        if not 1 <= take <= takes:
            raise CliError(f"--use {text}: there is no take {take}; the --take files are takes 1 to {takes}")
        spans.append((start, min(end, seconds), take - 1))
    edge = 0.0
    for start, end, _ in sorted(spans):
        if abs(start - edge) > slack:
            what = f"nothing dances {edge:g}-{start:g} s" if start > edge else f"{start:g}-{edge:g} s is danced twice"
            raise CliError(f"--use: {what}; each second of the section must come from exactly one take")
        edge = end
    if abs(edge - seconds) > slack:
        raise CliError(f"--use: the ranges stop at {edge:g} s but the song section lasts {seconds:.2f} s (end the "
                       f"last one with 'end')")
    return sorted(spans)


def _comp_ranges(spans: list[tuple[float, float, int]], frames: int, takes: int) -> list[tuple[int, int, int]]:
    """Checked spans (s) as (start, stop, take index) frame ranges of the analysed section's `frames`."""
    from backend.music.features import FPS
    from rigs.splice import validate_cuts

    cuts = [(int(round(a * FPS)), int(round(b * FPS)), k) for a, b, k in spans]
    cuts = [(min(a, frames), frames if n == len(cuts) - 1 else min(b, frames), k) for n, (a, b, k) in enumerate(cuts)]
    try:
        return validate_cuts(cuts, frames, takes)
    except ValueError as exc:  # a range shorter than a frame
        raise CliError(f"--use: {exc} (frames at {FPS:g} fps; the section has {frames / FPS:.2f} s)") from None


def comp(
    audio: Path = typer.Argument(..., metavar="SONG", help="The song the takes dance to."),
    take: list[Path] = typer.Option(..., "--take", metavar="DANCE.NPZ",
                                    help="A take's dance.npz; give --take once per take: take 1, 2, ... in that "
                                         "order."),
    use: list[str] = typer.Option(..., "--use", metavar="START:END=TAKE",
                                  help="These seconds of the song come from take TAKE, e.g. --use 0:12=2 --use "
                                       "12:end=1. Each range keeps its take's moves but is turned and moved as a "
                                       "whole to carry on where, and facing the way, the dancer is at the switch, "
                                       "so it may face and travel elsewhere than in its take."),
    out: Path = typer.Option(Path("out/comp"), "--out", "-o", metavar="FOLDER", help="Folder for the comped dance."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", metavar="FOLDER",
                                             help="Model folder (default: the shipped weights/me)."),
    seed: int = typer.Option(default_of("seed"), metavar="N",
                             help="Which variation of the transitions (same seed, same transitions)."),
    steps: Optional[int] = typer.Option(None, metavar="N", help=f"How many passes the model takes to refine each "
                                                                 f"transition ({GENERATION_STEPS} by default; DDIM "
                                                                 f"steps)."),
    start: float = typer.Option(0.0, metavar="SECONDS",
                                help="Where the takes' section starts in the song, as they were made."),
    end: Optional[float] = typer.Option(None, metavar="SECONDS", help="Where that section ends in the song."),
    plots: bool = typer.Option(False, "--plots/--no-plots", metavar="",
                               help="Also draw the preview strip and the beat plot (as generate --plots)."),
    beat_guidance: float = typer.Option(default_of("beat_guidance"), metavar="WEIGHT",
                                        help="How hard the transitions' rhythm is pulled onto the beats (as "
                                             "generate's)."),
    server: Optional[str] = typer.Option(None, metavar="ADDRESS",
                                         help="Comp on a running `mace-dance serve` (e.g. tcp://127.0.0.1:5555)."),
    server_key: Optional[Path] = server_key_option(),
    client_key: Optional[Path] = client_key_option(),
) -> None:
    """Join the best parts of several takes; the model dances a short transition across each switch."""
    from backend.motion.outputs import write_outputs
    from backend.music.audio import audio_duration, song_meta
    from backend.music.features import FPS, analyse_section
    from rigs.splice import assemble

    try:  # the options, the section, the takes' song and the ranges are checked before any analysis or model
        asked = DanceRequest(seed=seed, steps=steps, start=start, end=end, beat_guidance=beat_guidance).validate()
        section = asked.section_in(audio_duration(audio)[0])
    except RequestError as exc:
        raise CliError(str(exc)) from None
    meta = song_meta(audio, *section)
    motions = _load_takes(take, meta, audio)
    spans = _comp_spans(use, section[1] - section[0], len(motions))
    music = analyse_section(audio, start, end)
    motions = [_cut_take(path, m, music) for path, m in zip(take, motions)]
    cuts = _comp_ranges(spans, music.num_frames, len(motions))
    reference, switches = assemble(motions, cuts)
    request = replace(asked, reference=reference, edit=Edit(transitions=list(switches)))
    if server is not None:
        from bridge.protocol import motion_from_message

        bridge = client(server, server_key, client_key)
        try:
            job = submit_showing_upload(bridge, audio, request)
            motion = motion_from_message(follow_job(bridge, job, server, steps or GENERATION_STEPS))
        finally:
            bridge.close()
    else:
        from backend.motion.generate import MotionExpert
        from backend.motion.pipeline import dance

        motion, _ = dance(request, music, MotionExpert.load(model_dir))
    files = write_outputs(motion, music, out, plots=plots, meta=meta)
    console.print(f"[green]comped[/green] {len(cuts)} ranges from {len(motions)} takes; model-made transitions of "
                  f"{2 * request.edit.transition_frames / FPS:.1f} s at "
                  + (", ".join(f"{s / FPS:.2f} s" for s in switches) or "no switch"))
    for file in files:
        print(file)


def _s(seconds: float) -> str:
    """Seconds as a user would type them: 30, 12.5, 186.57."""
    return f"{seconds:.2f}".rstrip("0").rstrip(".")


def _load_takes(paths: list[Path], meta: dict, song: Path) -> list:
    """The takes' dances at 30 fps, each checked to be made for the song and section of `meta` (one line naming the
    take when not; takes written before dance files recorded their song are taken on trust)."""
    from backend.music.features import FPS
    from rigs.motion import Motion, MotionFileError

    seconds = meta["end"] - meta["start"]
    motions = []
    for path in paths:
        try:
            m = Motion.load_npz(path)
            made = Motion.read_meta(path)
        except (MotionFileError, OSError, ValueError) as exc:
            raise CliError(f"{path}: not a dance file ({exc})") from None
        if made.get("song_sha256") not in (None, meta["song_sha256"]):
            other = made.get("song", "unnamed")
            other = f"a different {other} (its contents differ)" if other == meta["song"] else f"another song ({other})"
            raise CliError(f"{path} was made for {other}, not {song}: comp takes danced to the song being comped")
        if made.get("song_sha256") and max(abs(float(made.get(k, -1.0)) - meta[k]) for k in ("start", "end")) > 0.01:
            raise CliError(f"{path} was made for {_s(made['start'])}-{_s(made['end'])} s of the song but this comp is "
                           f"of {_s(meta['start'])}-{_s(meta['end'])} s (give --start/--end as the takes were made)")
        m = m.resample(FPS, cover=True) if abs(m.fps - FPS) > 1e-6 else m
        if m.duration + 1.0 / FPS < seconds - 1e-6:
            raise CliError(f"{path} lasts {m.duration:.2f} s; the song section lasts {seconds:.2f} s")
        motions.append(m)
    return motions


def _cut_take(path: Path, motion, music):
    """A take cut to the analysed section's frames (one line when it is shorter)."""
    if motion.num_frames < music.num_frames:
        raise CliError(f"{path} lasts {motion.duration:.2f} s; the song section lasts {music.duration:.2f} s")
    return motion.slice(0, music.num_frames)
