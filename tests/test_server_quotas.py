"""One client cannot fill the server: its waiting jobs are capped, its stored jobs keep only the newest, finished
jobs go after `--keep` (issue 32, finding 7)."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backend.server.jobs import DONE
from backend.server.security import create_keys, load_client_keys, load_public_key
from backend.server.server import Server, ServerConfig
from bridge import protocol as P
from bridge.client import BridgeFailure, Client
from tests.test_uploads import Recorder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_server(tmp_path):
    create_keys(tmp_path / "keys", ["anna", "ben"])
    server = Server(ServerConfig(bind="tcp://127.0.0.1:*", data_dir=tmp_path / "server", client_queue_limit=2,
                                 jobs_per_client=3, result_ttl=3600, keys_dir=tmp_path / "keys"), Recorder())
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop()
    thread.join(10)


def _client(server, name: str) -> Client:
    keys = Path(server.cfg.keys_dir)
    return Client(server.endpoint, server_public_key=load_public_key(keys / "server.key"),
                  client_keys=load_client_keys(keys / "clients" / f"{name}.key_secret"))


def _submit(client: Client, seed: int) -> str:
    client.bridge.submit_motion(b"RIFF" + bytes(100), "song.wav", seed=seed)
    return client._wait(lambda m: m.type == "accepted").get("job")


def test_one_client_may_keep_only_so_many_jobs_waiting(small_server):
    anna, ben = _client(small_server, "anna"), _client(small_server, "ben")
    try:
        _submit(anna, 1), _submit(anna, 2)
        with pytest.raises(BridgeFailure, match="this client has 2 jobs waiting, the most one client may") as busy:
            _submit(anna, 3)
        assert busy.value.code == P.BUSY
        assert _submit(ben, 1)  # another key still gets in
    finally:
        anna.close()
        ben.close()


def test_a_flood_of_jobs_keeps_only_the_clients_newest_and_old_results_expire(small_server):
    store = small_server.store
    client = _client(small_server, "anna")
    try:
        ids = []
        for seed in range(6):
            ids.append(_submit(client, seed))
            job = store.get(ids[-1])
            job.state = DONE  # as if it had run: finished jobs no longer count as waiting
            store.save(job)
    finally:
        client.close()
    kept = [j for j in ids if store.get(j) is not None]
    assert kept == ids[-3:]  # the newest three; the older ones and their folders are gone
    assert all(not (store.root / j).exists() for j in ids[:-3])
    assert store.expire(now=time.time() + 2 * 3600) == ids[-3:]  # `--keep` of an hour, two hours later


def _keyed_server(tmp_path, name: str) -> tuple[Server, threading.Thread]:
    create_keys(tmp_path / name, ["anna"])
    server = Server(ServerConfig(bind="tcp://127.0.0.1:*", data_dir=tmp_path / f"{name}-data",
                                 keys_dir=tmp_path / name), Recorder())
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    return server, thread


def test_keyed_servers_in_one_process_each_check_their_own_keys(tmp_path):
    """CI stop 44: a keyed server's ZAP handler sat at zmq's one inproc address in the shared context, so a second
    keyed server in the process (or one started as the last one closed) failed with 'Address already in use'."""
    first, t1 = _keyed_server(tmp_path, "one")
    second, t2 = _keyed_server(tmp_path, "two")
    try:
        for server in (first, second):
            client = _client(server, "anna")
            try:
                assert _submit(client, 1)
            finally:
                client.close()
        # anna of server one is a stranger to server two: each handler reads its own allow-list
        stranger = Client(second.endpoint, server_public_key=load_public_key(tmp_path / "two" / "server.key"),
                          client_keys=load_client_keys(tmp_path / "one" / "clients" / "anna.key_secret"), timeout=1.5)
        try:
            with pytest.raises(BridgeFailure, match="not on the server's allow-list"):
                _submit(stranger, 2)
        finally:
            stranger.close()
    finally:
        for server, thread in ((first, t1), (second, t2)):
            server.stop()
            thread.join(10)
            assert not thread.is_alive()
    for _ in range(5):  # closing and starting at once, over and over, never finds the address taken
        server, thread = _keyed_server(tmp_path, "two")
        server.stop()  # (even before serve() has begun: it is not undone)
        thread.join(10)
        assert not thread.is_alive()


def test_a_keyed_server_that_cannot_bind_leaves_no_thread_behind_and_stop_before_serve_holds(tmp_path):
    """A port in use fails the start with zmq's error, and the ZAP thread and the workers it had started go with it;
    a stop() that comes before serve() is not undone by it; a keyed inproc server is refused in a sentence."""
    import zmq

    from backend.server.server import ServerConfigError

    first, thread = _keyed_server(tmp_path, "one")
    try:
        threads = threading.active_count()
        with pytest.raises(zmq.ZMQError):
            Server(ServerConfig(bind=first.endpoint, data_dir=tmp_path / "busy", keys_dir=tmp_path / "one"), Recorder())
        assert threading.active_count() == threads  # the failed server's authenticator thread is gone
    finally:
        first.stop()
        thread.join(10)
    early = Server(ServerConfig(bind="tcp://127.0.0.1:*", data_dir=tmp_path / "early", keys_dir=tmp_path / "one"),
                   Recorder())
    early.stop()
    done = threading.Thread(target=early.serve, daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive()
    with pytest.raises(ServerConfigError, match="a keyed server listens on tcp:// or ipc://"):
        Server(ServerConfig(bind="inproc://keyed", data_dir=tmp_path / "in", keys_dir=tmp_path / "one"), Recorder())


@pytest.mark.parametrize("option,value,words", [("--keep", "0", "--keep must be at least 0.042 days (an hour)"),
                                                ("--client-queue", "0", "--client-queue must be at least 1")])
def test_serve_refuses_limits_that_cannot_work(option, value, words, tmp_path):
    res = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--bind", "tcp://127.0.0.1:*", "--data-dir",
                          str(tmp_path), option, value], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 2 and words in res.stdout + res.stderr and "listening" not in res.stdout


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's resident memory from /proc")
def test_a_finished_job_hands_its_memory_back_after_its_result_is_told():
    """Finding 7: a server that once ran a big job stayed that big (freed heap pages are kept for reuse). A job that
    leaves its heap fragmented, its buffers freed around a few blocks still in use, no longer keeps the process at its
    peak: the free pages go back to the system once the server is idle (executors.IDLE_TRIM_S)."""
    import numpy as np

    from backend.server.executors import InProcessExecutor
    from backend.server.jobs import Job

    kept, peak = [], []

    def runner(job, inputs, progress, cancelled):
        blocks = [np.ones(256) for _ in range(150_000)]  # ~300 MB in 2-KB heap blocks
        kept.extend(blocks[::1000])  # a few stay in use (caches, results) and pin the pages around them
        peak.append(_rss_mb())
        return {"ok": True}, {}

    executor = InProcessExecutor(runner)
    try:
        before = _rss_mb()
        executor.submit(Job("big", "motion", {}), dict)
        deadline, events = time.monotonic() + 120, []
        while not events and time.monotonic() < deadline:
            events = [e for e in executor.events() if e.kind == "result"]
            time.sleep(0.01)
        assert events, "the job did not finish"
        while _rss_mb() - before >= 60 and time.monotonic() < deadline:  # the trim follows the result
            time.sleep(0.01)
        after = _rss_mb()
    finally:
        executor.shutdown()
    assert peak[0] - before > 200  # the job did grow the process
    assert after - before < 60, (before, peak[0], after)


def test_the_heap_is_trimmed_when_the_jobs_are_done_not_between_them(monkeypatch):
    """The collection and trim after a job held the GIL for 0.12 s while the server loop waited to tell the job's
    result (60-s dances): jobs back to back now run with no trim between them, and the trim comes once the executor
    has been idle, after every result has been handed out."""
    from backend.server import executors
    from backend.server.executors import InProcessExecutor
    from backend.server.jobs import Job

    order, trimmed, gate = [], threading.Event(), threading.Event()
    monkeypatch.setattr(executors, "IDLE_TRIM_S", 0.2)
    monkeypatch.setattr(executors, "release_memory", lambda: order.append("trim") or trimmed.set())

    def runner(job, inputs, progress, cancelled):
        gate.wait(60)  # the first job holds on until the second is queued
        order.append(job.id)
        return {"ok": True}, {}

    executor = InProcessExecutor(runner)
    try:
        executor.submit(Job("a", "motion", {}), dict)
        executor.submit(Job("b", "motion", {}), dict)
        gate.set()
        assert trimmed.wait(60), "the idle executor never trimmed"
        results = [e.job_id for e in executor.events() if e.kind == "result"]
    finally:
        executor.shutdown()
    assert order == ["a", "b", "trim"] and results == ["a", "b"]
    # never idle: the heap is still trimmed, before the next job, once BUSY_TRIM_S has passed since the last trim
    monkeypatch.setattr(executors, "IDLE_TRIM_S", 3600.0)
    monkeypatch.setattr(executors, "BUSY_TRIM_S", 0.0)
    order.clear()
    gate.clear()
    executor = InProcessExecutor(runner)
    try:
        executor.submit(Job("c", "motion", {}), dict)
        executor.submit(Job("d", "motion", {}), dict)
        gate.set()
        deadline = time.monotonic() + 60
        while len([e for e in order if e != "trim"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        executor.shutdown()
    assert order == ["c", "trim", "d"]


def test_a_queued_job_holds_no_copy_of_its_song_in_the_server(tmp_path):
    """Finding 7: each queued 200-MB song added 200 MB to the server's memory (its arrays were copied and queued
    beside the copy stored on disk). A queued job now holds nothing: its song is read back when it starts, and each
    job is handed its own song."""
    import tracemalloc
    import uuid

    import msgpack
    import numpy as np

    from backend.server.executors import InProcessExecutor

    song_mb, jobs = 16, 4
    release, started, given = threading.Event(), threading.Event(), {}

    def runner(job, inputs, progress, cancelled):
        given[job.id] = bytes(inputs["audio"][:8])
        started.set()
        assert release.wait(120), "the test never let the first job finish"
        return {"ok": True}, {}

    server = Server(ServerConfig(bind=f"inproc://queued-{uuid.uuid4().hex}", data_dir=tmp_path, queue_limit=8,
                                 limits=P.Limits(max_frame_bytes=2 * song_mb << 20)),  # inline: the upload path aside
                    InProcessExecutor(runner))
    sent = []
    server._send = lambda identity, msg, request=None: sent.append(msg)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(jobs):
            audio = np.full(song_mb << 20, i, dtype=np.uint8)
            audio[:4] = np.frombuffer(b"RIFF", dtype=np.uint8)
            head = {"v": 1, "type": "submit", "kind": "motion", "request": f"r{i}",
                    "options": {"seed": i, "audio_name": "song.wav"},
                    "arrays": [{"name": "audio", "dtype": "uint8", "shape": [audio.size]}]}
            server.handle(b"peer", [msgpack.packb(head, use_bin_type=True), audio.tobytes()])
            del audio, head
        assert started.wait(120), f"the first job never started: {[m.fields for m in sent]}"
        held = (tracemalloc.get_traced_memory()[0] - before) / 2**20
        # the running job holds its song; the three queued ones hold none (they held 3 x 16 MB)
        assert held < 1.5 * song_mb, f"{held:.0f} MB held with {jobs - 1} jobs queued"
        release.set()
        deadline = time.monotonic() + 120
        while len([m for m in sent if m.type == "result"]) < jobs and time.monotonic() < deadline:
            for event in server.executor.events():
                server._on_event(event)
            time.sleep(0.01)
    finally:
        tracemalloc.stop()
        release.set()
        server.close()
    accepted = [m.get("job") for m in sent if m.type == "accepted"]
    assert len(accepted) == jobs and [given.get(j) for j in accepted] == [
        b"RIFF" + bytes([i]) * 4 for i in range(jobs)]  # each job was handed its own song


def test_a_job_whose_stored_song_is_gone_fails_in_a_sentence_and_the_next_one_runs(tmp_path):
    """Queued jobs read their song back from the store when they start: one whose stored arrays went (a disk error, a
    folder cleaned by hand) fails with a sentence, and the executor goes on to the next job."""
    import uuid

    import msgpack

    from backend.server.executors import InProcessExecutor

    release, ran = threading.Event(), []

    def runner(job, inputs, progress, cancelled):
        ran.append(bytes(inputs["audio"][:5]))
        assert release.wait(120), "the test never let the first job finish"
        return {"ok": True}, {}

    server = Server(ServerConfig(bind=f"inproc://gone-{uuid.uuid4().hex}", data_dir=tmp_path, queue_limit=8),
                    InProcessExecutor(runner))
    sent = []
    server._send = lambda identity, msg, request=None: sent.append(msg)
    try:
        for i in range(3):
            head = {"v": 1, "type": "submit", "kind": "motion", "request": f"r{i}",
                    "options": {"seed": i, "audio_name": "song.wav"},
                    "arrays": [{"name": "audio", "dtype": "uint8", "shape": [8]}]}
            server.handle(b"peer", [msgpack.packb(head, use_bin_type=True), b"RIFF" + bytes([i]) * 4])
        jobs = [m.get("job") for m in sent if m.type == "accepted"]
        assert len(jobs) == 3
        (tmp_path / "jobs" / jobs[1] / "inputs.npz").unlink()  # the second job's song goes while it waits
        release.set()
        deadline = time.monotonic() + 120
        while len([m for m in sent if m.type in ("result", "error")]) < 3 and time.monotonic() < deadline:
            for event in server.executor.events():
                server._on_event(event)
            time.sleep(0.01)
    finally:
        release.set()
        server.close()
    ends = {m.get("job"): m for m in sent if m.type in ("result", "error")}
    assert ends[jobs[0]].type == "result" and ends[jobs[2]].type == "result"
    assert ends[jobs[1]].type == "error" and "stored song could not be read back" in ends[jobs[1]].get("message")
    assert ran == [b"RIFF\x00", b"RIFF\x02"]  # the third job still ran, on its own song
