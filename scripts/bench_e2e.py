#!/usr/bin/env python
"""The main job end to end, as a user waits for it, beside the sampler alone.

For 20 s, 60 s and 3-min sections of a real song (a 90-s mp3 cut from the paired data for the 20/60 s rows, the whole
song for the 3-min row):
- CLI cold: `mace-dance generate SONG --start 0 --end S` in a new process (dance.npz + dance.bvh), first call, with
  an empty analysis cache (backend/music/analysis_cache.py; on, as a user's is);
- CLI warm: the same command again on a song the cache has not seen (the same audio under another tag each time; file
  caches and numba's cache warm; still a new process);
- CLI, same song again: the first song again, its section's analysis read back from the cache;
- server: a `mace-dance serve` started once, one warm-up job, then a job from submit to result (model and librosa
  already loaded) on a song the server has not analysed (the same audio under another tag each time: the server keeps
  the analyses of the last songs it danced, backend/server/analysis_memo.py);
- server, same song again: another take (another seed) of the song just danced, its analysis kept from the job before;
- sampler: the DDIM sampling of the same section in-process after a warm-up, at the default dance's step count
  (6: novelty 0, a dance from the figure library);
- stages: one fresh process runs the CLI's steps one after another with a clock around each (imports of torch and
  the backend, imports of the music analysis, decode, features, model load, then the dance pipeline's own stages as
  its report times them: sample, root flips, beat sync, foot lock, ..., speed limit; writing).
- 10 min: one warm server job over a whole 10-min song (the long song looped), in one pass;
- busy: the 60-s CLI run again (analysis cache off) beside 0, 1 (and 2) CPU-bound spinner processes, with the thread
  policy
  (`backend/cpu_threads.py`) and with every core as torch's default would (MACE_DANCE_THREADS=<cores>).
Ratios are against the sampler, or the idle CLI, measured in this run. `--quick` (60 s only, one run each) ends with
exactly `e2e_cli_60s_s=<x> e2e_server_60s_s=<y> sampler_60s_s=<z> e2e_cli_60s_busy_s=<w>` (w: one spinner beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MACE = [sys.executable, "-m", "backend.cli"]


def stages(song: str, seconds: float, out: str) -> dict:
    """The CLI's steps in this process with a clock around each (run in a fresh process)."""
    clock = {}
    t = time.perf_counter()
    import torch  # noqa: F401

    from backend.motion.generate import MotionExpert
    from backend.motion.outputs import write_outputs
    from backend.motion.pipeline import dance
    from bridge.request import DanceRequest
    clock["imports (torch, backend)"] = time.perf_counter() - t
    t = time.perf_counter()
    from backend.music import librosa_features  # noqa: F401 - librosa's features without librosa
    from backend.music.downbeat_net import import_madmom

    import_madmom()
    clock["imports (music analysis)"] = time.perf_counter() - t
    from backend.music.audio import load_audio
    from backend.music.features import SECTION_MARGIN, SR, extract_features

    t = time.perf_counter()
    y = load_audio(song, SR, start=0.0, end=seconds + SECTION_MARGIN)
    clock["decode + resample"] = time.perf_counter() - t
    t = time.perf_counter()
    music = extract_features(y, SR).slice(0, int(seconds * 30))
    clock["features"] = time.perf_counter() - t
    t = time.perf_counter()
    me = MotionExpert.load()
    clock["model load"] = time.perf_counter() - t
    motion, report = dance(DanceRequest(end=seconds), music, me)  # the product's stages, each with its clock
    for stage in report.stages:
        clock[stage.name.replace("_", " ")] = clock.get(stage.name.replace("_", " "), 0.0) + stage.seconds
    t = time.perf_counter()
    write_outputs(motion, music, Path(out), plots=False)
    clock["writing (npz, bvh)"] = time.perf_counter() - t
    return clock


def cut_song(src: Path, seconds: float, dst: Path) -> Path:
    """The first `seconds` of a song as an mp3 (ffmpeg from imageio-ffmpeg)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), "-t", str(seconds),
                    "-c:a", "libmp3lame", "-b:a", "192k", str(dst)], check=True)
    return dst


def retagged(src: Path, tag: str, dst: Path) -> Path:
    """The same audio stream under another comment tag: other bytes, so a server has not heard this file yet."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(src), "-c", "copy",
                    "-metadata", f"comment={tag}", str(dst)], check=True)
    return dst


def loop_song(src: Path, seconds: float, dst: Path) -> Path:
    """A song of `seconds`, the source played again and again (a 10-min song from a 3-min one)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(src), "-vn",
                    "-t", str(seconds), "-c:a", "libmp3lame", "-b:a", "192k", str(dst)], check=True)
    return dst


def cli_run(song: Path, seconds: float, out: Path, threads: str = "auto", cache: Path | str = "off"
            ) -> tuple[float, int]:
    """Wall seconds and peak RSS (KB) of one `mace-dance generate` process (`threads`: MACE_DANCE_THREADS; `cache`:
    the analysis cache's folder, or "off")."""
    cmd = ["/usr/bin/time", "-f", "%M", *MACE, "generate", str(song), "--start", "0", "--end", str(seconds),
           "-o", str(out)]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "MACE_DANCE_THREADS": threads, "MACE_DANCE_ANALYSIS_CACHE": str(cache)})
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"generate failed: {res.stderr[-800:]}")
    rss = int(res.stderr.strip().splitlines()[-1])
    return wall, rss


class Spinners:
    """`n` CPU-bound processes beside the benchmark: what Blender playing back or baking is to the backend."""

    def __init__(self, n: int):
        code = "import sys; print('spinning', flush=True)\nwhile True: pass"
        self.procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
                      for _ in range(n)]
        for proc in self.procs:
            proc.stdout.readline()  # running before the clock starts

    def __enter__(self) -> "Spinners":
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


def busy_rows(song: Path, seconds: float, out: Path, repeats: int, spinners: list[int]) -> list[tuple]:
    """CLI wall seconds beside 0, 1, 2 spinners, with the thread policy and with every core (the old default)."""
    cores = str(os.cpu_count() or 1)
    rows = []
    for n in spinners:
        with Spinners(n):
            auto = sorted(cli_run(song, seconds, out)[0] for _ in range(repeats))[repeats // 2]
            fixed = sorted(cli_run(song, seconds, out, cores)[0] for _ in range(repeats))[repeats // 2]
        rows.append((n, auto, fixed))
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A `mace-dance serve` on a free loopback port with a scratch job store."""

    def __init__(self, store: Path):
        from bridge.client import Client

        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen([*MACE, "serve", "--bind", self.endpoint, "--data-dir", str(store)], cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while True:
            try:
                client = Client(self.endpoint, give_up_after=5.0)
                client.hello()
                client.close()
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)

    def job(self, song: Path, seconds: float, seed: int = 0) -> float:
        """Seconds from submit to result of one motion job."""
        from bridge.client import Client
        from bridge.request import DanceRequest

        client = Client(self.endpoint, give_up_after=120.0)
        try:
            t = time.perf_counter()
            job = client.submit_request(song, DanceRequest(end=seconds, seed=seed))
            client.wait_result(job)
            return time.perf_counter() - t
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def sampler_time(song: Path, seconds: float, repeats: int) -> float:
    """Median seconds of the sampler alone on the section (in-process, after a warm-up)."""
    import statistics

    import numpy as np
    import torch

    from backend.motion.checkpoint import torch_threads
    from backend.motion.conditioning import music_inputs
    from backend.motion.generate import MotionExpert
    from backend.motion.sampling import SampleOptions, sample
    from backend.music.features import analyse_section
    from bridge.request import LIBRARY_START, LIBRARY_STEPS

    torch_threads()
    me = MotionExpert.load()
    music = analyse_section(song, 0.0, seconds)
    cond = torch.from_numpy(me.normalizer.norm_music(music_inputs(music, me.model.cfg.rhythm)))
    sample(me.model, cond[:150], SampleOptions(steps=2))
    walls = []
    # the default dance's passes: novelty 0, from a dance of the figure library noised to LIBRARY_START (its mean pose
    # here: the passes cost the same whatever the init)
    init = np.zeros((len(cond), me.model.cfg.motion_dim), np.float32)
    options = SampleOptions(steps=LIBRARY_STEPS, start=LIBRARY_START, init=init, novelty=0.0)
    for _ in range(repeats):
        t = time.perf_counter()
        sample(me.model, cond, options)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 s only, one run each")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--stages", nargs=3, metavar=("SONG", "SECONDS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stages:
        print(json.dumps(stages(args.stages[0], float(args.stages[1]), args.stages[2])))
        return
    folder = args.data / "music2dance_tang2018"
    songs = sorted(folder.glob("DANCE_*/audio.mp3"), key=lambda p: p.stat().st_size)
    if not songs:
        print(f"skipped: no paired songs under {folder} (the benchmark needs a real mp3)")
        return
    from rich.console import Console
    from rich.table import Table

    import soundfile as sf

    long_song = next((s for s in songs if sf.info(str(s)).duration >= 200), songs[-1])
    lengths = [60.0] if args.quick else [20.0, 60.0, 180.0]
    repeats = 1 if args.quick else max(1, args.repeats)
    tmp = Path(tempfile.mkdtemp(prefix="bench_e2e_"))
    rows, stage_rows, busy, ten = [], {}, [], float("nan")
    try:
        song90 = cut_song(long_song, 90.0, tmp / "song90.mp3")
        server = ServerProcess(tmp / "store")
        try:
            for seconds in lengths:
                song = song90 if seconds <= 60 else long_song
                cache = tmp / f"analysis{seconds:g}"
                fresh = [retagged(song, f"take {k}", tmp / f"fresh{k}{song.suffix}") for k in range(repeats)]
                cold, rss = cli_run(song, seconds, tmp / "cold", cache=cache)
                warm = sorted(cli_run(f, seconds, tmp / "warm", cache=cache)[0] for f in fresh)[repeats // 2]
                rerun = sorted(cli_run(song, seconds, tmp / "rerun", cache=cache)[0] for _ in range(repeats))[repeats // 2]
                server.job(song, seconds)  # warm-up: the first job loads the model and librosa
                served = sorted(server.job(f, seconds) for f in fresh)[repeats // 2]
                again = sorted(server.job(fresh[-1], seconds, seed=k + 1) for k in range(repeats))[repeats // 2]
                sampler = sampler_time(song, seconds, repeats)
                rows.append((seconds, cold, warm, rerun, served, again, sampler, rss))
                res = subprocess.run([sys.executable, __file__, "--stages", str(song), str(seconds),
                                      str(tmp / "stages")], capture_output=True, text=True, cwd=REPO)
                stage_rows[seconds] = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
            busy = busy_rows(song90, 60.0, tmp / "busy", repeats, [0, 1] if args.quick else [0, 1, 2])
            if not args.quick:  # one pass over 10 min of a song on the warm server (the song a little longer)
                try:
                    ten = server.job(loop_song(long_song, 605.0, tmp / "song605.mp3"), 600.0)
                except Exception as exc:  # noqa: BLE001 - the rows above still print
                    print(f"10-min song: {exc}")
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    console = Console(width=150)
    table = Table(title=f"end to end on {os.cpu_count()} cores ({long_song.parent.name}; median of {repeats})")
    for col in ("section", "CLI cold s", "CLI warm s", "CLI, same song again s", "server job s",
                "server, same song again s", "sampler s", "CLI / sampler", "server / sampler", "CLI peak RSS MB"):
        table.add_column(col, justify="right")
    for seconds, cold, warm, rerun, served, again, sampler, rss in rows:
        table.add_row(f"{seconds:g} s", f"{cold:.2f}", f"{warm:.2f}", f"{rerun:.2f}", f"{served:.2f}", f"{again:.2f}",
                      f"{sampler:.2f}", f"{warm / sampler:.2f}x", f"{served / sampler:.2f}x", f"{rss / 1024:.0f}")
    console.print(table)
    stage_table = Table(title="stages of one CLI run, one after another (no overlap; the CLI overlaps the librosa "
                              "imports + features with the torch imports)")
    stage_table.add_column("stage")
    for seconds in stage_rows:
        stage_table.add_column(f"{seconds:g} s", justify="right")
    names = list(next(iter(stage_rows.values()), {}).keys())
    for name in names:
        stage_table.add_row(name, *[f"{stage_rows[s].get(name, float('nan')):.2f}" for s in stage_rows])
    console.print(stage_table)
    busy_table = Table(title=f"60-s CLI beside CPU-bound processes (threads: the policy vs all {os.cpu_count()} "
                             "cores, MACE_DANCE_THREADS)")
    for col in ("spinners", "policy s", "all cores s", "policy / idle", "all cores / idle"):
        busy_table.add_column(col, justify="right")
    idle = busy[0][1]
    for n, auto, fixed in busy:
        busy_table.add_row(str(n), f"{auto:.2f}", f"{fixed:.2f}", f"{auto / idle:.2f}x", f"{fixed / idle:.2f}x")
    console.print(busy_table)
    if not args.quick:
        print(f"a 10-min song in one pass, warm server job: {ten:.2f} s [goal <= 20]")
    if len(rows) > 1:
        by = {r[0]: r for r in rows}
        print(f"3-min section / 60-s section, CLI warm: {by[180.0][2] / by[60.0][2]:.2f}x")
    r60 = next(r for r in rows if r[0] == 60.0)
    print(f"e2e_cli_60s_s={r60[2]:.2f} e2e_server_60s_s={r60[4]:.2f} sampler_60s_s={r60[6]:.2f} "
          f"e2e_cli_60s_busy_s={busy[1][1]:.2f}")


if __name__ == "__main__":
    main()
