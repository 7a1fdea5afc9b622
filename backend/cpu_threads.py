"""How many threads the backend's torch work uses: the cores other processes leave free, re-read while it runs.

Why: the local backend shares the animator's machine with Blender. torch's default team (one thread per core) busy-
waits at every barrier, so beside one other CPU-bound process on 2 cores a 60-s dance sampled in 1.8 s took 8-25 s,
against 4.3 s with one thread. Passive waiting (OMP_WAIT_POLICY=PASSIVE) stops the spinning but doubles the idle time
(each small parallel region then wakes its threads through the kernel). So the team is sized to the free cores
instead: the machine's busy time from /proc/stat minus this process's own CPU time gives what the others use, and
the sampler re-sizes between denoising steps (`adapt()`), so a dance started while Blender bakes moves to one thread,
and back to all cores when the bake ends. Several server workers see each other as "others" and settle at a share
each. `MACE_DANCE_THREADS=N` fixes the count (benchmarks, a user who knows better).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

TOLERANCE = 0.3  # others may use this much of a core before a thread of ours gives way (a desktop's idle hum)
HYSTERESIS = 0.2  # a thread is added back only when the room is clear by this much more: no flapping at the edge
MIN_WINDOW_S = 0.25  # shorter windows are too coarse in /proc/stat's 10-ms ticks: keep the last decision
ENV = "MACE_DANCE_THREADS"
try:
    _HZ = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _HZ = 100.0


@dataclass(frozen=True)
class CpuReading:
    """A clock reading: wall seconds, seconds of CPU busy machine-wide, and seconds this process used."""

    wall: float
    busy: float
    own: float


def _read(path: str) -> str:
    """A small /proc or /sys file's text (closed at once: these are read between every denoising step)."""
    with open(path) as f:
        return f.read()


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (containers, systemd)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = _read("/sys/fs/cgroup/cpu.max").split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(float(quota) / float(period) + 0.5)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def thread_ceiling() -> int:
    """The most threads to use: the usable cores, or fewer where the process was told so before its first dance
    (OMP_NUM_THREADS, or a script's own torch.set_num_threads: an evaluation pinned to one thread stays there)."""
    cores = usable_cores()
    try:
        cores = min(cores, max(1, int(os.environ["OMP_NUM_THREADS"])))
    except (KeyError, ValueError):
        pass
    if "torch" in sys.modules:
        cores = min(cores, sys.modules["torch"].get_num_threads())
    return max(1, cores)


def _machine_busy() -> float | None:
    """Seconds of CPU time spent busy (not idle, not waiting on I/O), summed over all cores since boot."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / _HZ  # user..steal, less idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    try:  # macOS and Windows (psutil comes with the ae extras)
        import psutil

        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)
    except Exception:  # noqa: BLE001 - no way to read the machine's load: the caller uses every core
        return None


def _process_stat(pid: int | str) -> tuple[float, int] | None:
    """(CPU seconds (user + system), start time in clock ticks since boot) of a running process; None where it cannot
    be read (gone, not Linux)."""
    try:
        stat = _read(f"/proc/{pid}/stat")
        fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        return (float(fields[11]) + float(fields[12])) / _HZ, int(fields[19])  # utime, stime; starttime
    except (OSError, ValueError, IndexError):
        return None


def _process_cpu(pid: int | str) -> float:
    """CPU seconds (user + system) of a running process; 0 where it cannot be read."""
    stat = _process_stat(pid)
    return 0.0 if stat is None else stat[0]


def _live_children_cpu() -> float:
    """CPU seconds of this process's running children (the CLI's forked music analysis is ours, not another's)."""
    total = 0.0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            pids = _read(f"/proc/self/task/{tid}/children").split()
        except OSError:
            continue
        total += sum(_process_cpu(pid) for pid in pids)
    return total


# processes counted as this one's (count_as_own): pid -> [its start time, the last CPU seconds read]
_kin: dict[int, list] = {}


def count_as_own(pid: int) -> None:
    """Count process `pid`'s CPU time as this process's own from now on: the CLI's forked music analysis and the
    parent that forked it are one job split in two. The child saw the parent's torch import as other work, kept the
    beat tracker off its second thread (0.4 s into a cold run, the parent busy), and heard the beats only after
    librosa's import and features: 0.5 s on a cold CLI's critical path. Once the process ends (or its pid names
    another process) its last reading stands: its time stays ours, and a stranger's never becomes ours."""
    stat = _process_stat(pid)
    if pid not in _kin and stat is not None:
        _kin[pid] = [stat[1], stat[0]]


def _kin_cpu() -> float:
    """CPU seconds of the processes counted as this one's own."""
    total = 0.0
    for pid, held in _kin.items():
        stat = _process_stat(pid)
        if stat is not None and stat[1] == held[0]:
            held[1] = stat[0]
        total += held[1]
    return total


def _own_cpu() -> float:
    """CPU seconds of this process, its finished children, its running ones and the processes counted as its own."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _live_children_cpu() + _kin_cpu()


def read_cpu() -> CpuReading | None:
    """The clock reading now, or None where the machine's busy time cannot be read."""
    busy = _machine_busy()
    if busy is None:
        return None
    return CpuReading(time.monotonic(), busy, _own_cpu())


def others_cores(before: CpuReading, after: CpuReading) -> float:
    """Cores the other processes kept busy, on average, between two readings."""
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return max(0.0, (after.busy - before.busy) - (after.own - before.own)) / wall


def threads_for(others: float, cores: int, tolerance: float = TOLERANCE) -> int:
    """Threads that fit beside `others` busy cores: the whole free cores, at least one, at most `cores`."""
    return max(1, min(cores, int(cores - others + tolerance)))


class ThreadPolicy:
    """Sizes torch's thread team to the free cores, re-read at each `adapt()` (cheap: a few small file reads)."""

    def __init__(self, cores: int | None = None, fixed: int | None = None):
        self.cores = cores or thread_ceiling()
        self.fixed = fixed
        self.threads = self.cores
        self._last = read_cpu()
        self._recent: float | None = None  # the watcher's latest window (others' cores), when one runs
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @classmethod
    def from_env(cls) -> "ThreadPolicy":
        """The policy `MACE_DANCE_THREADS` asks for: a fixed count, or (unset, 'auto') the free cores."""
        value = os.environ.get(ENV, "auto").strip().lower()
        if value in ("", "auto"):
            return cls()
        try:
            fixed = int(value)
        except ValueError:
            raise ValueError(f"{ENV} must be 'auto' or a number of threads, got {value!r}") from None
        if fixed < 1:
            raise ValueError(f"{ENV} must be at least 1, got {fixed}")
        return cls(fixed=fixed)

    def decide(self) -> int:
        """The thread count for the work that follows (the last one when too little time has passed to tell)."""
        if self.fixed is not None:
            return self.fixed
        with self._lock:
            if self._recent is not None:  # a watched process: the window that just ended, never an idle hour's mean
                self.threads = self._next(self._recent)
                return self.threads
            now = read_cpu()
            if now is None or self._last is None:
                return self.cores
            if now.wall - self._last.wall >= MIN_WINDOW_S:
                self.threads = self._next(others_cores(self._last, now))
                self._last = now
            return self.threads

    def _next(self, others: float) -> int:
        """The count after a window in which others used `others` cores (more threads only with room to spare)."""
        want = threads_for(others, self.cores)
        return want if want <= self.threads else max(self.threads, threads_for(others + HYSTERESIS, self.cores))

    def watch(self, every_s: float = 2 * MIN_WINDOW_S) -> None:
        """Keep a fresh window in a daemon thread: for long-lived processes (servers, workers, the add-on's backend),
        whose next job must see the load of now, not the mean since the last one."""
        if self.fixed is not None or self._watcher is not None or self._last is None:
            return

        def loop() -> None:
            last = read_cpu()
            while True:
                time.sleep(every_s)
                now = read_cpu()
                if now is None or last is None:
                    return
                with self._lock:
                    self._recent = others_cores(last, now)
                last = now

        self._watcher = threading.Thread(target=loop, name="mace-dance-cpu-watch", daemon=True)
        self._watcher.start()

    def adapt(self) -> int:
        """Decide and hand the count to torch (only when it changed: re-sizing is cheap but not free)."""
        import torch

        n = self.decide()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n


_policy: ThreadPolicy | None = None


def policy() -> ThreadPolicy:
    """This process's policy (made on first use, which starts its first window and puts numpy's BLAS on one thread)."""
    global _policy
    if _policy is None:
        _policy = ThreadPolicy.from_env()
        single_thread_numpy_blas()
    return _policy


def single_thread_numpy_blas() -> None:
    """numpy's BLAS (OpenBLAS) to one thread. Its own team (one thread per core, spinning while it waits) ran beside
    our threads, which already split the numpy work (the beat tracker beside librosa's features, the networks' halves,
    the two meters' decodes, a song's two halves): two teams of two on two cores. The 10-min analysis took 6.0-6.3 s
    with it, 5.6-6.0 without; and beside Blender it spun against other work as torch's team did. One thread also
    makes the features the same numbers on every machine (BLAS splits its sums by its thread count: 1e-7 apart)."""
    try:
        from threadpoolctl import ThreadpoolController

        ThreadpoolController().select(internal_api="openblas").limit(limits=1)
    except Exception:  # noqa: BLE001 - missing, or cannot read this platform's libraries: numpy keeps its team
        pass


def side_by_side(work: Callable[[T], R], items: Iterable[T], name: str, threads: int | None = None) -> list[R]:
    """[work(item) for item in items], two at a time in threads named `name` when `threads` (by default the policy's
    count of the cores free now) is 2 or more: for numpy and compiled work that releases the GIL. The same results
    either way, in order; an error in either thread is raised here."""
    items = list(items)
    if len(items) < 2 or (policy().decide() if threads is None else threads) < 2:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix=name) as pool:
        return list(pool.map(work, items))


def adapt() -> int:
    """Size torch's threads to the cores free now; call between units of work (denoising steps, jobs)."""
    return policy().adapt()
