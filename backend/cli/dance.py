"""`mace-dance generate`: a DanceRequest built from the options, danced here or on a server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from backend.cli.common import (DEFAULT_OUT, CliError, client, client_key_option, console, follow_job,
                                seconds_range, server_key_option, step_bar, submit_showing_upload)
from backend.cli.request_options import request_from_options, with_request_options
from bridge.request import GENERATION_STEPS, SONG_END_SLACK, DanceRequest, Edit, RequestError

LOWER_BODY = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
              "right_foot"]
END = 10 ** 7  # a kept range that runs to the end of the music, whatever its length


def _edit_parts(reference: Optional[Path], regenerate: Optional[str], keep_joints: Optional[str],
                path: Optional[Path], poses: Optional[Path], snap_poses: bool) -> dict:
    """The request's reference, edit, path and keys from the files and texts given (one line when one is bad)."""
    from rigs.motion import Motion

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
        parts["keys"] = _read_keys(poses)
        parts["keys"].snap_to_beats = snap_poses
    return parts


def _read_keys(poses: Path):
    """The keyed poses of a file, their shapes and values checked now, before the model loads (one line naming it)."""
    from backend.motion.choreography import PoseKeys, read_keys  # imports torch: only when keys are given

    keys = read_keys(poses, 30.0)
    k = len(keys.frames)
    try:
        PoseKeys(keys.frames, keys.rotations, np.ones((k, 24), bool) if keys.joints is None else keys.joints,
                 np.zeros((k, 3)) if keys.root is None else keys.root)
    except ValueError as exc:
        raise CliError(f"{poses}: {exc}") from None
    return keys


def _named(exc: RequestError, reference: Optional[Path], poses: Optional[Path]) -> CliError:
    """A request error, naming the user's file where it is about one."""
    files = {"reference": reference, "keys": poses}
    where = files.get(exc.name)
    return CliError(f"{where}: {exc}" if where is not None else str(exc))


@with_request_options()
def generate(
    audio: Optional[Path] = typer.Argument(None, metavar="SONG",
                                           help="Song (wav/flac/ogg/mp3); the built-in demo song if omitted."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", metavar="FOLDER",
                             help="Folder for dance.npz, dance.bvh and the plots."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", metavar="FOLDER",
                                             help="Model folder (default: the shipped weights/me)."),
    reference: Optional[Path] = typer.Option(None, metavar="DANCE.NPZ", help="An existing dance to edit."),
    regenerate: Optional[str] = typer.Option(None, metavar="START:END",
                                             help="With --reference: dance these seconds anew, keep the rest."),
    keep_joints: Optional[str] = typer.Option(None, metavar="JOINTS",
                                              help="With --reference: keep these joints' motion and dance the rest "
                                                   "anew (SMPL joint names, comma-separated, or 'lower-body')."),
    path: Optional[Path] = typer.Option(None, metavar="PATH.CSV",
                                        help="A floor path for the dancer's pelvis to follow: a CSV of x,z in metres, "
                                             "one row a frame at 30 fps (stretched to the dance's length)."),
    server: Optional[str] = typer.Option(None, metavar="ADDRESS", help="Generate on a running `mace-dance serve` "
                                                                        "(e.g. tcp://127.0.0.1:5555)."),
    server_key: Optional[Path] = server_key_option(),
    client_key: Optional[Path] = client_key_option(),
    plots: bool = typer.Option(False, "--plots/--no-plots", metavar="",
                               help="Also draw dance_preview.png (the skeleton at 8 moments) and dance_beats.png (8 "
                                    "bars close up with the dance's speed on the beats, and the tempo over the "
                                    "section)."),
    poses: Optional[Path] = typer.Option(None, "--poses", metavar="KEYS.NPZ",
                                         help="Dance through poses you keyed: an .npz with 'frames' (30 fps) or "
                                              "'times' (s), 'rotations' (K,24,4) or 'axis_angle' (K,24,3), optional "
                                              "'joints' (K,24) bool and 'root' (K,3)."),
    snap_poses: bool = typer.Option(False, "--snap-poses/--no-snap-poses", metavar="",
                                    help="Move each keyed pose to its nearest music beat first."),
    beats: Optional[Path] = typer.Option(None, "--beats", metavar="BEATS.TXT",
                                         help="Your beat map: a text file of beat times in the song (s), one a line; "
                                              "it replaces the beats found."),
    **options,
) -> None:
    """Make a dance for a song (the CPU is fine): dance.npz and dance.bvh for Blender, previews with --plots."""
    from backend.music.demo import write_demo_wav

    from backend.music.audio import song_meta

    try:
        request_from_options(options)  # a misspelt or out-of-range option fails at once, before any file is read
        parts = _edit_parts(reference, regenerate, keep_joints, path, poses, snap_poses)
        if beats is not None:
            from backend.music.overrides import read_beat_map

            parts["beat_map"] = read_beat_map(beats)
        request = request_from_options(options, **parts)
    except RequestError as exc:
        raise _named(exc, reference, poses) from None
    section = _checked_section(request, audio, regenerate, reference, poses)  # before the model loads
    if audio is None:
        audio = out / "demo_song.wav"
        write_demo_wav(audio)
    meta = song_meta(audio, *section)  # in each dance.npz: `comp` checks its takes' song, `video` its start
    takes = request.each_take()
    folders = [out] if len(takes) == 1 else [out / f"take_{k + 1}" for k in range(len(takes))]
    if server is not None:
        _generate_on_server(audio, takes, folders, server, client(server, server_key, client_key), plots, meta)
    else:
        try:
            _generate_here(audio, takes, folders, model_dir, plots, meta)
        except RequestError as exc:
            raise _named(exc, reference, poses) from None


def _checked_section(request: DanceRequest, audio: Optional[Path], regenerate: Optional[str],
                     reference: Optional[Path], poses: Optional[Path]) -> tuple[float, float]:
    """The section (start, end) in s, checked against the song's length (read from its header) and the options
    that depend on it against the section, in the seconds the user typed: one line before any work starts."""
    from backend.music.audio import audio_duration
    from backend.music.demo import DEMO_SECONDS

    song = DEMO_SECONDS if audio is None else audio_duration(audio)[0]
    try:
        start, end = request.section_in(song)
        if regenerate:
            a, b = seconds_range(regenerate)
            if b > end - start + SONG_END_SLACK:
                raise CliError(f"--regenerate {regenerate} runs past the end of the section, which lasts "
                               f"{end - start:.2f} s (its times count from the section's start)")
        ref = request.reference
        if ref is not None and ref.duration + 1.0 / ref.fps < end - start - 1e-6:
            raise CliError(f"{reference}: the dance to edit lasts {ref.duration:.2f} s; the section needs "
                           f"{end - start:.2f} s")
        request.check_length(end - start)
    except RequestError as exc:
        raise _named(exc, reference, poses) from None
    return start, end


def _generate_here(audio: Path, takes: list[DanceRequest], folders: list[Path], model_dir: Optional[Path],
                   plots: bool, meta: dict) -> None:
    """Dance each take with the Motion Expert in this process and write it."""
    from backend.music.analysis_cache import cache_dir as analysis_cache_dir
    from backend.music.overrides import music_for
    from backend.music.prefetch import SectionAnalysis

    first = takes[0]
    # The section is decoded and analysed (librosa) in a forked process while this one imports torch and loads the
    # model: the fork comes first, so the child starts without torch. The scipy parts both sides need (the beat
    # tracker's and the dance's clean-ups: 0.3 s of CPU each) are imported before it, so the child inherits them.
    import scipy.linalg  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import scipy.sparse  # noqa: F401

    with SectionAnalysis(audio, first.start, first.end) as analysis:
        from backend.motion.checkpoint import model_for
        from backend.motion.generate import MotionExpert
        from backend.motion.outputs import write_outputs
        from backend.motion.pipeline import dance

        expert = MotionExpert.load(model_for(first.style, model_dir))
        if any(take.novelty < 1.0 for take in takes):
            expert.library()  # the figure library (0.05 s to load) while the fork still analyses, not after
        music = music_for(first, analysis.result())  # the beat overrides, for the plots too
        if analysis.cached is not None:
            console.print("music: this section was analysed before; its analysis was read back from the cache "
                          f"({analysis_cache_dir()}; MACE_DANCE_ANALYSIS_CACHE=off analyses anew)", highlight=False)
    for k, (request, folder) in enumerate(zip(takes, folders)):
        bar, task = step_bar(f"dancing to {music.duration:.0f} s of music", request.steps or GENERATION_STEPS)
        with bar:
            motion, report = dance(request, music, expert, lambda stage, i, n: bar.update(task, completed=i, total=n))
        files = write_outputs(motion, music, folder, plots=plots, meta=meta)
        console.print(f"[green]generated[/green] {motion.duration:.1f} s of dance at {motion.fps:g} fps "
                      f"(beta {request.beta}, seed {request.seed}, {report.steps} steps)"
                      + (f": take {k + 1}" if len(takes) > 1 else ""))
        for line in report.lines():
            console.print(line, highlight=False)
        for file in files:
            print(file)


def _generate_on_server(audio: Path, takes: list[DanceRequest], folders: list[Path], server: str, bridge,
                        plots: bool, meta: dict) -> None:
    """Dance each take as one job on `server` and write it as a local run would."""
    from backend.motion.outputs import write_outputs
    from backend.music.features import analyse_section
    from backend.music.overrides import music_for
    from bridge.protocol import motion_from_message

    music = music_for(takes[0], analyse_section(audio, takes[0].start, takes[0].end)) if plots else None  # the plot
    try:
        for k, (request, folder) in enumerate(zip(takes, folders)):
            job = submit_showing_upload(bridge, audio, request)
            handle = f"{job}:{bridge.bridge.tokens.get(job, '')}"  # the id and the owner's token
            console.print(f"job {job} accepted by {server} (Ctrl-C cancels it; if this terminal goes away, "
                          f"fetch it later with: mace-dance fetch {handle} --server {server})")
            msg = follow_job(bridge, job, server, request.steps or GENERATION_STEPS)
            motion = motion_from_message(msg)
            files = write_outputs(motion, music, folder, plots=plots, meta=meta)
            console.print(f"[green]generated on {server}[/green]: {motion.duration:.1f} s of dance"
                          + (f" (seed {request.seed}): take {k + 1}" if len(takes) > 1 else ""))
            for line in msg.get("report") or []:
                console.print(str(line), highlight=False)
            for path in files:
                print(path)
    finally:
        bridge.close()
