#!/usr/bin/env python
"""Tempo, meter and beat coverage of the beat tracker against references, song by song (issue 33).

References: the Tang ballroom songs carry no beat or tempo annotation (each config.json holds only the dance's
start/end frame), so a song's reference is its dance: its meter (waltz 3/4, cha-cha, rumba and tango 4/4) and the
tempo range its style is danced at (DanceSport: waltz 28-30 bars/min, cha-cha 30-32, rumba 25-27 (practice tracks
run up to ~30), tango 31-33; widened here to cover the recordings' spread). A tempo is an octave error when it lies
nearer to double or half the range than to the range. The librosa example songs have hand-checked tempi and meters
(tests/test_beat_tracker.py says how each was checked). Also printed: librosa's tempo as the product had it before,
and the last beat against the last sounding moment of the music.

    .venv/bin/python scripts/eval_beats.py [--split val,test|train|all] [--no-examples] [--no-tang]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.data.dataset import SPLITS, split_of  # noqa: E402
from backend.music.audio import audio_duration, load_audio  # noqa: E402
from backend.music.downbeats import _sounding  # noqa: E402
from backend.music.features import ENVELOPE, FPS, _librosa_beats, extract_features  # noqa: E402

DATA = REPO.parent / "shared" / "data"
TANG = DATA / "music2dance_tang2018"
EXAMPLES = DATA / "librosa_example_music"
# (low, high) bpm a style is danced at, and its meter
STYLE_RANGE = {"W": ((78.0, 100.0), 3), "C": ((108.0, 136.0), 4), "R": ((76.0, 112.0), 4), "T": ((112.0, 136.0), 4)}
# hand-checked (tempo bpm, meter) of the librosa examples; None where the music has no steady beat to check
EXAMPLE_REFERENCE = {
    "vibeace": (130.0, 4), "nutcracker": (109.0, 2), "brahms": (None, 2), "fishin": (176.0, 4), "trumpet": (None, None),
    "sweetwaltz": (150.0, 3), "pistachio": (144.0, 2), "choice": (136.0, 4),
}  # fishin: 88 (the boom-chick pair as one beat) is as right as 176; brahms is rubato; trumpet has no beat


def octave_error(bpm: float, low: float, high: float) -> bool:
    """Whether `bpm` lies nearer (in octaves) to double or half of [low, high] than to the range itself."""
    if bpm <= 0:
        return True

    def distance(lo: float, hi: float) -> float:
        return 0.0 if lo <= bpm <= hi else min(abs(np.log2(bpm / lo)), abs(np.log2(bpm / hi)))

    return min(distance(2 * low, 2 * high), distance(low / 2, high / 2)) < distance(low, high)


def analyse(path: Path) -> dict:
    """The tracker's and librosa's view of one whole song."""
    _, sr = audio_duration(path)
    y = load_audio(path, sr)
    t0 = time.perf_counter()
    music = extract_features(y, sr)
    seconds = time.perf_counter() - t0
    _, librosa_bpm = _librosa_beats(music.features[:, ENVELOPE.start].copy())
    first, last = _sounding(y, sr)
    beats = music.beat_frames / FPS
    return {"bpm": music.tempo, "librosa": librosa_bpm, "meter": music.meter, "last_beat": beats[-1] if len(beats)
            else 0.0, "end": last, "first_beat": beats[0] if len(beats) else 0.0, "start": first, "seconds": seconds,
            "duration": len(y) / sr}


def row(name: str, r: dict, ref_range, ref_meter) -> tuple[str, bool, bool, bool]:
    """One table line, and whether the tracker and librosa made octave errors and the meter was wrong."""
    if ref_range is None:
        err_t = err_l = False
        ref = "-"
    else:
        err_t, err_l = octave_error(r["bpm"], *ref_range), octave_error(r["librosa"], *ref_range)
        ref = f"{ref_range[0]:.0f}-{ref_range[1]:.0f}"
    meter_ok = ref_meter is None or r["meter"] == ref_meter or (ref_meter == 2 and r["meter"] == 4)
    line = (f"{name:<12} {r['bpm']:8.2f} {r['librosa']:8.2f} {ref:>8} {'YES' if err_t else 'no':>6} "
            f"{'YES' if err_l else 'no':>6} {r['meter']:>5} {ref_meter if ref_meter else '-':>4} "
            f"{r['last_beat']:8.1f} {r['end']:8.1f} {r['end'] - r['last_beat']:6.2f} {r['seconds']:6.1f}")
    return line, err_t, err_l, not meter_ok


HEADER = (f"{'song':<12} {'bpm':>8} {'librosa':>8} {'ref':>8} {'oct?':>6} {'lr oct':>6} {'meter':>5} {'ref':>4} "
          f"{'last b.':>8} {'end':>8} {'gap':>6} {'secs':>6}")


def tang_songs(split: str) -> list[Path]:
    """The Tang song folders of a split ('val,test', 'train', 'all')."""
    folders = sorted(p for p in TANG.glob("DANCE_*") if (p / "audio.mp3").is_file())
    if split == "all":
        return folders
    wanted = set(split.split(","))
    return [p for p in folders if split_of(p.name) in wanted]


def example_songs() -> list[tuple[str, Path]]:
    """(librosa key, path) of the librosa example songs."""
    import json

    index = json.loads((EXAMPLES / "index.json").read_text())
    out = []
    for key, entry in sorted(index.items()):
        name = entry["path"].replace("'", "")  # the files lost their names' apostrophes
        path = EXAMPLES / f"{name}.ogg"
        if key in EXAMPLE_REFERENCE and path.is_file():
            out.append((key, path))
    return out


def report(title: str, rows: list[tuple[str, bool, bool, bool]]) -> None:
    """Print a table and its totals."""
    print(f"\n{title}\n{HEADER}")
    for line, *_ in rows:
        print(line)
    print(f"octave errors: tracker {sum(r[1] for r in rows)}/{len(rows)}, librosa {sum(r[2] for r in rows)}/"
          f"{len(rows)}; wrong meter: {sum(r[3] for r in rows)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="val,test", help="Tang songs: val,test (default), train or all")
    ap.add_argument("--no-examples", action="store_true", help="skip the librosa example songs")
    ap.add_argument("--no-tang", action="store_true", help="skip the Tang ballroom songs")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"error: {DATA} not found (the shared data folder)")
    if not args.no_tang:
        rows = []
        for folder in tang_songs(args.split):
            style = folder.name.split("_")[1]
            rng, meter = STYLE_RANGE[style]
            rows.append(row(folder.name[6:], analyse(folder / "audio.mp3"), rng, meter))
            print(rows[-1][0], flush=True)
        report(f"Tang ballroom songs ({args.split}); ref = the style's tempo range", rows)
    if not args.no_examples:
        rows = []
        for key, path in example_songs():
            bpm, meter = EXAMPLE_REFERENCE[key]
            rows.append(row(key, analyse(path), None if bpm is None else (bpm / 1.06, bpm * 1.06), meter))
            print(rows[-1][0], flush=True)
        report("librosa example songs; ref = hand-checked tempo +-6 %", rows)


if __name__ == "__main__":
    main()
