"""`mace-dance generate` and `comp`: a DanceRequest built from the options, danced here or on a server."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from backend.cli.common import DEFAULT_OUT, CliError, client, console, follow_job, seconds_range, step_bar
from backend.cli.request_options import request_from_options, with_request_options
from bridge.request import SONG_END_SLACK, DanceRequest, Edit, RequestError, default_of

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

    from backend.music.audio import song_meta

    try:
        request_from_options(options)  # a misspelt or out-of-range option fails at once, before any file is read
        request = request_from_options(options, **_edit_parts(reference, regenerate, keep_joints, path, poses,
                                                              snap_poses))
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
        files = write_outputs(motion, music, folder, plots=plots, meta=meta)
        console.print(f"[green]generated[/green] {motion.duration:.1f} s of dance at {motion.fps:g} fps "
                      f"(beta {request.beta}, seed {request.seed}, {request.steps} steps)"
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
            files = write_outputs(motion, music, folder, plots=plots, meta=meta)
            console.print(f"[green]generated on {server}[/green]: {motion.duration:.1f} s of dance"
                          + (f" (seed {request.seed}): take {k + 1}" if len(takes) > 1 else ""))
            for line in msg.get("report") or []:
                console.print(str(line), highlight=False)
            for path in files:
                print(path)
    finally:
        bridge.close()


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
            motion = motion_from_message(follow_job(bridge, bridge.submit_request(audio, request), server, steps))
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
