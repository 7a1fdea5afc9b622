"""The thread policy gives way to other processes' work, never counts its own children as others, and is what the
sampler uses between denoising steps."""

import os
import subprocess
import sys
import time

import pytest
import torch

from backend import cpu_threads
from backend.cpu_threads import (MIN_WINDOW_S, ThreadPolicy, others_cores, read_cpu, thread_ceiling,
                                 threads_for)

SPIN = "import sys; print('spinning', flush=True); sys.stdout.close()\nwhile True: pass"

pytestmark = pytest.mark.skipif(read_cpu() is None, reason="this machine's CPU load cannot be read")


@pytest.mark.parametrize("others,cores,threads", [(0.0, 2, 2), (0.2, 2, 2), (0.5, 2, 1), (1.0, 2, 1), (2.0, 2, 1),
                                                  (0.0, 8, 8), (2.9, 8, 5), (7.8, 8, 1), (0.0, 1, 1)])
def test_threads_fill_the_free_cores_and_never_drop_below_one(others, cores, threads):
    assert threads_for(others, cores) == threads


def test_threads_come_back_only_with_room_to_spare(monkeypatch):
    policy = ThreadPolicy(cores=2)
    seen = []
    for others in (1.0, 0.25, 0.05, 0.25, 0.6):
        policy.threads = policy._next(others)
        seen.append(policy.threads)
    # a busy neighbour: give way at once; just under the line: not yet back (it would flap); clear: back; kept while
    # under the line; over it: give way again
    assert seen == [1, 1, 2, 2, 1]


def _foreign_spinner() -> int:
    """A busy process that is not our child (its parent shell exits at once): the 'other work' of the machine."""
    out = subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{SPIN}" > /dev/null 2>&1 & echo $!'],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def _window(seconds: float) -> float:
    """Others' cores over a window of at least `seconds` (a measurement, not a wait for an event)."""
    before = read_cpu()
    while read_cpu().wall - before.wall < seconds:
        sum(range(1000))  # keep this process busy too: its own time must not count as others'
    return others_cores(before, read_cpu())


def test_a_foreign_busy_process_counts_as_others_and_takes_a_thread():
    pid = _foreign_spinner()
    try:
        assert _window(0.6) > 0.7, "a spinning process beside us was not seen"
        policy = ThreadPolicy(cores=2)
        _window(MIN_WINDOW_S + 0.05)
        assert policy.decide() == 1
    finally:
        os.kill(pid, 9)


def _cpu_of(pid: int) -> float:
    """CPU seconds of a process, read here independently of the module."""
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (float(fields[11]) + float(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="children are read from Linux's /proc")
def test_own_children_are_not_others():
    child = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "spinning"
        before, child_before, self_before = read_cpu(), _cpu_of(child.pid), sum(os.times()[:2])
        _window(0.6)
        after, child_after, self_after = read_cpu(), _cpu_of(child.pid), sum(os.times()[:2])
        assert child_after - child_before > 0.05, "the child did not run"
        counted = (after.own - before.own) - (self_after - self_before)
        assert counted >= 0.9 * (child_after - child_before) - 0.02  # the child's time is ours, not others'
    finally:
        child.kill()
        child.wait()
    reaped = read_cpu()
    assert reaped.own >= after.own - 0.02  # once reaped, its time moves to the finished children's: no drop


def test_the_sampler_sizes_torch_threads_to_the_free_cores(monkeypatch):
    from backend.motion.model import Denoiser, DenoiserConfig
    from backend.motion.sampling import SampleOptions, sample

    tiny = DenoiserConfig(d_model=32, n_blocks=1, n_music_layers=1, n_heads=2, d_state=8, headdim=16, chunk_size=16,
                          attn_window=4, dropout=0.0)
    model = Denoiser(tiny).eval()
    music = torch.zeros(20, tiny.music_dim)
    before = torch.get_num_threads()
    pid = _foreign_spinner()
    try:
        monkeypatch.setattr(cpu_threads, "_policy", ThreadPolicy(cores=2))
        _window(MIN_WINDOW_S + 0.05)
        sample(model, music, SampleOptions(steps=2))
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(cpu_threads, "_policy", ThreadPolicy(fixed=2))
        sample(model, music, SampleOptions(steps=2))
        assert torch.get_num_threads() == 2
    finally:
        os.kill(pid, 9)
        torch.set_num_threads(before)


def test_the_environment_fixes_or_caps_the_count(monkeypatch):
    monkeypatch.setenv("MACE_DANCE_THREADS", "3")
    assert ThreadPolicy.from_env().decide() == 3
    for bad, says in (("0", "at least 1"), ("many", "'auto' or a number")):
        monkeypatch.setenv("MACE_DANCE_THREADS", bad)
        with pytest.raises(ValueError, match=says):
            ThreadPolicy.from_env()
    monkeypatch.setenv("MACE_DANCE_THREADS", "auto")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_ceiling() == 1 and ThreadPolicy.from_env().decide() == 1  # a process pinned to one thread stays


def test_a_bad_thread_setting_is_one_line_from_the_cli():
    env = {**os.environ, "MACE_DANCE_THREADS": "lots"}
    res = subprocess.run([sys.executable, "-m", "backend.cli", "--help"], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert res.returncode == 2
    assert "MACE_DANCE_THREADS must be 'auto' or a number of threads, got 'lots'" in res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_a_watched_policy_follows_the_load_of_the_moment():
    policy = ThreadPolicy(cores=2)
    policy.watch(every_s=0.2)
    pid = _foreign_spinner()
    try:
        deadline = time.monotonic() + 10
        while policy.decide() != 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the watcher's next window
        assert policy.decide() == 1
    finally:
        os.kill(pid, 9)


def test_the_policy_puts_numpys_blas_on_one_thread():
    """numpy's OpenBLAS team would spin beside our own threads (and beside Blender): the policy's first use puts it on
    one thread, in a fresh process whose BLAS starts with one thread per core."""
    import json

    code = ("import json, numpy; from threadpoolctl import threadpool_info\n"
            "blas = lambda: [i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas']\n"
            "before = blas(); from backend.cpu_threads import policy; policy(); print(json.dumps([before, blas()]))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["OPENBLAS_NUM_THREADS"] = "2"  # a team of two to start with, whatever this machine's core count
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    before, after = json.loads(res.stdout)
    if not before:
        pytest.skip("this numpy has no OpenBLAS of its own")
    assert before == [2] and after == [1]


def test_side_by_side_keeps_order_and_raises_what_a_thread_raised():
    """Two at a time in named threads when asked (or when the policy finds a core free), one after the other when
    not: the same results in order, and a failure in either thread reaches the caller."""
    import threading

    from backend.cpu_threads import side_by_side

    seen = []

    def work(k):
        seen.append(threading.current_thread().name)
        if k == 3:
            raise KeyError("three")
        return k * k

    assert side_by_side(work, [1, 2], "mace-dance-test", threads=2) == [1, 4]
    assert all(n.startswith("mace-dance-test") for n in seen)
    seen.clear()
    assert side_by_side(work, [1, 2], "mace-dance-test", threads=1) == [1, 4]
    assert seen == [threading.current_thread().name] * 2
    with pytest.raises(KeyError, match="three"):
        side_by_side(work, [1, 3], "mace-dance-test", threads=2)


def _running(pid: int) -> bool:
    """Whether a process is alive and not a zombie."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="processes are read from Linux's /proc")
def test_a_process_counted_as_own_is_not_others(monkeypatch):
    """The CLI's analysis child counts the parent that forked it as its own: a busy process so counted moves its CPU
    time from others' to ours (once, however often it is named), and keeps it there when it ends or when its pid
    comes to name another process."""
    monkeypatch.setattr(cpu_threads, "_kin", {})
    pid = _foreign_spinner()
    try:
        while _cpu_of(pid) < 0.1:  # it has run: its time is large enough to tell apart from our own
            sum(range(1000))
        before = cpu_threads._own_cpu()
        ran = _cpu_of(pid)
        cpu_threads.count_as_own(pid)
        cpu_threads.count_as_own(pid)
        after = cpu_threads._own_cpu()
        assert after - before >= ran - 0.011  # all of its time is now ours (to a 10-ms tick of rounding)
        assert after - before < 2 * ran + 0.5  # once, not twice
        start = read_cpu()
        _window(0.6)
        assert others_cores(start, read_cpu()) < 0.5, "the process counted as ours still counted as others"
        held = cpu_threads._kin_cpu()
        real = cpu_threads._process_stat
        monkeypatch.setattr(cpu_threads, "_process_stat",  # the pid now names a process started at another time
                            lambda p: (held + 99.0, real(p)[1] + 1) if p == pid else real(p))
        assert cpu_threads._kin_cpu() == pytest.approx(held)
        monkeypatch.setattr(cpu_threads, "_process_stat", real)
    finally:
        os.kill(pid, 9)
    last = cpu_threads._own_cpu()
    while _running(pid):  # dead: gone, or a zombie where nobody reaps it
        sum(range(1000))
    assert cpu_threads._own_cpu() >= last - 0.011  # its last reading stands: no drop that would read as others'


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="processes are read from Linux's /proc")
def test_the_forked_analysis_counts_its_parent_as_its_own(monkeypatch, tmp_path):
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    from backend.music import prefetch

    monkeypatch.setenv("MACE_DANCE_ANALYSIS_CACHE", "off")
    monkeypatch.setattr(prefetch, "analyse_section", lambda *args: list(cpu_threads._kin))
    with prefetch.SectionAnalysis(tmp_path / "song.wav") as pending:
        assert pending._proc is not None, "the analysis was not forked"
        kin = pending.result()
    assert kin == [os.getpid()]
