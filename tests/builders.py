"""Test data built in code: random SMPL motions and a small body-model file in SMPL's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton


def random_motion(frames: int = 30, seed: int = 3, scale: float = 0.4, drift: float = 0.02, **kw) -> Motion:
    """Random joint rotations (axis-angle ~ N(0, scale)) and a wandering root near standing height."""
    rng = np.random.default_rng(seed)
    trans = np.cumsum(rng.normal(size=(frames, 3)) * drift, axis=0) + [0.0, 0.95, 0.0]
    return Motion.from_axis_angle(rng.normal(size=(frames, 24, 3)) * scale, trans, **kw)


def fake_smpl_model(path: Path, half: float = 0.02, halves: dict[int, float] | None = None) -> Path:
    """A model file in SMPL's layout: a closed cube of vertices around each rest joint, rigidly weighted to it.

    `half` is the cubes' half size (m), `halves` overrides it per joint index. The model sits 0.3 m below our
    skeleton's rest pose (SMPL's own files have their own origin), so skinning must follow the joints, not the file.
    """
    rest = smpl_skeleton().rest_positions()
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    size = np.array([(halves or {}).get(j, half) for j in range(24)])
    verts = (rest[:, None, :] + size[:, None, None] * signs[None]).reshape(-1, 3) + [0.0, -0.3, 0.0]
    weights = np.repeat(np.eye(24), 8, axis=0)
    regressor = weights.T / 8.0
    # the 12 triangles of a cube whose corners are indexed by (x, y, z) bits as in `signs`
    cube = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                     [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    faces = np.concatenate([cube + 8 * j for j in range(24)])
    np.savez(path, v_template=verts, f=faces, weights=weights, J_regressor=regressor,
             shapedirs=np.zeros((len(verts), 3, 10)))
    return path


C, F_SHARP, G = [261.6, 329.6, 392.0], [370.0, 440.0, 554.4], [392.0, 493.9, 587.3]


def chord_song(parts, seconds: float = 10.0, bpm: float = 120) -> np.ndarray:
    """Sections of a held chord with a melody over its tones and a click on every beat (mono, features' rate)."""
    from backend.music.features import SR

    out = []
    t = np.arange(int(seconds * SR)) / SR
    beat = int(SR * 60 / bpm)
    for freqs in parts:
        y = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs) * 0.3
        clicks = np.zeros_like(t)
        for s in range(0, len(t), beat):
            clicks[s:s + 200] = np.hanning(400)[200:] * 0.5
        notes = np.repeat(np.array(freqs * 8)[:int(seconds * 2)] * 2, SR // 2)[:len(t)]
        out.append(y + clicks + 0.2 * np.sin(2 * np.pi * notes * t))
    return np.concatenate(out).astype(np.float32)


def accompaniment(pattern: str, bpm: float = 90.0, seconds: float = 40.0) -> np.ndarray:
    """A bass note ("b") or a chord ("c") on each beat, cycling through `pattern` ("bcc": oom-pah-pah), at the
    features' sample rate."""
    from backend.music.features import SR as sr

    beat = 60.0 / bpm
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for k in range(int(seconds / beat)):
        start = k * beat
        local = t[(t >= start) & (t < start + 0.3)] - start
        env = np.exp(-local * 12.0)
        notes = (55.0, 110.0) if pattern[k % len(pattern)] == "b" else (440.0, 554.4, 659.3, 880.0)
        tone = sum(np.sin(2 * np.pi * f * local) for f in notes) / len(notes)
        y[(t >= start) & (t < start + 0.3)] += env * tone
    return (0.5 * y).astype(np.float32)


def smooth_dance(seconds: float, seed: int) -> Motion:
    """A dance-like motion at 30 fps: smoothly wandering joint rotations, a root that travels and turns."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 30)
    kernel = np.hanning(21) / np.hanning(21).sum()

    def smooth(x: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, x)

    aa = smooth(rng.normal(size=(n, 24, 3)) * 1.5)
    aa[:, 0] = 0.0
    aa[:, 0, 1] = np.cumsum(smooth(rng.normal(size=n)) * 0.2)  # the body turns as it goes
    trans = np.cumsum(smooth(rng.normal(size=(n, 3))) * 0.05, axis=0) * [1, 0.1, 1] + [0.0, 0.95, 0.0]
    return Motion.from_axis_angle(aa, trans, fps=30.0)
