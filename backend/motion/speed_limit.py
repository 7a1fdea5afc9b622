"""A speed limit for the body: a stretch where a joint would move faster than a dancer's limb is played more slowly.

What is left after the pelvis-flip repair (backend.motion.pelvis_flips): on the test songs the frames with a joint
faster than 8 m/s are nearly all hands swung round by a fast turn of the pelvis (22-27 deg per frame with the arms
out), and now and then a leg snapping through a hip flip. The converted training data has the same faults (a hip or
ankle turning 140 deg in one frame where the fitted leg twists; 0.2 % of its frames pass 8 m/s), so the model learned
them. Smoothing such a stretch cannot help: a sustained turn stays as fast, and a flip averaged in 6D still jumps. So
the stretch is re-timed instead: its frames play more slowly (slerped in between) and the calm frames around it a
little faster to give the time back, so every pose is kept and nothing outside the window moves: the beats there stay
where they were. On the 18 test-song dances (raw): worst joint 18.8 m/s -> 7.5, stretches per dance 0-6.

It runs on the finished dance, after the other clean-ups (which can speed a limb up again: a foot pinned by the foot
lock, a root raised off the floor). Also tried inside the sampler, on the clean estimates of the last third of the
steps, as the pelvis repair is: the network then undid part of the beat guidance around each slowed stretch (val
songs, 4 x 2 dances: own-song tempo lock 0.369 -> 0.312, FID_k 112.6 -> 114.7), while on the finished dance nothing
else moved (0.371, 112.7).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from bridge.request import default_of
from rigs.motion import Motion

SPEED_CAP = default_of("speed_limit")  # m/s; the bar is 8, and the real dances pass 8 on 0.2 % of frames
MIN_MARGIN = 3  # calm steps each side of a fast run that give it time, at least
MAX_REACH = 45  # and at most (1.5 s each side)
MAX_SPEEDUP = 1.35  # the most a calm step is sped up to give time to a fast one


def _runs(mask: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """[a, b] index ranges of True runs in `mask`, runs closer than `gap` merged."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    runs, a, b = [], idx[0], idx[0]
    for i in idx[1:]:
        if i - b > gap:
            runs.append((int(a), int(b)))
            a = i
        b = i
    runs.append((int(a), int(b)))
    return runs


def _give_back(speed: np.ndarray, extra: float, cap: float) -> np.ndarray | None:
    """Durations (<= 1) of calm steps that together give back `extra` frames of time, or None when they cannot.

    Water-filling: every step is shortened alike, except that none is shortened past where it would reach `cap` or be
    sped up more than MAX_SPEEDUP; the rest is shared by the steps with room left. A calm step just under the cap
    (a hand finishing a flourish) then keeps its pace while its calmer neighbours give the time.
    """
    if not np.isfinite(speed).all():
        return None
    floor = np.maximum(speed / cap, 1.0 / MAX_SPEEDUP)  # the shortest each step may become
    if (1.0 - np.minimum(floor, 1.0)).sum() < extra:
        return None
    lo, hi = 0.0, 1.0 - 1.0 / MAX_SPEEDUP
    for _ in range(40):  # bisect the common cut g: sum(1 - max(1 - g, floor)) grows with g
        g = (lo + hi) / 2
        if (1.0 - np.maximum(1.0 - g, floor)).sum() < extra:
            lo = g
        else:
            hi = g
    return np.minimum(np.maximum(1.0 - hi, floor), 1.0)


def _window(speed: np.ndarray, a: int, b: int, cap: float, free: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    """Steps [lo, hi] around the fast run [a, b] and their new durations, or None when no window fits.

    Each fast step is given the duration that brings it to `cap`; the calm steps of the window give that time back
    (see _give_back), and the window widens until they can. Steps outside `free` (an edit's kept frames) are never in
    a window.
    """
    if not free[a:b + 1].all():
        return None  # the fast stretch itself is kept
    need = np.maximum(speed / cap, 1.0)
    lo, hi = a, b
    grown = 0
    while True:
        # first within MAX_REACH, 2 steps a side at a time; past it (a low cap: a run whose calm neighbours are few
        # or near the cap) the window goes on growing, by a quarter of its width a time, until the dance's ends or
        # kept frames hem it in. Giving up at MAX_REACH left such a run at full speed (issue 33: --speed-limit 3 and
        # 5 kept 14 m/s)
        step = MIN_MARGIN if grown == 0 else 2 if max(a - lo, hi - b) < MAX_REACH else max(2, (hi - lo) // 4)
        left = lo
        while left > 0 and lo - left < step and free[left - 1]:
            left -= 1
        right = hi
        while right < len(speed) - 1 and right - hi < step and free[right + 1]:
            right += 1
        if (left, right) == (lo, hi):
            return None  # hemmed in by kept frames or the ends
        lo, hi, grown = left, right, grown + 1
        d = need[lo:hi + 1]
        calm = d <= 1.0
        if calm.sum() >= 2:
            given = _give_back(speed[lo:hi + 1][calm], float((d - 1.0).sum()), cap)
            if given is not None:
                out = d.copy()
                out[calm] = given
                return lo, hi, out


def slow_map(speeds_at: Callable[[np.ndarray], np.ndarray], T: int, cap: float, free: np.ndarray | None = None
             ) -> tuple[np.ndarray, int]:
    """Source times (T,) that play each stretch faster than `cap` more slowly, and how many stretches were slowed.

    `speeds_at(src)` gives the fastest joint's speed between consecutive entries of a list of source times. A fast
    stretch's steps get the duration that brings them to the cap and the calm steps around it give that time back
    (see _window), so every frame outside the windows keeps its time exactly. `free` (T-1,) bool: steps a window may
    include (an edit's kept frames are not free).
    """
    src = np.arange(T, dtype=np.float64)
    free = np.ones(T - 1, dtype=bool) if free is None else free
    fixed = 0
    target = cap * 0.97  # interpolated frames land a little off the planned speed
    speed = speeds_at(src)  # kept current below: a window re-times only its own steps, and they are re-measured
    for _ in range(3):  # a re-timed stretch can show a step the plan missed: look again
        runs = _runs(speed > cap, gap=2)
        if not runs:
            break
        for a, b in runs:
            found = _window(speed, a, b, target, free)
            if found is None:
                continue
            lo, hi, dur = found
            placed = lo + np.concatenate([[0.0], np.cumsum(dur)])  # where source frames lo..hi+1 now play
            local = np.interp(np.arange(lo, hi + 2), placed, np.arange(lo, hi + 2, dtype=np.float64))
            src[lo:hi + 2] = np.interp(local, np.arange(T), src)  # composed with earlier re-timings
            speed[lo:hi + 1] = speeds_at(src[lo:hi + 2])
            fixed += 1
    return src, fixed


def max_joint_speed(motion: Motion) -> float:
    """The fastest any joint moves between two frames of `motion` (m/s)."""
    if motion.num_frames < 2:
        return 0.0
    j = motion.joint_positions()
    return float(np.linalg.norm(j[1:] - j[:-1], axis=-1).max() * motion.fps)


def limit_motion_speed(motion: Motion, cap: float = SPEED_CAP, keep: np.ndarray | None = None) -> tuple[Motion, int]:
    """A dance with its stretches faster than `cap` m/s played more slowly, and how many stretches were slowed.

    Re-timed, not smoothed: a fast stretch's frames play more slowly (slerped in between) and the calm frames around
    it a little faster, so each pose is kept and nothing outside the window (at most 1.5 s either side) moves in time.
    `keep` (T,) bool: frames that come back exactly (an edit's kept frames); no window reaches them.
    """
    T = motion.num_frames
    if T < 4:
        return motion, 0

    def speeds_at(t: np.ndarray) -> np.ndarray:
        j = motion.at_times(t).joint_positions()
        return np.linalg.norm(j[1:] - j[:-1], axis=-1).max(axis=1) * motion.fps

    free = None
    if keep is not None:
        k = np.asarray(keep, dtype=bool)
        free = ~(k[1:] | k[:-1])
    src, fixed = slow_map(speeds_at, T, cap, free)
    if not fixed:
        return motion, 0
    moved = np.flatnonzero(src != np.arange(T))
    part = motion.at_times(src[moved])
    rotations, trans = motion.rotations.copy(), motion.root_translation.copy()
    rotations[moved], trans[moved] = part.rotations, part.root_translation
    contacts = root_motion = None
    if motion.contacts is not None:
        contacts = motion.contacts.copy()
        contacts[moved] = part.contacts
    if motion.root_motion is not None:
        root_motion = motion.root_motion.copy()
        root_motion[moved] = part.root_motion
    return replace(motion, rotations=rotations, root_translation=trans, contacts=contacts,
                   root_motion=root_motion), fixed
