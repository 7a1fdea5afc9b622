"""The training/evaluation data: paired ballroom dances as SMPL Motions with aligned music features, cached.

Splits follow ../shared/data/README.md (by song): test and val are fixed lists, train is everything else. The cache
lives outside the repository's tracked files (.cache/ by default) and is keyed by a hash of each sequence's source
files and the fit/feature versions, so changed code or data refits and unchanged data loads in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from backend.data import tang2018
from backend.music.audio import load_audio
from backend.music.features import FEATURES_VERSION, FPS, HOP, SR, MusicFeatures, extract_features
from rigs.motion import Motion

REPO = Path(__file__).resolve().parents[2]
TANG_DIR = "music2dance_tang2018"

SPLITS = {
    "test": ("DANCE_C_8", "DANCE_R_9", "DANCE_W_5", "DANCE_W_12", "DANCE_W_22", "DANCE_W_31"),
    "val": ("DANCE_C_4", "DANCE_R_8", "DANCE_W_17", "DANCE_W_27"),
}


def default_cache_dir() -> Path:
    """$MACE_DANCE_CACHE, or .cache/ in the repository (git-ignored)."""
    return Path(os.environ.get("MACE_DANCE_CACHE", REPO / ".cache"))


def split_of(name: str) -> str:
    """'test', 'val' or 'train' for a sequence name."""
    for split, names in SPLITS.items():
        if name in names:
            return split
    return "train"


@dataclass
class DanceClip:
    """One paired dance: SMPL motion at 30 fps (with foot contacts) and the music features of the same frames."""

    name: str
    style: str
    split: str
    motion: Motion
    music: MusicFeatures
    fit: tang2018.FitReport
    sides: tang2018.SideReport

    @property
    def minutes(self) -> float:
        return self.motion.duration / 60


def _source_key(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("skeletons.json.gz", "config.json", "audio.mp3"):
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    h.update(f"fit{tang2018.FIT_VERSION}-features{FEATURES_VERSION}".encode())
    return h.hexdigest()[:16]


def convert_sequence(folder: Path) -> DanceClip:
    """Fit SMPL to one sequence, resample to 30 fps, label foot contacts and extract the aligned music features."""
    seq = tang2018.load_sequence(folder)
    sides = tang2018.settle_sides(seq.positions)
    motion25, fit = tang2018.fit_smpl(seq, sides)
    motion = motion25.resample(tang2018.TARGET_FPS)
    audio = load_audio(seq.audio_path, SR)
    start = int(round(seq.audio_start * SR))
    segment = audio[start : start + (motion.num_frames + 1) * HOP]
    music = extract_features(segment, SR)
    n = min(motion.num_frames, music.num_frames)
    motion = motion.slice(0, n)
    motion.contacts = tang2018.foot_contacts(motion)
    music = music.slice(0, n)
    return DanceClip(seq.name, seq.style, split_of(seq.name), motion, music, fit, sides)


def _save(clip: DanceClip, path: Path) -> None:
    meta = {"name": clip.name, "style": clip.style, "fit": asdict(clip.fit), "sides": asdict(clip.sides),
            "tempo": clip.music.tempo, "duration": clip.music.duration, "silent": clip.music.silent,
            "meter": clip.music.meter}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.savez(fh, rotations=clip.motion.rotations, root_translation=clip.motion.root_translation,
                 contacts=clip.motion.contacts, fps=np.float64(clip.motion.fps), features=clip.music.features,
                 beat_frames=clip.music.beat_frames, onset_frames=clip.music.onset_frames,
                 downbeat_frames=clip.music.downbeat_frames, meta=np.asarray(json.dumps(meta)))
    tmp.replace(path)


def _load(path: Path) -> DanceClip:
    with np.load(path, allow_pickle=False) as d:
        meta = json.loads(str(d["meta"]))
        motion = Motion(d["rotations"], d["root_translation"], fps=float(d["fps"]), contacts=d["contacts"])
        music = MusicFeatures(d["features"], d["beat_frames"], d["onset_frames"], meta["tempo"], meta["duration"],
                              meta["silent"], downbeat_frames=d["downbeat_frames"], meter=int(meta["meter"]))
    return DanceClip(meta["name"], meta["style"], split_of(meta["name"]), motion, music,
                     tang2018.FitReport(**meta["fit"]), tang2018.SideReport(**meta["sides"]))


class DanceDataset:
    """The paired set under `data_dir`, converted on first use and cached under `cache_dir`."""

    def __init__(self, data_dir: str | Path, cache_dir: str | Path | None = None, names: list[str] | None = None,
                 progress: bool = False):
        self.root = Path(data_dir) / TANG_DIR
        if not self.root.is_dir():
            raise FileNotFoundError(f"paired dance data not found at {self.root} (expected ../shared/data beside the repo)")
        self.cache = Path(cache_dir or default_cache_dir()) / "tang2018"
        folders = sorted(p for p in self.root.glob("DANCE_*") if (p / "audio.mp3").is_file())
        if names is not None:
            folders = [f for f in folders if f.name in set(names)]
        self.folders = folders
        self.progress = progress
        self._clips: list[DanceClip] | None = None

    @property
    def clips(self) -> list[DanceClip]:
        """All clips, converting the ones not yet cached."""
        if self._clips is None:
            self._clips = self._load_all()
        return self._clips

    def _load_all(self) -> list[DanceClip]:
        from rich.progress import Progress

        clips = []
        with Progress(disable=not self.progress, transient=True) as bar:
            task = bar.add_task("converting dances to SMPL", total=len(self.folders))
            for folder in self.folders:
                path = self.cache / f"{folder.name}-{_source_key(folder)}.npz"
                if path.is_file():
                    clip = _load(path)
                else:
                    clip = convert_sequence(folder)
                    _save(clip, path)
                clips.append(clip)
                bar.advance(task)
        return clips

    def split(self, name: str) -> list[DanceClip]:
        """Clips of one split ('train', 'val' or 'test')."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return [c for c in self.clips if c.split == name]

    def statistics(self) -> list[dict]:
        """One row per split and per style: sequences, minutes, frames, fps, fit error."""
        rows = []
        groups = [("split", s) for s in ("train", "val", "test")] + [("style", s) for s in sorted({c.style for c in self.clips})]
        for kind, value in groups:
            clips = [c for c in self.clips if getattr(c, kind) == value]
            if not clips:
                continue
            rows.append({
                "group": f"{kind}={value}",
                "sequences": len(clips),
                "minutes": sum(c.minutes for c in clips),
                "frames": sum(c.motion.num_frames for c in clips),
                "mpjpe_mm": float(np.mean([c.fit.mpjpe_mm for c in clips])),
                "scale": float(np.mean([c.fit.scale for c in clips])),
            })
        return rows

    def print_statistics(self, console) -> None:
        """Print the statistics table (rich console)."""
        from rich.table import Table

        table = Table(title=f"paired ballroom set: SMPL at {FPS} fps (source 25 fps)")
        for col in ("group", "sequences", "minutes", "frames", "fit MPJPE (mm)", "leg scale"):
            table.add_column(col, justify="right")
        for r in self.statistics():
            table.add_row(r["group"], str(r["sequences"]), f"{r['minutes']:.1f}", str(r["frames"]),
                          f"{r['mpjpe_mm']:.0f}", f"{r['scale']:.3f}")
        console.print(table)
        agree = [c.sides.side_agreement for c in self.clips]
        knees = [c.sides.heel_toe_agreement for c in self.clips]
        left = sum(c.sides.chain_a_is_left for c in self.clips)
        console.print(f"left/right: chain A is the left side in {left} of {len(self.clips)} sequences; side agreement "
                      f"per frame {min(agree):.3f}-{max(agree):.3f}; knees bend where the toes point on "
                      f"{np.mean(knees):.0%} of bent-knee frames")
