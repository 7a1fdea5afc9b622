"""Commands about the job server: serve, keys, fetch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from backend.cli.common import DEFAULT_OUT, CliError, client, client_key_option, follow_job, server_key_option


def fetch(
    job: str = typer.Argument(..., metavar="ID:TOKEN", help="The job, as `generate --server` printed it."),
    server: str = typer.Option("tcp://127.0.0.1:5555", metavar="ADDRESS", help="The server that runs the job."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", metavar="FOLDER",
                             help="Folder for dance.npz, dance.bvh and the preview."),
    server_key: Optional[Path] = server_key_option(),
    client_key: Optional[Path] = client_key_option(),
) -> None:
    """Re-attach to a job (after a disconnect or a server restart), follow it and write its dance."""
    from backend.motion.outputs import plot_strip
    from rigs.bvh import write_bvh

    job, _, token = job.partition(":")
    if not token:
        raise CliError("give the job as ID:TOKEN, as `generate --server` printed it (only its owner may fetch it)")
    from bridge.protocol import motion_from_message

    bridge = client(server, server_key, client_key)
    try:
        bridge.bridge.attach(job, token)
        motion = motion_from_message(follow_job(bridge, job, server, 1))
    finally:
        bridge.close()
    out.mkdir(parents=True, exist_ok=True)
    for path in (motion.save_npz(out / "dance.npz"), write_bvh(out / "dance.bvh", motion),
                 plot_strip(motion, out / "dance_preview.png")):
        print(path)


def serve(
    bind: str = typer.Option("tcp://127.0.0.1:5555", metavar="ADDRESS",
                             help="Where the server listens (a ZeroMQ address); anything but this machine "
                                  "(127.0.0.1) needs --keys."),
    data_dir: Path = typer.Option(Path(".cache/server"), "--data-dir", metavar="FOLDER",
                                  help="Where jobs and results are kept (they survive a restart)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", metavar="FOLDER",
                                             help="Model folder (default: the shipped weights/me)."),
    queue_limit: int = typer.Option(16, metavar="N", help="Jobs waiting or running before new ones are turned away "
                                                          "as 'busy'."),
    keys: Optional[Path] = typer.Option(None, metavar="FOLDER",
                                        help="Keys folder from `mace-dance keys`: only its clients may connect, "
                                             "encrypted (needed beyond this machine)."),
    workers: int = typer.Option(0, metavar="N", help="Jobs run side by side in this many worker processes (0: one "
                                                     "at a time inside the server)."),
    ray_actors: int = typer.Option(0, metavar="N", help="Run jobs on this many Ray actors instead (needs `pip "
                                                        "install ray`)."),
    ray_address: Optional[str] = typer.Option(None, metavar="ADDRESS",
                                               help="An existing Ray cluster (default: start one on this machine)."),
    video_model_dir: Optional[Path] = typer.Option(None, metavar="FOLDER",
                                                   help="Also take video jobs (the add-on's Render Performer "
                                                        "Video), with this Wan2.2-Animate folder (needs the ae "
                                                        "extra)."),
    video_tiny: bool = typer.Option(False, metavar="", help="Also take video jobs, on tiny random weights: a dry "
                                                            "run whose frames are noise (needs the ae extra)."),
    part_mb: float = typer.Option(8.0, metavar="MB", help="Video results are sent in parts of at most this many "
                                                          "MB."),
    keep: float = typer.Option(7.0, metavar="DAYS", help="Days a finished job's result (and its song) is kept for "
                                                         "fetching."),
    client_queue: int = typer.Option(8, metavar="N", help="Jobs one client key may have waiting at once (with "
                                                          "--keys)."),
    jobs_per_client: int = typer.Option(1000, metavar="N", help="Finished jobs kept per client key (its oldest go "
                                                                "first)."),
) -> None:
    """Run the job server that the Blender add-on (or `generate --server`) sends its dances to make."""
    import signal

    from backend.server.server import Server, ServerConfig

    for name, value, low, least in (("--keep", keep, 1 / 24, "0.042 days (an hour)"),
                                    ("--queue-limit", queue_limit, 1, "1"), ("--client-queue", client_queue, 1, "1"),
                                    ("--jobs-per-client", jobs_per_client, 1, "1")):
        if not value >= low:  # also refuses NaN
            raise CliError(f"{name} must be at least {least}, got {value:g}")
    server_ = Server(ServerConfig(bind=bind, data_dir=data_dir, model_dir=model_dir, queue_limit=queue_limit,
                                  keys_dir=keys, workers=workers, ray_actors=ray_actors, ray_address=ray_address,
                                  video_model_dir=video_model_dir, video_tiny=video_tiny,
                                  part_bytes=max(1, int(part_mb * 1024 * 1024)), result_ttl=keep * 24 * 3600,
                                  client_queue_limit=client_queue, jobs_per_client=jobs_per_client))
    signal.signal(signal.SIGTERM, lambda *_: server_.stop())
    signal.signal(signal.SIGINT, lambda *_: server_.stop())
    print(f"listening on {server_.endpoint}", flush=True)
    server_.serve()
    print("stopped", flush=True)


def keys(
    folder: Path = typer.Argument(..., metavar="FOLDER", help="Keys folder to create or extend."),
    client: list[str] = typer.Option(["blender"], "--client", metavar="NAME",
                                     help="A client to let in (one key pair each); give --client once per client."),
) -> None:
    """Create the keys that let only chosen clients use a server, encrypted (CURVE: a pair each for it and them)."""
    from backend.server.security import create_keys

    for path in create_keys(folder, client):
        print(path)
