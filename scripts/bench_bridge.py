#!/usr/bin/env python
"""Bridge benchmark: what the ZeroMQ round trip adds to a job, compared with calling the same runner in-process.

Rows (same run, same machine):
- round trip of a job whose result is a 60 s motion (1800 frames), client -> server process -> client, vs the same
  runner called directly; the difference is the bridge's overhead;
- trivial jobs per second through the server (submit, persist, run, persist, reply);
- delay between a progress event being made in the runner and the client receiving it;
- 20,000 junk jobs (2,000 with --quick) from one client against a server with the default limits (8 waiting per
  client, its newest 1,000 finished jobs kept): what the store holds afterwards;
- a 60-MB song (12 MB with --quick) uploaded through a 20-Mbit/s link that drops once at 40 %: seconds until the job
  is accepted against the link's own time for the song, and bytes carried per byte of song (goal: once, <= 1.05x);
- 1,100 connections that only send the first bytes of a greeting, held open against a server started under a
  soft open-file limit of 1,024 (a login shell's or a systemd unit's default): a client's trivial job round trip
  beside them against the same server before they came (goal: served, in under 20 ms like any job);
- 8 connections that each announce a 200-MB frame and stall 4 MB short (finding 7 of issue 32: the server went from
  471 MB to 2 GB and held it): the server's resident memory before and after, and how much of each frame it took;
- 200-MB songs (40 MB with --quick) queued behind a running job (finding 7: each queued song added its size to the
  server's memory): the server's resident memory per queued song, against the song's size.
`--quick` keeps it under a minute and ends with `roundtrip_overhead_ms=<x> jobs_per_s=<y>`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge import protocol as P  # noqa: E402
from bridge.client import BridgeClient  # noqa: E402


def sixty_second_motion():
    from rigs.motion import Motion

    rng = np.random.default_rng(0)
    return Motion.from_axis_angle(rng.normal(size=(1800, 24, 3)) * 0.3, rng.normal(size=(1800, 3)),
                                  contacts=rng.uniform(size=(1800, 4)))


class TrivialRunner:
    """A runner with no model: returns a fixed motion (or nothing) and stamps its progress events."""

    def __init__(self):
        self.motion = P.motion_arrays(sixty_second_motion())

    def __call__(self, job, inputs, progress, cancelled):
        end = time.monotonic() + job.options.get("hold", 0)
        while time.monotonic() < end and not cancelled():  # a long job the others queue behind
            time.sleep(0.01)
        if job.options.get("progress"):
            for i in range(int(job.options["progress"])):
                progress(f"t={time.time():.6f}", i, int(job.options["progress"]))
                time.sleep(0.01)
        if job.options.get("payload") == "motion":
            return dict(self.motion[0]), dict(self.motion[1])
        return {"ok": True}, {}


def serve(data_dir: str, port_queue, limits: bool = False, soft_nofile: int = 0) -> None:
    """A server with the trivial runner: without its per-client limits (throughput rows), or with the defaults;
    `soft_nofile` starts it under that soft open-file limit (as `ulimit -Sn` would)."""
    if soft_nofile:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    from backend.server.executors import InProcessExecutor
    from backend.server.server import Server, ServerConfig

    from bridge.checks import integer, text

    # the trivial runner's own options (the real runners' schema would refuse them)
    schemas = {"motion": {"audio_name": text(), "payload": text(), "progress": integer(0, 1000),
                          "hold": integer(0, 600),
                          "seed": integer(0, 2 ** 31)}}
    cfg = ServerConfig(bind="tcp://127.0.0.1:*", data_dir=Path(data_dir))
    if not limits:
        cfg.queue_limit = cfg.client_queue_limit = cfg.jobs_per_client = 100000
    server = Server(cfg, InProcessExecutor(TrivialRunner()), schemas=schemas)
    port_queue.put(server.endpoint)
    server.serve(poll_ms=1)


def wait(client: BridgeClient, accept, seconds: float = 30.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for m in client.tick(timeout_ms=5):
            if accept(m):
                return m
    raise TimeoutError("no answer")


def slow_upload(endpoint: str, megabytes: int) -> tuple[float, float, float]:
    """(seconds until accepted, the link's seconds for the song alone, bytes carried / song bytes) over a throttled
    link (20 Mbit/s) that drops every connection once, 40 % in."""
    from bridge.client import Client
    from tests.link import ThrottledProxy

    rate = 20e6 / 8
    song = np.random.default_rng(0).integers(0, 256, megabytes * 1024 * 1024, dtype=np.uint8).tobytes()
    proxy = ThrottledProxy(endpoint, rate=rate, cut_after=int(0.4 * len(song)))
    client = Client(proxy.endpoint, give_up_after=120)
    try:
        t = time.perf_counter()
        client.bridge.submit_motion(song, "big.wav")
        client._wait(lambda m: m.type == "accepted")
        wall = time.perf_counter() - t
    finally:
        client.close()
        proxy.close()
    return wall, len(song) / rate, proxy.forwarded / len(song)


def flood(jobs: int) -> tuple[int, int, float, int]:
    """One client submitting `jobs` junk jobs as fast as the server takes them, against a server with the default
    limits: (accepted, refused as busy, MB stored afterwards, files stored afterwards)."""
    import os

    tmp = tempfile.mkdtemp(prefix="bench_flood_")
    q = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=serve, args=(tmp, q, True), daemon=True)
    proc.start()
    client = BridgeClient(q.get(timeout=60), timeout=30)
    accepted = busy = 0
    try:
        for seed in range(jobs):
            client.submit_motion(b"\0" * 1024, seed=seed)
            m = wait(client, lambda m: m.type in ("accepted", "error"))
            accepted += m.type == "accepted"
            busy += m.type == "error" and m.get("code") == P.BUSY
    finally:
        client.close()
        proc.terminate()
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp) for f in fs]
    return accepted, busy, sum(os.path.getsize(f) for f in files) / 2 ** 20, len(files)


def hold(connections: int, reps: int) -> tuple[float, float, bool]:
    """(round trip ms before, with `connections` idle greetings held, whether the client was served beside them)."""
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < connections + 256:
        print(f"(the hold row is skipped: the hard open-file limit {hard} cannot hold {connections} connections)")
        return float("nan"), float("nan"), False
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, connections + 1024)), hard))  # our own side
    tmp = tempfile.mkdtemp(prefix="bench_hold_")
    q = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=serve, args=(tmp, q, False, 1024), daemon=True)
    proc.start()
    endpoint = q.get(timeout=60)

    def round_trips() -> float:
        client = BridgeClient(endpoint, timeout=30)
        try:
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                client.submit_motion(b"\0" * 1024)
                wait(client, lambda m: m.type == "result", seconds=60)
                times.append(time.perf_counter() - t)
            return statistics.median(times) * 1000
        finally:
            client.close()

    idle = []
    try:
        before = round_trips()
        host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
        for _ in range(connections):
            conn = socket.create_connection((host, int(port)), timeout=10)
            conn.send(b"\xff" + b"\0" * 8 + b"\x7f")  # the first bytes of a ZMTP greeting, then nothing more
            idle.append(conn)
        try:
            beside, served = round_trips(), True
        except TimeoutError:
            beside, served = float("nan"), False
    finally:
        for conn in idle:
            conn.close()
        proc.terminate()
    return before, beside, served


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def stalled_frames(connections: int, megabytes: int) -> tuple[float, float, float]:
    """(server RSS MB before, after, MB it read per connection before dropping it) for connections that complete
    ZeroMQ's NULL handshake as a DEALER, announce a `megabytes` frame and send all of it but the last 4 MB."""
    import socket
    import struct

    tmp = tempfile.mkdtemp(prefix="bench_stall_")
    q = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=serve, args=(tmp, q, True), daemon=True)
    proc.start()
    host, port = q.get(timeout=60).removeprefix("tcp://").rsplit(":", 1)
    time.sleep(0.5)
    before = _rss_mb(proc.pid)
    greeting = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\x00" + b"\0" * 31
    prop = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
    ready = b"\x05READY" + prop
    block = b"\0" * (1 << 20)
    sent = []
    conns = []
    try:
        for _ in range(connections):
            conn = socket.create_connection((host, int(port)), timeout=10)
            conn.sendall(greeting)
            conn.recv(64)
            conn.sendall(b"\x04" + bytes([len(ready)]) + ready)
            conn.sendall(b"\x02" + struct.pack(">Q", megabytes << 20))  # a long frame's header
            carried = 0
            try:
                for _ in range(megabytes - 4):
                    conn.sendall(block)
                    carried += len(block)
            except OSError:  # the server dropped the connection: it refuses frames over its limit
                pass
            sent.append(carried / 2 ** 20)
            conns.append(conn)
        time.sleep(1.0)
        after = _rss_mb(proc.pid)
    finally:
        for conn in conns:
            conn.close()
        proc.terminate()
    return before, after, statistics.median(sent)


def queued_songs(songs: int, megabytes: int) -> tuple[float, float]:
    """(server RSS MB with one song queued behind a running job, MB more per further queued song) for `songs` songs
    of `megabytes` each, uploaded in chunks as any big song is."""
    tmp = tempfile.mkdtemp(prefix="bench_queued_")
    q = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=serve, args=(tmp, q), daemon=True)
    proc.start()
    client = BridgeClient(q.get(timeout=60), timeout=60)
    rss = []
    try:
        client.submit_motion(b"\0" * 1024, hold=600)
        first = wait(client, lambda m: m.type == "accepted").get("job")
        for i in range(songs):
            song = np.full(megabytes << 20, i, dtype=np.uint8).tobytes()
            client.submit_motion(song, "big.wav", seed=i)
            wait(client, lambda m: m.type == "accepted", 300)
            del song
            time.sleep(0.5)  # the server's loop has let go of the chunks
            rss.append(_rss_mb(proc.pid))
        client.cancel(first)
    finally:
        client.close()
        proc.terminate()
    return rss[0], (rss[-1] - rss[0]) / max(1, songs - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute)")
    args = ap.parse_args()
    reps, jobs = (10, 300) if args.quick else (30, 2000)

    tmp = tempfile.mkdtemp(prefix="bench_bridge_")
    q = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=serve, args=(tmp, q), daemon=True)
    proc.start()
    endpoint = q.get(timeout=60)
    client = BridgeClient(endpoint, timeout=30)
    audio = b"\0" * 1024

    # In-process baseline: the runner plus building the Motion the caller wants.
    runner = TrivialRunner()
    from types import SimpleNamespace

    direct = []
    for _ in range(reps):
        t = time.perf_counter()
        fields, arrays = runner(SimpleNamespace(options={"payload": "motion"}), {}, None, None)
        P.motion_from_message(P.Message("result", fields, arrays))
        direct.append(time.perf_counter() - t)

    remote = []
    for i in range(reps + 2):
        t = time.perf_counter()
        client.submit_motion(audio, payload="motion")
        m = wait(client, lambda m: m.type == "result")
        P.motion_from_message(m)
        if i >= 2:  # first two warm the server up
            remote.append(time.perf_counter() - t)

    t = time.perf_counter()
    for _ in range(jobs):
        client.submit_motion(audio)
    done = 0
    end = time.monotonic() + 120
    while done < jobs and time.monotonic() < end:
        done += sum(1 for m in client.tick(max_messages=1000, timeout_ms=5) if m.type == "result")
    jobs_per_s = done / (time.perf_counter() - t)

    client.submit_motion(audio, progress=20)
    delays = []
    while len(delays) < 20:
        for m in client.tick(timeout_ms=5):
            if m.type == "progress" and str(m.get("stage")).startswith("t="):
                delays.append((time.time() - float(m.get("stage")[2:])) * 1000)
    client.close()
    upload_mb = 12 if args.quick else 60
    up_wall, up_link, up_ratio = slow_upload(endpoint, upload_mb)
    proc.terminate()
    flood_jobs = 2000 if args.quick else 20000
    f_accepted, f_busy, f_mb, f_files = flood(flood_jobs)
    h_before, h_beside, h_served = hold(1100, 5 if args.quick else 20)
    s_before, s_after, s_taken = stalled_frames(8, 200)
    queued_mb = 40 if args.quick else 200
    q_first, q_per = queued_songs(4, queued_mb)

    d_ms = statistics.median(direct) * 1000
    r_ms = statistics.median(remote) * 1000
    overhead = r_ms - d_ms
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'in-process runner + Motion (ms, median)':<44}{d_ms:>12.2f}")
    print(f"{'round trip over loopback, 60 s motion (ms)':<44}{r_ms:>12.2f}")
    print(f"{'bridge overhead (ms) [goal < 20]':<44}{overhead:>12.2f}")
    print(f"{'trivial jobs per second [goal >= 200]':<44}{jobs_per_s:>12.1f}")
    print(f"{'progress event delay (ms, median) [goal < 50]':<44}{statistics.median(delays):>12.2f}")
    print(f"{'progress event delay (ms, max)':<44}{max(delays):>12.2f}")
    print(f"{f'{upload_mb}-MB song at 20 Mbit/s, one drop (s)':<44}{up_wall:>12.2f}")
    print(f"{'  the link alone would take (s)':<44}{up_link:>12.2f}")
    print(f"{'  bytes carried / song bytes [goal <= 1.05]':<44}{up_ratio:>12.3f}")
    print(f"{f'{flood_jobs} junk jobs from one client: accepted':<44}{f_accepted:>12d}")
    print(f"{'  refused as busy':<44}{f_busy:>12d}")
    print(f"{'  stored afterwards, MB [goal: bounded]':<44}{f_mb:>12.1f}")
    print(f"{'  files stored afterwards':<44}{f_files:>12d}")
    print(f"{'job round trip, soft limit 1,024 (ms)':<44}{h_before:>12.2f}")
    print(f"{'  beside 1,100 idle connections (ms)':<44}{h_beside:>12.2f}")
    print(f"{'  served [goal: yes, < 20 ms]':<44}{('yes' if h_served and h_beside < 20 else 'NO'):>12}")
    print(f"{'8 stalled 200-MB frames: server RSS (MB)':<44}{s_before:>12.0f}")
    print(f"{'  after (MB) [goal: within 50 MB]':<44}{s_after:>12.0f}")
    print(f"{'  MB sent per frame before the server hung up':<44}{s_taken:>12.1f}")
    print(f"{f'{queued_mb}-MB songs queued: server RSS, one (MB)':<44}{q_first:>12.0f}")
    print(f"{'  MB more per further song [goal: < 5 % of one]':<44}{q_per:>12.1f}")
    print(f"roundtrip_overhead_ms={overhead:.2f} jobs_per_s={jobs_per_s:.1f}")


if __name__ == "__main__":
    main()
