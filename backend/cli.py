"""The `mace-dance` command line. Subcommands stay thin: they parse options and call into the backend modules."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MACE-Dance: music to 3D dance.")
console = Console(stderr=True, soft_wrap=True)  # soft wrap: an error stays one line

DEFAULT_OUT = Path("out")


class CliError(Exception):
    """An error to show the user as one line."""


def _check_range(flag: str, value: float, what: str, low: float, high: float, closed: bool = True) -> None:
    """Raise a one-line CliError unless low <= value <= high (value < high when not `closed`)."""
    if not (low <= value <= high if closed else low <= value < high):
        raise CliError(f"{flag} must be {what} in [{low:g}, {high:g}{']' if closed else ')'}, got {value}")


@app.command()
def analyse(
    audio: Optional[Path] = typer.Argument(None, help="Audio file (wav/flac/ogg/mp3); the built-in demo song if omitted."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for the results."),
) -> None:
    """Analyse music: 30 fps librosa features, beats and tempo, with a beat plot (PNG)."""
    from backend.music.report import analyse_to_folder

    from backend.music.structure import song_sections

    result = analyse_to_folder(audio, out)
    console.print(f"[green]analysed[/green] {result.source}: {result.features.duration:.1f} s, "
                  f"{result.features.tempo:.1f} BPM, {len(result.features.beat_frames)} beats")
    for path in result.files:
        print(path)
    fps = result.features.fps
    console.print("sections: " + ", ".join(f"{s.label} {s.start / fps:.1f}-{s.end / fps:.1f} s"
                                           for s in song_sections(result.features)))


LOWER_BODY = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
              "right_foot"]


def _seconds_range(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in text.split(":"))
    except ValueError:
        raise CliError(f"a time range is START:END in seconds, got {text!r}") from None
    if not 0 <= a < b:
        raise CliError(f"time range {text!r} must have 0 <= START < END")
    return a, b


@app.command()
def generate(
    audio: Optional[Path] = typer.Argument(None, help="Song (wav/flac/ogg/mp3); the built-in demo song if omitted."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for dance.npz, dance.bvh and the plots."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Model folder (default: the shipped weights/me)."),
    beta: float = typer.Option(0.8, help="Guidance temperature: 1 = unguided; smaller = guided harder (livelier; "
                                         "0.8, the default, scored best on the val songs)."),
    seed: int = typer.Option(0, help="Random seed (same seed, same dance)."),
    steps: int = typer.Option(12, help="DDIM denoising steps (12: as good as 20 on the test songs, 40 % faster)."),
    start: float = typer.Option(0.0, help="Start of the song section to dance to (s)."),
    end: Optional[float] = typer.Option(None, help="End of the section (s); the whole song by default."),
    reference: Optional[Path] = typer.Option(None, help="An existing dance (.npz) to edit."),
    regenerate: Optional[str] = typer.Option(None, help="With --reference: regenerate only START:END (s), keep the rest."),
    keep_joints: Optional[str] = typer.Option(None, help="With --reference: keep these joints (comma list or 'lower-body')."),
    path: Optional[Path] = typer.Option(None, help="Root path to follow: a CSV of x,z metres per frame at 30 fps "
                                                   "(resampled to the song's length)."),
    server: Optional[str] = typer.Option(None, help="Generate on a running `mace-dance serve` (e.g. tcp://127.0.0.1:5555)."),
    lock_feet: bool = typer.Option(True, help="Pin planted feet (off for edits that must keep exact values)."),
    beat_sync: float = typer.Option(1.0, help="Retime the dance onto the music's beats: 0 = as sampled, 1 = matched "
                                              "motion beats land on the beats (skipped for edits and loops)."),
    loop: float = typer.Option(0.0, help="Make a seamless loop, blending this many seconds across the seam (e.g. 1)."),
    in_place: bool = typer.Option(False, "--in-place", help="Dance on the spot; the travel goes to root_motion."),
    edit_guidance: Optional[float] = typer.Option(None, help="Edits: how hard the model is steered to arrive at the "
                                                             "kept frames (reconstruction guidance; 0 = replacement "
                                                             "only, cheaper); the sampler's default if omitted."),
    style: str = typer.Option("auto", help="Dance style: auto (from the music), cha-cha, rumba, tango or waltz "
                                           "(models trained with a style condition)."),
    server_key: Optional[Path] = typer.Option(None, "--server-key", help="With --server: the server's public key "
                                                                         "file (server.key) for a CURVE server."),
    client_key: Optional[Path] = typer.Option(None, "--keys", "--client-key", help="With --server: your secret key "
                                              "file (clients/NAME.key_secret from `mace-dance keys`)."),
    plots: bool = typer.Option(False, "--plots/--no-plots", help="Also write the preview strip and the beat plot "
                                                                 "(PNG, after the dance files)."),
    repeat: str = typer.Option("off", help="off | same | mirror: where the music repeats a section (A', ...), dance "
                                           "its first occurrence's phrase again (mirrored: left and right swapped), "
                                           "with model-made transitions in and out."),
    poses: Optional[Path] = typer.Option(None, "--poses", help="Dance through keyed poses: an .npz with 'frames' "
                                         "(30 fps) or 'times' (s), 'rotations' (K,24,4) or 'axis_angle' (K,24,3), "
                                         "optional 'joints' (K,24) bool and 'root' (K,3)."),
    snap_poses: bool = typer.Option(False, "--snap-poses/--no-snap-poses", help="Move each keyed pose to its "
                                                                                "nearest music beat first."),
    beat_guidance: float = typer.Option(8.0, help="Pull the dance's rhythm onto the song's beats while sampling "
                                                  "(0: the network's own timing; 8 by default)."),
    style_guidance: float = typer.Option(1.0, help="With --style: how hard the asked style is pushed against the "
                                                   "one the song implies (0: one model pass per step; 1 by default)."),
    speed_limit: float = typer.Option(7.5, help="m/s: stretches where a joint moves faster are played more slowly, "
                                                "the calm frames around them a little faster (0: off)."),
    takes: int = typer.Option(1, help="Generate this many takes (seeds seed, seed+1, ...) into OUT/take_1, ...; "
                                      "`mace-dance comp` joins the best parts."),
) -> None:
    """Generate a dance for a song with the Motion Expert (CPU is fine) and write it with previews."""
    from backend.music.demo import write_demo_wav
    from backend.music.features import FPS, analyse_section
    from backend.music.prefetch import SectionAnalysis

    from backend.motion.conditioning import STYLES, StyleError, style_index

    try:
        style_index(style, len(STYLES))  # a misspelt style fails at once, not after the model has loaded
    except StyleError as exc:
        raise CliError(str(exc)) from None
    if repeat not in ("off", "same", "mirror"):
        raise CliError(f"--repeat must be off, same or mirror, got {repeat!r}")
    if not 1 <= takes <= 32:
        raise CliError(f"--takes must be between 1 and 32, got {takes}")
    if poses is not None and not poses.is_file():
        raise CliError(f"{poses}: keyed poses file not found")
    if repeat != "off" and (poses is not None or reference is not None or path is not None):
        raise CliError("--repeat makes repeated sections alike; run it on its own, then edit the result")
    if audio is None:
        audio = out / "demo_song.wav"
        write_demo_wav(audio)
    if server is not None:
        if reference is not None or poses is not None or takes > 1:
            raise CliError("edits (--reference), --poses and --takes run locally for now; drop --server")
        from backend.motion.outputs import write_outputs

        client = _client(server, server_key, client_key)
        try:
            job = client.submit(audio, beta=beta, seed=seed, steps=steps, start=start, end=end, loop=loop,
                                in_place=in_place, lock_feet=lock_feet, beat_sync=beat_sync, style=style,
                                repeat=repeat,
                                # sent only when changed, so a server from before the option still takes the job
                                **({"beat_guidance": beat_guidance} if beat_guidance != 8.0 else {}),
                                **({"style_guidance": style_guidance} if style_guidance != 1.0 else {}),
                                **({"speed_limit": speed_limit} if speed_limit != 7.5 else {}))
            handle = f"{job}:{client.bridge.tokens.get(job, '')}"  # the id and the owner's token
            console.print(f"job {job} accepted by {server} (Ctrl-C cancels it; if this terminal goes away, "
                          f"fetch it later with: mace-dance fetch {handle} --server {server})")
            motion = _follow_job(client, job, server, steps)
        finally:
            client.close()
        music = analyse_section(audio, start, end) if plots else None  # the beat plot needs the music's beats
        files = write_outputs(motion, music, out, plots=plots)
        console.print(f"[green]generated on {server}[/green]: {motion.duration:.1f} s of dance")
        for path in files:
            print(path)
        return
    # The section is decoded and analysed (librosa) in a forked process while this one imports torch and loads the
    # model: the fork comes first, so the child starts without torch.
    with SectionAnalysis(audio, start, end) as analysis:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from backend.motion.beatsync import beat_sync_config
        from backend.motion.editing import combine, keep_frames, keep_joints as keep_joint_constraint
        from backend.motion.generate import MotionExpert
        from backend.motion.outputs import write_outputs
        from backend.motion.sampling import SampleOptions
        from rigs.motion import Motion

        from backend.motion.checkpoint import model_for

        expert = MotionExpert.load(model_for(style, model_dir))
        music = analysis.result()
    constraint = None
    if reference is not None:
        ref = Motion.load_npz(reference)
        if ref.num_frames != music.num_frames:
            ref = ref.resample(FPS)
        if ref.num_frames < music.num_frames:
            raise CliError(f"{reference} has {ref.num_frames} frames; the music section needs {music.num_frames}")
        ref = ref.slice(0, music.num_frames)
        parts = []
        if regenerate:
            a, b = _seconds_range(regenerate)
            frames = np.arange(music.num_frames)
            parts.append(keep_frames(ref, frames[(frames < a * FPS) | (frames >= b * FPS)], expert.normalizer))
        if keep_joints:
            names = LOWER_BODY if keep_joints == "lower-body" else [n.strip() for n in keep_joints.split(",")]
            parts.append(keep_joint_constraint(ref, names, expert.normalizer, with_root="pelvis" in names))
        if not parts:
            raise CliError("--reference needs --regenerate and/or --keep-joints")
        constraint = combine(*parts)
    elif regenerate or keep_joints:
        raise CliError("--regenerate and --keep-joints edit an existing dance: pass it with --reference")
    if path is not None:
        from backend.motion.editing import follow_path

        try:
            pts = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise CliError(f"{path}: not a CSV of x,z positions ({exc})") from None
        if pts.shape[1] != 2 or len(pts) < 2 or not np.isfinite(pts).all():
            raise CliError(f"{path}: needs at least two rows of two finite numbers (x,z in metres)")
        u = np.linspace(0, len(pts) - 1, music.num_frames)
        resampled = np.stack([np.interp(u, np.arange(len(pts)), pts[:, k]) for k in (0, 1)], axis=1)
        walk = follow_path(resampled, expert.normalizer)
        constraint = walk if constraint is None else combine(constraint, walk)
    options = SampleOptions(steps=steps, beta=beta, seed=seed, loop=int(round(loop * FPS)), style=style,
                            beat_guidance=beat_guidance, style_guidance=style_guidance, speed_limit=speed_limit)
    if edit_guidance is not None:
        options.reconstruct = edit_guidance
    try:
        options.validate()
        style_index(style, expert.model.cfg.n_styles)
        sync = beat_sync_config(beat_sync)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    base = ref if reference is not None else None
    for take in range(takes):
        options.seed = seed + take
        folder = out if takes == 1 else out / f"take_{take + 1}"
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"dancing to {music.duration:.0f} s of music", total=steps)
            tick = lambda i, n: bar.update(task, completed=i, total=n)  # noqa: E731
            try:
                result, notes = _choreographed_dance(expert, music, options, constraint, poses, snap_poses, repeat,
                                                     base, lock_feet, sync, tick)
            except ValueError as exc:
                raise CliError(str(exc)) from None
        motion = result.motion
        if path is not None and lock_feet:
            console.print("(the foot lock is off while following a path: it would pull the root off it)")
        if in_place:
            from backend.motion.gameready import in_place as make_in_place

            motion = make_in_place(motion)
        files = write_outputs(motion, music, folder, plots=plots)
        console.print(f"[green]generated[/green] {motion.duration:.1f} s of dance at {motion.fps:g} fps "
                      f"(beta {beta}, seed {options.seed}, {steps} steps)" + (f": take {take + 1}" if takes > 1 else ""))
        for note in notes:
            console.print(note)
        if result.beat_sync is not None:
            r = result.beat_sync
            console.print(f"beat sync: {r.anchors} of {r.motion_beats} motion beats moved onto music beats "
                          f"(playback rate within x{r.max_rate:.2f})")
        if result.foot_lock is not None:
            r = result.foot_lock
            console.print(f"foot lock: planted-ankle slide {r.slide_before:.2f} m -> {r.slide_after:.2f} m "
                          f"over {r.planted_frames} planted frames")
        for file in files:
            print(file)


def _choreographed_dance(expert, music, options, constraint, poses: Optional[Path], snap_poses: bool, repeat: str,
                         base, lock_feet: bool, sync, tick):
    """One dance with the choreography options applied; returns the Generation and lines to tell the user."""
    from dataclasses import replace as copy_with

    from backend.motion.choreography import dance_repeats, keys_constraint, load_keys, snap_to_beats
    from backend.motion.editing import combine
    from backend.music.features import FPS

    notes = []
    if poses is not None:
        if base is None:  # the poses are reached where a dance (on the path, if one is given) stands at their frames
            base = expert.run(music, options, constraint, tick, lock_feet, sync).motion
        keys = load_keys(poses, base, FPS)
        keys.check_within(music.num_frames)
        if snap_poses:
            keys.frames = snap_to_beats(keys.frames, music.beat_frames, music.num_frames)
        keyed = keys_constraint(keys, expert.normalizer, music.num_frames)
        constraint = keyed if constraint is None else combine(constraint, keyed)
        notes.append(f"keyed poses at {', '.join(f'{f / FPS:.2f}' for f in keys.frames)} s"
                     + (" (moved onto beats)" if snap_poses else ""))
    result = expert.run(music, options, constraint, tick, lock_feet, sync)
    if repeat != "off":
        motion, plan = dance_repeats(expert, music, result.motion, options, repeat == "mirror", tick)
        result = copy_with(result, motion=motion)
        for p in plan:
            notes.append(f"repeat: {p.label} at {p.target / FPS:.1f} s dances the phrase from {p.source / FPS:.1f} s "
                         f"again ({p.frames / FPS:.1f} s{', mirrored' if repeat == 'mirror' else ''})")
        if not plan:
            notes.append("repeat: no section of this music repeats an earlier one (see `mace-dance analyse`)")
    return result, notes


def _comp_ranges(uses: list[str], frames: int, takes: int) -> list[tuple[int, int, int]]:
    """`START:END=TAKE` texts (seconds, END may be 'end', TAKE from 1) as (start, stop, take index) frame ranges."""
    from backend.music.features import FPS

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
    from rigs.splice import validate_cuts

    try:
        return validate_cuts(cuts, frames, takes)
    except ValueError as exc:
        raise CliError(f"--use: {exc} (frames at {FPS:g} fps; the song has {frames / FPS:.2f} s)") from None


@app.command()
def comp(
    audio: Path = typer.Argument(..., help="The song the takes dance to."),
    take: list[Path] = typer.Option(..., "--take", help="A take's dance.npz; once per take, numbered from 1 in order."),
    use: list[str] = typer.Option(..., "--use", help="START:END=TAKE: these seconds of the song come from take TAKE "
                                                     "(e.g. --use 0:12=2 --use 12:end=1)."),
    out: Path = typer.Option(Path("out/comp"), "--out", "-o", help="Folder for the comped dance."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Model folder (default: the shipped weights/me)."),
    seed: int = typer.Option(0, help="Seed of the transitions."),
    steps: int = typer.Option(12, help="DDIM steps for the transitions."),
    start: float = typer.Option(0.0, help="Start of the song section the takes dance to (s), as they were made."),
    end: Optional[float] = typer.Option(None, help="End of that section (s)."),
    plots: bool = typer.Option(False, "--plots/--no-plots", help="Also write the preview strip and the beat plot."),
    beat_guidance: float = typer.Option(8.0, help="Beat guidance of the transitions (see generate)."),
) -> None:
    """Join the best parts of several takes; the model dances a short transition across each switch."""
    from backend.motion.choreography import TRANSITION_HALF, transition_constraint
    from backend.motion.generate import MotionExpert
    from backend.motion.outputs import write_outputs
    from backend.motion.sampling import SampleOptions
    from backend.music.features import FPS, analyse_section
    from rigs.motion import Motion, MotionFileError
    from rigs.splice import assemble

    music = analyse_section(audio, start, end)
    motions = []
    for path in take:
        try:
            m = Motion.load_npz(path)
        except (MotionFileError, OSError, ValueError) as exc:
            raise CliError(f"{path}: not a dance file ({exc})") from None
        m = m.resample(FPS, cover=True) if abs(m.fps - FPS) > 1e-6 else m
        if m.num_frames < music.num_frames:
            raise CliError(f"{path} lasts {m.duration:.2f} s; the song section lasts {music.duration:.2f} s")
        motions.append(m.slice(0, music.num_frames))
    cuts = _comp_ranges(use, music.num_frames, len(motions))
    reference, switches = assemble(motions, cuts)
    expert = MotionExpert.load(model_dir)
    options = SampleOptions(steps=steps, seed=seed, beat_guidance=beat_guidance)
    try:
        options.validate()
    except ValueError as exc:
        raise CliError(str(exc)) from None
    motion = expert.generate(music, options, transition_constraint(reference, switches, expert.normalizer))
    files = write_outputs(motion, music, out, plots=plots)
    console.print(f"[green]comped[/green] {len(cuts)} ranges from {len(motions)} takes; model-made transitions of "
                  f"{2 * TRANSITION_HALF / FPS:.1f} s at " + (", ".join(f"{s / FPS:.2f} s" for s in switches) or "no switch"))
    for file in files:
        print(file)


def _client(server: str, server_key: Optional[Path], client_key: Optional[Path]):
    """A blocking client for `server`, with CURVE keys when both key files are given (one line if they are bad)."""
    from backend.server.security import KeysError, load_client_keys, load_public_key
    from bridge.client import Client

    if (server_key is None) != (client_key is None):
        raise CliError("a keyed server needs both --server-key (its server.key) and --keys (your .key_secret)")
    if server_key is None:
        return Client(server)
    for path in (server_key, client_key):
        if not path.is_file():
            raise CliError(f"{path}: key file not found")
    try:
        return Client(server, server_public_key=load_public_key(server_key),
                      client_keys=load_client_keys(client_key))
    except (KeysError, ValueError, OSError) as exc:
        raise CliError(f"{client_key}: not a usable key file ({exc})") from None


def _follow_job(client, job: str, server: str, steps: int):
    """Show a job's progress until its result; Ctrl-C cancels the job on the server."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from bridge.protocol import motion_from_message

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"waiting on {server}", total=steps)
        try:
            msg = client.wait_result(job, lambda m: bar.update(task, completed=m.get("step"), total=m.get("total"),
                                                                description=f"{m.get('stage')} on {server}"))
        except KeyboardInterrupt:
            client.bridge.cancel(job)
            try:
                client.wait_result(job)
            except Exception:  # noqa: BLE001 - the cancellation answer is what we wait for
                pass
            console.print(f"cancelled job {job} on {server}")
            raise typer.Exit(130) from None
    return motion_from_message(msg)


@app.command()
def fetch(
    job: str = typer.Argument(..., help="ID:TOKEN of the job, as `generate --server` printed it."),
    server: str = typer.Option("tcp://127.0.0.1:5555", help="The server that runs the job."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Folder for dance.npz, dance.bvh and the preview."),
    server_key: Optional[Path] = typer.Option(None, "--server-key", help="The server's public key file (server.key) "
                                                                         "for a CURVE server."),
    client_key: Optional[Path] = typer.Option(None, "--keys", "--client-key", help="Your secret key file "
                                              "(clients/NAME.key_secret from `mace-dance keys`)."),
) -> None:
    """Re-attach to a job (after a disconnect or a server restart), follow it and write its dance."""
    from backend.motion.outputs import plot_strip
    from rigs.bvh import write_bvh

    job, _, token = job.partition(":")
    if not token:
        raise CliError(f"give the job as ID:TOKEN, as `generate --server` printed it (only its owner may fetch it)")
    client = _client(server, server_key, client_key)
    try:
        client.bridge.attach(job, token)
        motion = _follow_job(client, job, server, 1)
    finally:
        client.close()
    out.mkdir(parents=True, exist_ok=True)
    for path in (motion.save_npz(out / "dance.npz"), write_bvh(out / "dance.bvh", motion),
                 plot_strip(motion, out / "dance_preview.png")):
        print(path)


@app.command()
def serve(
    bind: str = typer.Option("tcp://127.0.0.1:5555", help="ZeroMQ endpoint; beyond loopback it needs CURVE keys."),
    data_dir: Path = typer.Option(Path(".cache/server"), "--data-dir", help="Job store (results survive restarts)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Model folder (default: the shipped weights/me)."),
    queue_limit: int = typer.Option(16, help="Jobs waiting or running before new submits get 'busy'."),
    keys: Optional[Path] = typer.Option(None, help="CURVE keys folder from `mace-dance keys` (needed beyond loopback)."),
    workers: int = typer.Option(0, help="Worker processes (0: run jobs inside the server process)."),
    ray_actors: int = typer.Option(0, help="Run jobs on this many Ray actors instead (needs `pip install ray`)."),
    ray_address: Optional[str] = typer.Option(None, help="An existing Ray cluster (default: start one on loopback)."),
    video_model_dir: Optional[Path] = typer.Option(None, help="Wan2.2-Animate folder: also run video jobs."),
    video_tiny: bool = typer.Option(False, help="Video jobs on a tiny random pipeline (a dry run)."),
    part_mb: float = typer.Option(8.0, help="Video results stream in parts of at most this many MB."),
) -> None:
    """Run the job server that Blender (or `generate --server`) talks to."""
    import signal

    from backend.server.server import Server, ServerConfig

    server_ = Server(ServerConfig(bind=bind, data_dir=data_dir, model_dir=model_dir, queue_limit=queue_limit,
                                  keys_dir=keys, workers=workers, ray_actors=ray_actors, ray_address=ray_address,
                                  video_model_dir=video_model_dir, video_tiny=video_tiny,
                                  part_bytes=max(1, int(part_mb * 1024 * 1024))))
    signal.signal(signal.SIGTERM, lambda *_: server_.stop())
    signal.signal(signal.SIGINT, lambda *_: server_.stop())
    print(f"listening on {server_.endpoint}", flush=True)
    server_.serve()
    print("stopped", flush=True)


@app.command()
def keys(
    folder: Path = typer.Argument(..., help="Keys folder to create or extend."),
    client: list[str] = typer.Option(["blender"], "--client", help="Client certificate(s) to create."),
) -> None:
    """Create CURVE keys: the server's pair, and one pair per client on the server's allow-list."""
    from backend.server.security import create_keys

    for path in create_keys(folder, client):
        print(path)


@app.command()
def video(
    dance: Path = typer.Argument(..., help="A dance from `mace-dance generate` (.npz)."),
    reference: Path = typer.Argument(..., help="Reference image of the performer (png/jpg)."),
    out: Path = typer.Option(DEFAULT_OUT / "video", "--out", "-o", help="Folder for frames and video.mp4."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Local diffusers-format Wan2.2-Animate folder."),
    tiny: bool = typer.Option(False, help="Use a tiny random pipeline (a dry run of the whole path, no weights)."),
    audio: Optional[Path] = typer.Option(None, help="Song to mux into the MP4."),
    width: int = typer.Option(480, help="Video width."),
    height: int = typer.Option(832, help="Video height."),
    steps: int = typer.Option(20, help="Denoising steps."),
    segment: int = typer.Option(77, help="Frames per segment (4N+1)."),
    dtype: str = typer.Option("bf16", help="bf16, fp16 or fp32 weights."),
    cpu_offload: bool = typer.Option(False, help="Offload idle parts to the CPU (saves GPU memory)."),
    smpl_model: Optional[Path] = typer.Option(None, "--smpl-model", help="Your SMPL model (.npz): keypoints the body "
                                              "hides are left out of the pose frames, body renders go to body/."),
) -> None:
    """Render a dance as video of the person in a reference image (Wan-Animate)."""
    from PIL import Image
    from rich.progress import Progress

    from backend.appearance.pipeline import AppearanceExpert, VideoOptions
    from backend.appearance.video_io import write_frames, write_mp4
    from rigs.motion import Motion

    options = VideoOptions(width=width, height=height, steps=steps, segment_frames=segment)
    _check_video_request(options, model_dir, tiny)
    if steps < 1:
        raise CliError(f"--steps must be at least 1, got {steps}")
    motion = Motion.load_npz(dance)
    if not reference.is_file():
        raise CliError(f"{reference}: reference image not found")
    try:
        ref = Image.open(reference)
        ref.load()
    except OSError as exc:
        raise CliError(f"{reference}: not a readable image ({exc})") from None
    render_options = options
    if tiny:
        render_options = _tiny_render_size(options)
        if render_options is not options:
            console.print(f"tiny dry run: rendering at {render_options.width}x{render_options.height} and scaling the "
                          f"frames to {width}x{height} (random weights: this checks the path, not the look)")
        expert = AppearanceExpert.tiny(options=render_options)
    else:
        expert = AppearanceExpert.from_folder(model_dir, dtype=dtype, cpu_offload=cpu_offload)
    body = _load_body(smpl_model, motion) if smpl_model is not None else None
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("rendering", total=steps)
        result = expert.render(motion, ref, options=render_options,
                               callback=lambda i, n: bar.update(task, completed=i), body=body)
    if render_options is not options:
        result.frames = _scale_frames(result.frames, width, height)
        if result.body is not None:
            result.body = _scale_frames(result.body, width, height)
    frames = write_frames(result.frames, out / "frames")
    mp4 = write_mp4(result.frames, out / "video.mp4", motion.fps, audio)
    if result.body is not None:
        write_frames(result.body, out / "body")
        print(out / "body")
    console.print(f"[green]rendered[/green] {len(frames)} frames; seam colour step {result.seam_drift_before:.1f} -> "
                  f"{result.seam_drift_after:.1f}")
    print(out / "frames")
    print(mp4)


TINY_MAX_PIXELS = 128 * 224  # the dry run's render size cap: the full path at a size a CPU renders in minutes


def _tiny_render_size(options):
    """The request scaled down (keeping its aspect, multiples of 16) to what the tiny dry run renders, or itself."""
    from dataclasses import replace

    if options.width * options.height <= TINY_MAX_PIXELS:
        return options
    scale = (TINY_MAX_PIXELS / (options.width * options.height)) ** 0.5
    snap = lambda v: max(16, int(v * scale) // 16 * 16)  # noqa: E731
    return replace(options, width=snap(options.width), height=snap(options.height))


def _scale_frames(frames, width: int, height: int):
    """(T, h, w, 3) uint8 frames resized to width x height."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BILINEAR)) for f in frames])


def _check_video_request(options, model_dir: Optional[Path], tiny: bool) -> None:
    """Refuse, in one line and before anything is loaded, a size or folder the pipeline cannot take."""
    from backend.appearance.pipeline import AppearanceModelError, check_model_folder
    from backend.appearance.sizes import PipelineLimits, VideoSizeError, check_video_size

    try:
        if tiny:  # the dry run's tiny model is built with a position table that covers the request
            need = PipelineLimits().positions_needed(options.width, options.height, options.segment_frames)
            limits = PipelineLimits(positions=max(need, 1))
        elif model_dir is None:
            raise CliError("give --model-dir (a local Wan2.2-Animate folder) or --tiny for a dry run")
        else:
            check_model_folder(model_dir)
            limits = PipelineLimits.from_folder(model_dir)
        check_video_size(options.width, options.height, options.segment_frames, options.prev_frames, limits)
    except (VideoSizeError, AppearanceModelError) as exc:
        raise CliError(str(exc)) from None


def _load_body(path: Path, motion):
    """The user's SMPL model shaped by the dance's betas, or a one-line error."""
    from rigs.smpl_body import SMPLModelError, load_smpl_body

    try:
        return load_smpl_body(path, motion.betas)
    except SMPLModelError as exc:
        raise CliError(str(exc)) from None


@app.command()
def poses(
    dance: Path = typer.Argument(..., help="A dance from `mace-dance generate` (.npz)."),
    out: Path = typer.Option(DEFAULT_OUT / "poses", "--out", "-o", help="Folder for the pose frames and sheets."),
    width: int = typer.Option(480, help="Frame width (Wan-Animate's 480p portrait by default)."),
    height: int = typer.Option(832, help="Frame height."),
    every: int = typer.Option(15, help="Contact sheet: one frame in this many."),
    columns: int = typer.Option(8, help="Contact sheet columns."),
    smpl_model: Optional[Path] = typer.Option(None, "--smpl-model", help="Your SMPL model (.npz): hide keypoints "
                                              "the body covers and add a sheet of body renders."),
    frames: bool = typer.Option(False, "--frames", help="Also write every pose frame as a PNG."),
) -> None:
    """The pose frames the Appearance Expert would be given (exact projection), as a contact sheet."""
    from PIL import Image

    from backend.appearance.body_render import BodyRenderError, body_keypoints, contact_sheet
    from backend.appearance.projector import Camera, draw_pose_frames, project_motion
    from backend.appearance.video_io import write_frames
    from rigs.motion import Motion

    motion = Motion.load_npz(dance)
    camera = Camera.frontal(width, height)
    body_frames = None
    if smpl_model is not None:
        try:
            uv, visible, rendered = body_keypoints(motion, camera, _load_body(smpl_model, motion))
        except BodyRenderError as exc:
            raise CliError(str(exc)) from None
        body_frames = rendered.color
    else:
        uv, visible = project_motion(motion, camera)
    pose_frames = draw_pose_frames(uv, visible, width, height)
    out.mkdir(parents=True, exist_ok=True)
    sheets = [("pose_sheet.png", pose_frames)] + ([("body_sheet.png", body_frames)] if body_frames is not None else [])
    for name, images in sheets:
        Image.fromarray(contact_sheet(images, columns=columns, every=every)).save(out / name)
        print(out / name)
    if frames:
        print(write_frames(pose_frames, out / "frames")[0].parent)
    hidden = int((~visible).sum())
    console.print(f"{motion.num_frames} pose frames at {width}x{height}; {hidden} keypoints hidden "
                  f"({hidden / visible.size:.1%})")


@app.command()
def bench(
    which: str = typer.Argument(..., help="me, ae, bridge or blender"),
    quick: bool = typer.Option(False, "--quick", help="The short version (under a minute)."),
) -> None:
    """Run a benchmark from scripts/ (ME sampling speed, AE chunk relay, bridge overhead, Blender baking)."""
    import subprocess

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    names = {"me": "bench_me.py", "bridge": "bench_bridge.py", "blender": "bench_blender.py", "ae": "bench_ae.py"}
    if which not in names:
        raise CliError(f"unknown benchmark {which!r}; choose one of {', '.join(names)}")
    raise typer.Exit(subprocess.call([sys.executable, str(scripts / names[which]), *(["--quick"] if quick else [])]))


@app.command("train-ae")
def train_ae_cmd(
    stage: int = typer.Option(..., help="1: pose adapter (kinematic); 2: LoRA on the DiT blocks (aesthetic)."),
    data: Path = typer.Option(..., help="Folder of clips (frames/*.png with poses/*.png or motion.npz)."),
    out: Path = typer.Option(Path("runs/ae"), "--out", "-o", help="Where the trained weights go."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Local diffusers-format Wan2.2-Animate folder."),
    tiny: bool = typer.Option(False, help="A tiny random pipeline (a dry run of the whole path)."),
    steps: int = typer.Option(1000, help="Optimiser steps."),
    lr: float = typer.Option(1e-4, help="Learning rate."),
    rank: int = typer.Option(16, help="LoRA rank (stage 2)."),
    width: int = typer.Option(480, help="Training width."),
    height: int = typer.Option(832, help="Training height."),
    segment: int = typer.Option(77, help="Frames per training segment (4N+1)."),
) -> None:
    """Fine-tune the Appearance Expert (accelerate: run under `accelerate launch` for several GPUs)."""
    from backend.appearance.pipeline import AppearanceExpert, VideoOptions
    from backend.appearance.training import load_clips, train_ae

    if stage not in (1, 2):
        raise CliError("--stage must be 1 or 2")
    options = VideoOptions(width=width, height=height, segment_frames=segment)
    _check_video_request(options, model_dir, tiny)
    if tiny:
        expert = AppearanceExpert.tiny(options=options)
    else:
        expert = AppearanceExpert.from_folder(model_dir, dtype="bf16")
    clips = load_clips(data, width, height, segment)
    print(train_ae(expert.pipe, clips, stage, steps, out, lr=lr, rank=rank, width=width, height=height,
                   log=lambda line: console.print(line)))


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
    Console(width=160).print(ground_truth_table(ds))


@app.command()
def train(
    arch: str = typer.Option("mamba", help="mamba (the Motion Expert) or transformer (the EDGE-style baseline)."),
    out: Path = typer.Option(Path("runs/me"), "--out", "-o", help="Run folder (resumes when it holds a state)."),
    steps: int = typer.Option(20000, help="Optimiser steps."),
    batch: int = typer.Option(32, help="Windows per step."),
    lr: float = typer.Option(4e-4, help="Peak learning rate."),
    window: int = typer.Option(150, help="Frames per training window (30 fps; 150 = 5 s)."),
    warmup: int = typer.Option(500, help="Learning-rate warm-up steps (then cosine down to lr / 10)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Fine-tune this model folder (weights/me, ...) instead of "
                                                             "starting from random weights; its architecture and "
                                                             "normaliser are kept."),
    d_model: int = typer.Option(128, help="Model width."),
    blocks: int = typer.Option(4, help="Denoiser blocks."),
    rhythm: bool = typer.Option(True, "--rhythm/--no-rhythm", help="Dense rhythm inputs (beat phase, beat curve, "
                                                                  "tempo, accents) beside the 35 librosa columns."),
    music_skip: bool = typer.Option(True, "--music-skip/--no-music-skip",
                                    help="Add the music encoding to the motion stream frame by frame."),
    styles: bool = typer.Option(True, "--styles/--no-styles", help="Train with the dance style as a condition "
                                                                  "(dropped 30 % of the time, so 'auto' works)."),
    tempo_augment: bool = typer.Option(True, "--tempo-augment/--no-tempo-augment",
                                       help="Time-stretch music and dance together by 0.8-1.25x."),
    style_alone: float = typer.Option(0.0, "--style-alone", help="With --styles: share of windows trained on their "
                                                                 "style with the music dropped, so the style "
                                                                 "condition carries the style by itself."),
    cross_style: float = typer.Option(0.0, "--cross-style", help="With --styles: share of windows whose dance is set "
                                                                 "to another style's song, beat on beat, so the "
                                                                 "style condition can overrule the music's style."),
    cross_song: float = typer.Option(0.0, "--cross-song", help="Share of windows whose dance is set to another song "
                                                               "of its own style, beat on beat, so a style's "
                                                               "styling belongs to its music, not to one recording "
                                                               "(drawn after --cross-style's share)."),
    cross_place: float = typer.Option(0.0, "--cross-place", help="Share of windows whose dance is set to another "
                                                                 "stretch of its own song, beat on beat, so the "
                                                                 "model cannot answer a stretch of a train song with "
                                                                 "the dance it heard there."),
    disguise: float = typer.Option(0.0, "--disguise", help="Share of windows whose music is transposed and "
                                                           "re-equalised, so the model cannot tell its train songs "
                                                           "apart by key and timbre."),
    drop_block: float = typer.Option(0.0, "--drop-block", help="With --disguise: chance a disguised window's MFCC "
                                                               "block (and, apart, its chroma block) is blanked."),
    audio_variants: int = typer.Option(0, "--audio-variants", help="Other recordings rendered of each train song "
                                                                   "(re-pitched, re-equalised, analysed anew; cached), "
                                                                   "so the model cannot know a song by its sound."),
    variant_share: float = typer.Option(0.8, "--variant-share", help="With --audio-variants: share of windows that "
                                                                     "hear one of the variants."),
    balance_styles: Optional[bool] = typer.Option(None, "--balance-styles/--no-balance-styles",
                                                  help="Draw windows of rare styles more often (style share ~ sqrt "
                                                       "of its frames); default: only with --styles."),
    prediction: Optional[str] = typer.Option(None, "--prediction", help="What the network's last layer predicts: x0 "
                                                                       "or v (the noisy input then reaches the output "
                                                                       "directly); default: --init's, else x0."),
    noisy_skip: bool = typer.Option(False, "--noisy-skip", help="Give the x0 head a learned, gated skip of the noisy "
                                                               "input (zero at first on an --init model), so nearly "
                                                               "clean steps keep the quick small motions."),
    snr_gamma: float = typer.Option(0.0, "--snr-gamma", help="Weigh each window's loss by its signal-to-noise ratio "
                                                           "clipped to [1, GAMMA], so nearly clean steps learn the "
                                                           "quick small motions (0: every noise level alike)."),
    foot_loss: float = typer.Option(0.5, "--foot-loss", help="Weight of EDGE's foot-contact loss (feet the data "
                                                             "has planted must not move)."),
    rhythm_loss: float = typer.Option(0.0, "--rhythm-loss", help="Weight of the speed-spectrum loss that asks the "
                                                                 "motion's rhythm to have the real dance's periods."),
    threads: int = typer.Option(0, help="CPU threads (0: all)."),
    guidance: str = typer.Option("auto", help="gft (one pass at sampling), cfg (EDGE's two passes); auto: gft for "
                                              "mamba, cfg for the transformer baseline."),
    data_dir: Path = typer.Option(Path("../shared/data"), "--data", help="The shared data folder."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache", help="Cache folder (default: .cache/ in the repo)."),
) -> None:
    """Train the denoiser on the train split (CPU or GPU; torchrun-ready), with EMA and resumable checkpoints."""
    from backend.data.dataset import DanceDataset, default_cache_dir
    from backend.motion.conditioning import STYLES
    from backend.motion.diffusion import LossWeights
    from backend.motion.model import DenoiserConfig
    from backend.motion.training import TrainConfig, train as run_training

    if guidance == "auto":
        guidance = "gft" if arch == "mamba" else "cfg"
    if guidance not in ("gft", "cfg"):
        raise CliError(f"guidance must be gft, cfg or auto, got {guidance!r}")
    if window < 16:
        raise CliError(f"--window must be at least 16 frames, got {window}")
    _check_range("--foot-loss", foot_loss, "a weight", 0, 100, closed=False)
    _check_range("--rhythm-loss", rhythm_loss, "a weight", 0, 100, closed=False)
    if prediction not in (None, "x0", "v"):
        raise CliError(f"--prediction must be x0 or v, got {prediction!r}")
    if snr_gamma != 0 and not 1 <= snr_gamma <= 1000:
        raise CliError(f"--snr-gamma must be 0 (off) or in [1, 1000], got {snr_gamma}")
    for flag, share in (("--style-alone", style_alone), ("--cross-style", cross_style), ("--cross-song", cross_song),
                        ("--cross-place", cross_place)):
        _check_range(flag, share, "a share", 0, 1, closed=False)  # 1 would leave no window of its own
    for flag, share in (("--disguise", disguise), ("--drop-block", drop_block), ("--variant-share", variant_share)):
        _check_range(flag, share, "a share", 0, 1)
    _check_range("--audio-variants", audio_variants, "a count", 0, 12)
    if init is not None and not (init / "config.json").is_file():
        raise CliError(f"--init {init}: not a model folder (needs model.safetensors and config.json)")
    cfg = TrainConfig(out=str(out), arch=arch, steps=steps, batch=batch, lr=lr, window=window, warmup=warmup,
                      threads=threads, guidance=guidance, init=str(init) if init else "",
                      tempo_augment=tempo_augment, balance_styles=balance_styles,
                      losses=LossWeights(foot=foot_loss, rhythm=rhythm_loss, snr_gamma=snr_gamma),
                      p_style_alone=style_alone, prediction=prediction or "",
                      noisy_skip=noisy_skip,
                      model=DenoiserConfig(arch=arch, d_model=d_model, n_blocks=blocks, rhythm=rhythm,
                                           music_skip=music_skip, n_styles=len(STYLES) - 1 if styles else 0,
                                           style_film=styles))
    cfg.augment.p_cross_style = cross_style
    cfg.augment.p_cross_song = cross_song
    cfg.augment.p_cross_place = cross_place
    cfg.augment.p_disguise = disguise
    cfg.augment.p_drop_block = drop_block
    cfg.augment.p_variant = variant_share if audio_variants else 0.0
    ds = DanceDataset(data_dir, cache_dir or default_cache_dir(), progress=True)
    train_clips = ds.split("train")
    variants = None
    if audio_variants:
        from backend.data.audio_variants import clip_variants

        print(f"audio variants: {audio_variants} per train song (rendered once, then cached)")
        variants = {c.name: clip_variants(ds, c, audio_variants) for c in train_clips}
    folder = run_training(cfg, train_clips, variants=variants)
    print(folder)


def main() -> None:
    """Entry point: run the app and turn expected failures into one clear line."""
    from backend.runtime import tune_allocator

    debug = bool(os.environ.get("MACE_DANCE_DEBUG"))
    tune_allocator()
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
