"""`mace-dance generate` and `comp`: a DanceRequest built from the options, danced here or on a server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from backend.cli.common import DEFAULT_OUT, CliError, client, console, follow_job, seconds_range, step_bar
from backend.cli.request_options import request_from_options, with_request_options
from bridge.request import DanceRequest, Edit, RequestError, default_of

LOWER_BODY = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
              "right_foot"]
END = 10 ** 7  # a kept range that runs to the end of the music, whatever its length


def _edit_parts(reference: Optional[Path], regenerate: Optional[str], keep_joints: Optional[str],
                path: Optional[Path], poses: Optional[Path], snap_poses: bool) -> dict:
    """The request's reference, edit, path and keys from the files and texts given (one line when one is bad)."""
    from rigs.motion import Motion

    from backend.motion.choreography import read_keys

    parts: dict = {}
    if reference is not None:
        if not (regenerate or keep_joints):
            raise CliError("--reference needs --regenerate and/or --keep-joints")
        parts["reference"] = Motion.load_npz(reference)
        edit = Edit()
        if regenerate:
            a, b = seconds_range(regenerate)  # frame f is kept when f < a * fps or f >= b * fps
            edit.keep_frames = [(0, math.ceil(a * 30.0)), (math.ceil(b * 30.0), END)]
        if keep_joints:
            edit.keep_joints = LOWER_BODY if keep_joints == "lower-body" else [n.strip() for n in keep_joints.split(",")]
            edit.keep_root = "pelvis" in edit.keep_joints
        parts["edit"] = edit
    elif regenerate or keep_joints:
        raise CliError("--regenerate and --keep-joints edit an existing dance: pass it with --reference")
    if path is not None:
        try:
            pts = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise CliError(f"{path}: not a CSV of x,z positions ({exc})") from None
        if pts.shape[1] != 2 or len(pts) < 2 or not np.isfinite(pts).all():
            raise CliError(f"{path}: needs at least two rows of two finite numbers (x,z in metres)")
        parts["path_xz"] = pts
    if poses is not None:
        if not poses.is_file():
            raise CliError(f"{poses}: keyed poses file not found")
        parts["keys"] = read_keys(poses, 30.0)
        parts["keys"].snap_to_beats = snap_poses
    return parts


def _named(exc: RequestError, reference: Optional[Path], poses: Optional[Path]) -> CliError:
    """A request error, naming the user's file where it is about one."""
    files = {"reference": reference, "keys": poses}
    where = files.get(exc.name)
    return CliError(f"{where}: {exc}" if where is not None else str(exc))


@with_request_options()
def generate(
    audio: Optional[Path] = typer.Argument(None, help="Song (wav/flac/ogg/mp3); the built-in demo song if omitted."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for dance.npz, dance.bvh and the plots."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Model folder (default: the shipped weights/me)."),
    reference: Optional[Path] = typer.Option(None, help="An existing dance (.npz) to edit."),
    regenerate: Optional[str] = typer.Option(None, help="With --reference: regenerate only START:END (s), keep the rest."),
    keep_joints: Optional[str] = typer.Option(None, help="With --reference: keep these joints (comma list or 'lower-body')."),
    path: Optional[Path] = typer.Option(None, help="Root path to follow: a CSV of x,z metres per frame at 30 fps "
                                                   "(resampled to the song's length)."),
    server: Optional[str] = typer.Option(None, help="Generate on a running `mace-dance serve` (e.g. tcp://127.0.0.1:5555)."),
    server_key: Optional[Path] = typer.Option(None, "--server-key", help="With --server: the server's public key "
                                                                         "file (server.key) for a CURVE server."),
    client_key: Optional[Path] = typer.Option(None, "--keys", "--client-key", help="With --server: your secret key "
                                              "file (clients/NAME.key_secret from `mace-dance keys`)."),
    plots: bool = typer.Option(False, "--plots/--no-plots", help="Also write the preview strip and the beat plot "
                                                                 "(PNG, after the dance files)."),
    poses: Optional[Path] = typer.Option(None, "--poses", help="Dance through keyed poses: an .npz with 'frames' "
                                         "(30 fps) or 'times' (s), 'rotations' (K,24,4) or 'axis_angle' (K,24,3), "
                                         "optional 'joints' (K,24) bool and 'root' (K,3)."),
    snap_poses: bool = typer.Option(False, "--snap-poses/--no-snap-poses", help="Move each keyed pose to its "
                                                                                "nearest music beat first."),
    **options,
) -> None:
    """Generate a dance for a song with the Motion Expert (CPU is fine) and write it with previews."""
    from backend.music.demo import write_demo_wav

    try:
        request_from_options(options)  # a misspelt or out-of-range option fails at once, before any file is read
        request = request_from_options(options, **_edit_parts(reference, regenerate, keep_joints, path, poses,
                                                              snap_poses))
    except RequestError as exc:
        raise _named(exc, reference, poses) from None
    if audio is None:
        audio = out / "demo_song.wav"
        write_demo_wav(audio)
    takes = request.each_take()
    folders = [out] if len(takes) == 1 else [out / f"take_{k + 1}" for k in range(len(takes))]
    if server is not None:
        _generate_on_server(audio, takes, folders, server, client(server, server_key, client_key), plots)
    else:
        try:
            _generate_here(audio, takes, folders, model_dir, plots)
        except RequestError as exc:
            raise _named(exc, reference, poses) from None


def _generate_here(audio: Path, takes: list[DanceRequest], folders: list[Path], model_dir: Optional[Path],
                   plots: bool) -> None:
    """Dance each take with the Motion Expert in this process and write it."""
    from backend.music.prefetch import SectionAnalysis

    first = takes[0]
    # The section is decoded and analysed (librosa) in a forked process while this one imports torch and loads the
    # model: the fork comes first, so the child starts without torch.
    with SectionAnalysis(audio, first.start, first.end) as analysis:
        from backend.motion.checkpoint import model_for
        from backend.motion.generate import MotionExpert
        from backend.motion.outputs import write_outputs
        from backend.motion.pipeline import dance

        expert = MotionExpert.load(model_for(first.style, model_dir))
        music = analysis.result()
    for k, (request, folder) in enumerate(zip(takes, folders)):
        bar, task = step_bar(f"dancing to {music.duration:.0f} s of music", request.steps)
        with bar:
            motion, report = dance(request, music, expert, lambda stage, i, n: bar.update(task, completed=i, total=n))
        files = write_outputs(motion, music, folder, plots=plots)
        console.print(f"[green]generated[/green] {motion.duration:.1f} s of dance at {motion.fps:g} fps "
                      f"(beta {request.beta}, seed {request.seed}, {request.steps} steps)"
                      + (f": take {k + 1}" if len(takes) > 1 else ""))
        for line in report.lines():
            console.print(line, highlight=False)
        for file in files:
            print(file)


def _generate_on_server(audio: Path, takes: list[DanceRequest], folders: list[Path], server: str, bridge,
                        plots: bool) -> None:
    """Dance each take as one job on `server` and write it as a local run would."""
    from backend.motion.outputs import write_outputs
    from backend.music.features import analyse_section
    from bridge.protocol import motion_from_message

    music = analyse_section(audio, takes[0].start, takes[0].end) if plots else None  # the beat plot needs the beats
    try:
        for k, (request, folder) in enumerate(zip(takes, folders)):
            job = bridge.submit_request(audio, request)
            handle = f"{job}:{bridge.bridge.tokens.get(job, '')}"  # the id and the owner's token
            console.print(f"job {job} accepted by {server} (Ctrl-C cancels it; if this terminal goes away, "
                          f"fetch it later with: mace-dance fetch {handle} --server {server})")
            msg = follow_job(bridge, job, server, request.steps)
            motion = motion_from_message(msg)
            files = write_outputs(motion, music, folder, plots=plots)
            console.print(f"[green]generated on {server}[/green]: {motion.duration:.1f} s of dance"
                          + (f" (seed {request.seed}): take {k + 1}" if len(takes) > 1 else ""))
            for line in msg.get("report") or []:
                console.print(str(line), highlight=False)
            for path in files:
                print(path)
    finally:
        bridge.close()


def _comp_ranges(uses: list[str], frames: int, takes: int) -> list[tuple[int, int, int]]:
    """`START:END=TAKE` texts (seconds, END may be 'end', TAKE from 1) as (start, stop, take index) frame ranges."""
    from backend.music.features import FPS
    from rigs.splice import validate_cuts

    cuts = []
    for text in uses:
        try:
            span, k = text.split("=")
            a, b = span.split(":")
            start_f = int(round(float(a) * FPS))
            stop_f = frames if b.strip() in ("end", "") else int(round(float(b) * FPS))
            cuts.append((start_f, min(stop_f, frames), int(k) - 1))
        except ValueError:
            raise CliError(f"--use {text!r}: write START:END=TAKE in seconds, e.g. 0:12.5=2 (END may be 'end')") from None
    try:
        return validate_cuts(cuts, frames, takes)
    except ValueError as exc:
        raise CliError(f"--use: {exc} (frames at {FPS:g} fps; the song has {frames / FPS:.2f} s)") from None


def comp(
    audio: Path = typer.Argument(..., help="The song the takes dance to."),
    take: list[Path] = typer.Option(..., "--take", help="A take's dance.npz; once per take, numbered from 1 in order."),
    use: list[str] = typer.Option(..., "--use", help="START:END=TAKE: these seconds of the song come from take TAKE "
                                                     "(e.g. --use 0:12=2 --use 12:end=1)."),
    out: Path = typer.Option(Path("out/comp"), "--out", "-o", help="Folder for the comped dance."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Model folder (default: the shipped weights/me)."),
    seed: int = typer.Option(default_of("seed"), help="Seed of the transitions."),
    steps: int = typer.Option(default_of("steps"), help="DDIM steps for the transitions."),
    start: float = typer.Option(0.0, help="Start of the song section the takes dance to (s), as they were made."),
    end: Optional[float] = typer.Option(None, help="End of that section (s)."),
    plots: bool = typer.Option(False, "--plots/--no-plots", help="Also write the preview strip and the beat plot."),
    beat_guidance: float = typer.Option(default_of("beat_guidance"), help="Beat guidance of the transitions (see "
                                                                          "generate)."),
    server: Optional[str] = typer.Option(None, help="Comp on a running `mace-dance serve` (e.g. tcp://127.0.0.1:5555)."),
    server_key: Optional[Path] = typer.Option(None, "--server-key", help="With --server: the server's public key "
                                                                         "file (server.key) for a CURVE server."),
    client_key: Optional[Path] = typer.Option(None, "--keys", "--client-key", help="With --server: your secret key "
                                              "file (clients/NAME.key_secret from `mace-dance keys`)."),
) -> None:
    """Join the best parts of several takes; the model dances a short transition across each switch."""
    from backend.motion.outputs import write_outputs
    from backend.music.features import FPS, analyse_section
    from rigs.splice import assemble

    music = analyse_section(audio, start, end)
    motions = _load_takes(take, music)
    cuts = _comp_ranges(use, music.num_frames, len(motions))
    reference, switches = assemble(motions, cuts)
    try:
        request = DanceRequest(seed=seed, steps=steps, start=start, end=end, beat_guidance=beat_guidance,
                               reference=reference, edit=Edit(transitions=list(switches))).validate()
    except RequestError as exc:
        raise CliError(str(exc)) from None
    if server is not None:
        from bridge.protocol import motion_from_message

        bridge = client(server, server_key, client_key)
        try:
            motion = motion_from_message(follow_job(bridge, bridge.submit_request(audio, request), server, steps))
        finally:
            bridge.close()
    else:
        from backend.motion.generate import MotionExpert
        from backend.motion.pipeline import dance

        motion, _ = dance(request, music, MotionExpert.load(model_dir))
    files = write_outputs(motion, music, out, plots=plots)
    console.print(f"[green]comped[/green] {len(cuts)} ranges from {len(motions)} takes; model-made transitions of "
                  f"{2 * request.edit.transition_frames / FPS:.1f} s at "
                  + (", ".join(f"{s / FPS:.2f} s" for s in switches) or "no switch"))
    for file in files:
        print(file)


def _load_takes(paths: list[Path], music) -> list:
    """The takes' dances at 30 fps, cut to the section's length (one line when one does not fit)."""
    from backend.music.features import FPS
    from rigs.motion import Motion, MotionFileError

    motions = []
    for path in paths:
        try:
            m = Motion.load_npz(path)
        except (MotionFileError, OSError, ValueError) as exc:
            raise CliError(f"{path}: not a dance file ({exc})") from None
        m = m.resample(FPS, cover=True) if abs(m.fps - FPS) > 1e-6 else m
        if m.num_frames < music.num_frames:
            raise CliError(f"{path} lasts {m.duration:.2f} s; the song section lasts {music.duration:.2f} s")
        motions.append(m.slice(0, music.num_frames))
    return motions
