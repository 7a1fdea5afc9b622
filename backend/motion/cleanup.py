"""Foot-lock clean-up: planted feet stay planted (pure math on a Motion, no bpy).

Foot-contact labels (predicted by the model, or measured) mark when each ankle is planted. During a planted stretch
the ankle is pinned to the stretch's mean position and the leg reaches it with analytic two-bone IK (hip and knee
rotate in the leg's current bending plane; the foot keeps its world orientation). Targets ease in and out over a few
frames at the ends of each stretch so nothing pops.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter1d, maximum_filter1d

from backend.metrics.cleanliness import ANKLE_CONTACT, TOE_CONTACT
from backend.metrics.joins import foot_slide as floor_slides
from rigs import rotations as rot
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton

SK = smpl_skeleton()
LEGS = {"left": (SK.index("left_hip"), SK.index("left_knee"), SK.index("left_ankle"), 0),
        "right": (SK.index("right_hip"), SK.index("right_knee"), SK.index("right_ankle"), 1)}  # contact column


@dataclass
class FootLockReport:
    """Sliding of planted ankles (metres summed over contact frames, both feet) before and after the clean-up."""

    slide_before: float
    slide_after: float
    planted_frames: int


def contact_segments(flags: np.ndarray, min_length: int = 3) -> list[tuple[int, int]]:
    """[start, stop) runs of True at least `min_length` long."""
    runs, start = [], None
    for i, f in enumerate(np.append(flags, False)):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start >= min_length:
                runs.append((start, i))
            start = None
    return runs


def foot_slide(motion: Motion, planted: np.ndarray) -> float:
    """Total horizontal ankle travel (m) between consecutive frames on which that ankle is planted ((T, 2) flags)."""
    pos = motion.joint_positions()
    total = 0.0
    for side, (_, _, ankle, col) in LEGS.items():
        both = planted[1:, col] & planted[:-1, col]
        step = np.linalg.norm(pos[1:, ankle][:, [0, 2]] - pos[:-1, ankle][:, [0, 2]], axis=-1)
        total += float(step[both].sum())
    return total


def _two_bone(hip, knee, ankle, target, l1, l2, hinge):
    """New knee positions so hip->knee->target has bone lengths l1, l2, the knee bending about `hinge`.

    `hinge` is the thigh's knee axis (SMPL knees flex about their x axis). Taking the bending plane from the knee's
    current position instead fails for nearly straight legs: the knee sits on the hip-target line, and as the target
    crosses it the knee flips from one side to the other within a frame. The hinge is as smooth as the hip rotation.
    """
    d_vec = target - hip
    d = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    d_c = np.clip(d, abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
    u = d_vec / np.maximum(d, 1e-9)
    pole = np.cross(u, hinge)  # at rest: leg down (-y), hinge +x -> the knee goes forward (+z)
    pole_n = np.linalg.norm(pole, axis=-1, keepdims=True)
    fallback = np.cross(u, np.array([1.0, 0.0, 0.0]))  # degenerate: the leg line along the hinge
    pole = np.where(pole_n > 1e-9, pole / np.maximum(pole_n, 1e-12), fallback)
    cos_a = (l1 ** 2 + d_c ** 2 - l2 ** 2) / (2 * l1 * d_c)
    sin_a = np.sqrt(np.clip(1 - cos_a ** 2, 0, 1))
    return hip + l1 * (cos_a * u + sin_a * pole)


ANKLE_LOW, TOE_LOW = ANKLE_CONTACT, TOE_CONTACT  # m: the planted-foot heights of metrics.md section 6
PLANTED_SPEED = 0.5  # m/s: a foot on the floor moving slower than this is standing, not gliding


def planted_feet(motion: Motion, threshold: float = 0.5, speed: float = PLANTED_SPEED) -> np.ndarray:
    """(T, 2) bool, left and right ankle: planted by the model's contact labels, or low on the floor and slow.

    The model's labels alone miss most planted frames (val songs: on one dance none of the 190 frames whose foot was
    on the floor was labelled), so a foot whose ankle and toe are at planted height and whose ankle moves slower than
    `speed` counts as planted too. Faster feet on the floor are left alone: ballroom dancers glide (the real val
    dances' unlabelled low feet move at ~50 cm/s), and pinning a fast foot would stretch the leg.
    """
    j = motion.joint_positions()
    out = np.zeros((motion.num_frames, 2), dtype=bool)
    if motion.contacts is not None:
        out |= motion.contacts[:, :2] > threshold
    toes = (SK.index("left_foot"), SK.index("right_foot"))
    for (_, _, ankle, col), toe in zip(LEGS.values(), toes):
        low = (j[:, ankle, 1] <= ANKLE_LOW) & (j[:, toe, 1] <= TOE_LOW)
        v = np.linalg.norm(np.gradient(j[:, ankle][:, [0, 2]], axis=0), axis=-1) * motion.fps
        out[:, col] |= low & (v < speed)
    return out


STANCE_REACH = 0.20  # m: how far from where it stands a low foot still counts as arriving or leaving that stance
STANCE_MARGIN = 0.01  # m: the low band around a stance, a little above the planted heights


def grow_stances(motion: Motion, stances: np.ndarray, reach: float = STANCE_REACH, margin: float = STANCE_MARGIN
                 ) -> np.ndarray:
    """(T, 2) bool: each stance of `stances` grown over the low frames around it whose ankle is within `reach`.

    The model's feet come down and leave without slowing: a foot skims the floor at 1-2 m/s for several frames before
    it stops and after it starts (test songs: 45 % of the frames a foot is at planted height, against 17 % for the
    real dancers). Pinning only the slow frames left those skims sliding; pinning them to the stance's spot as well
    plants the foot as it lands, as a dancer's does. A grown stance stops a frame short of the next stance, so two
    stances of one foot are never pinned to one spot between them.
    """
    j = motion.joint_positions()
    out = stances.copy()
    toes = (SK.index("left_foot"), SK.index("right_foot"))
    T = motion.num_frames
    for (_, _, ankle, col), toe in zip(LEGS.values(), toes):
        low = (j[:, ankle, 1] <= ANKLE_LOW + margin) & (j[:, toe, 1] <= TOE_LOW + margin)
        for a, b in contact_segments(stances[:, col], 1):
            spot = j[a:b, ankle][:, [0, 2]].mean(axis=0)
            near = lambda t: low[t] and np.linalg.norm(j[t, ankle, [0, 2]] - spot) <= reach  # noqa: E731
            lo, hi = a, b
            while lo > 1 and near(lo - 1) and not out[lo - 2, col]:  # earlier stances are grown already
                lo -= 1
            while hi < T - 1 and near(hi) and not stances[hi + 1, col]:
                hi += 1
            out[lo:hi, col] = True
    return out


def _reach(motion: Motion, glob: np.ndarray, pos: np.ndarray, targets: dict) -> Motion:
    """`motion` with each leg of `targets` ({side: ((T, 3) ankle targets, (T,) bool frames)}) bent by two-bone IK
    so its ankle reaches the target on those frames; hip and knee turn, the foot keeps its world orientation."""
    new_glob = glob.copy()
    for side, (target, frames) in targets.items():
        if not frames.any():
            continue
        hip, knee, ankle, _ = LEGS[side]
        l1 = np.linalg.norm(SK.offsets[knee])
        l2 = np.linalg.norm(SK.offsets[ankle])
        H, K, A, tgt = pos[frames, hip], pos[frames, knee], pos[frames, ankle], target[frames]
        hinge = glob[frames, hip] @ np.array([1.0, 0.0, 0.0])
        K_new = _two_bone(H, K, A, tgt, l1, l2, hinge)
        r1 = rot.rotation_between(K - H, K_new - H)  # turn the thigh
        shin_after_r1 = (r1 @ (A - K)[..., None])[..., 0]
        r2 = rot.rotation_between(shin_after_r1, tgt - K_new)  # then the shin
        new_glob[frames, hip] = r1 @ glob[frames, hip]
        new_glob[frames, knee] = r2 @ r1 @ glob[frames, knee]
    local = motion.matrices()
    for side, (hip, knee, ankle, _) in LEGS.items():
        parent = SK.parents[hip]
        local[:, hip] = np.swapaxes(new_glob[:, parent], -1, -2) @ new_glob[:, hip]
        local[:, knee] = np.swapaxes(new_glob[:, hip], -1, -2) @ new_glob[:, knee]
        local[:, ankle] = np.swapaxes(new_glob[:, knee], -1, -2) @ glob[:, ankle]  # the foot keeps its orientation
    return Motion.from_matrices(local, motion.root_translation, fps=motion.fps, contacts=motion.contacts,
                                betas=motion.betas)


def foot_lock(motion: Motion, threshold: float = 0.5, blend: int = 4, min_length: int = 3,
              planted: np.ndarray | None = None, anchors: np.ndarray | None = None,
              lower: np.ndarray | None = None) -> tuple[Motion, FootLockReport]:
    """Pin planted ankles with two-bone IK; returns the cleaned motion and a report.

    `planted` (T, 2) bool, left and right ankle; by default the motion's contact labels above `threshold`.
    `anchors` (T, 2) bool: the frames whose mean ankle position a planted stretch is pinned to (default: all of it).
    `lower` (T,) in [0, 1]: how far (a share of the shortfall) each frame's pelvis may sink so a straight leg reaches
    its pinned foot (`_reach_drop`).
    """
    if planted is None:
        if motion.contacts is None:
            raise ValueError("foot lock needs foot-contact labels (motion.contacts)")
        planted = motion.contacts[:, :2] > threshold  # ankle columns
    glob, pos = motion.forward()
    T = motion.num_frames
    targets = {}
    for side, (hip, knee, ankle, col) in LEGS.items():
        # Each planted stretch pulls the ankle to its lock point with a weight that eases in and out. Where the
        # ramps of two stretches overlap, their pulls are averaged (weights normalised when they sum past 1), so
        # the target moves continuously from one lock point to the next instead of jumping between them.
        pull = np.zeros((T, 3))
        total = np.zeros(T)
        ramp = lambda n: 0.5 - 0.5 * np.cos(np.pi * (np.arange(1, n + 1) / (n + 1)))  # noqa: E731
        for a, b in contact_segments(planted[:, col], min_length):
            at = np.arange(a, b)
            if anchors is not None and anchors[a:b, col].any():
                at = at[anchors[a:b, col]]
            lock = pos[at, ankle].mean(axis=0)
            lock[1] = max(lock[1], pos[a:b, ankle, 1].min())
            lo, hi = max(0, a - blend), min(T, b + blend)
            w = np.ones(hi - lo)
            w[: a - lo] = ramp(a - lo)
            w[len(w) - (hi - b):] = ramp(hi - b)[::-1]
            pull[lo:hi] += w[:, None] * (lock - pos[lo:hi, ankle])
            total[lo:hi] += w
        weight = np.minimum(total, 1.0)
        target = pos[:, ankle] + pull / np.maximum(total, 1.0)[:, None]
        # the ease brings a foot in over the floor before it sets it down: a foot in the air stays above planted
        # height until its stance (pulled down with the rest, it reached the floor while still moving in, a slide)
        air = (weight < 1.0) & (pos[:, ankle, 1] > ANKLE_LOW)
        target[air, 1] = np.maximum(target[air, 1], ANKLE_LOW + AIR_MARGIN)
        targets[side] = (target, weight > 0)
    given = motion
    if lower is not None:
        drop = _reach_drop(pos, targets) * lower
        if drop.any():
            root = motion.root_translation.copy()
            root[:, 1] -= drop
            motion = replace(motion, root_translation=root)
            glob, pos = motion.forward()
    out = _reach(motion, glob, pos, targets)
    report = FootLockReport(foot_slide(given, planted), foot_slide(out, planted), int(planted.sum()))
    return out, report


AIR_MARGIN = 0.002  # m: how far above planted height an easing-in foot is kept
REACH_SLACK = 0.002  # m: how far inside its full length a straight leg is asked to reach (the IK clips at 0.1 mm)
MAX_DROP = 0.05  # m: the most the pelvis sinks for a reach


def _reach_drop(pos: np.ndarray, targets: dict) -> np.ndarray:
    """(T,) how far (m) the pelvis must sink so each leg reaches its ankle target, eased over a few frames.

    A foot pinned where it landed can lie beyond a straight leg as the pelvis moves on: the IK then stops at the
    leg's length and the planted foot is dragged along a millimetre a frame (keyed windows of val waltzes:
    0.01-0.03 m/s). A dancer bends the standing knee instead; sinking the pelvis by the shortfall does that.
    """
    need = np.zeros(len(pos))
    for side, (target, frames) in targets.items():
        hip, knee, ankle, _ = LEGS[side]
        reach = np.linalg.norm(SK.offsets[knee]) + np.linalg.norm(SK.offsets[ankle]) - REACH_SLACK
        v = target - pos[:, hip]
        flat = np.linalg.norm(v[:, [0, 2]], axis=-1)
        # sink by dy so |v + dy * up| = reach; a target further off than the leg reaches sideways gets the most
        dy = np.where(flat < reach, -v[:, 1] - np.sqrt(np.clip(reach ** 2 - flat ** 2, 0.0, None)), MAX_DROP)
        short = frames & (np.linalg.norm(v, axis=-1) > reach)
        need = np.maximum(need, np.where(short, np.clip(dy, 0.0, MAX_DROP), 0.0))
    if not need.any():
        return need
    drop = np.maximum(need, gaussian_filter1d(maximum_filter1d(need, size=5), sigma=1.5))
    toes = (SK.index("left_foot"), SK.index("right_foot"))
    for (side, (_, _, ankle, _)), toe in zip(LEGS.items(), toes):
        # a foot the lock does not hold keeps its height above planted height: sunk onto the floor with the pelvis,
        # a swinging foot would skid along it (a val cha-cha's keyed window: 0.03 -> 0.42 m/s)
        loose = ~targets[side][1] if side in targets else np.ones(len(pos), dtype=bool)
        room = np.maximum(pos[:, ankle, 1] - ANKLE_LOW, pos[:, toe, 1] - TOE_LOW) - AIR_MARGIN
        drop = np.where(loose, np.minimum(drop, np.maximum(room, 0.0)), drop)
    return drop


DROP_EASE = 5  # frames over which the pelvis may sink more the further it is from an edit's kept frames


def _away_from_kept(free: np.ndarray) -> np.ndarray:
    """(T,) 0 on kept frames rising smoothly to 1 DROP_EASE frames into the free ones: how far the pelvis may sink
    there (sunk right beside a kept frame, the pelvis would bob up onto it: a keyed waltz's seam jerk 3.4 -> 5.7)."""
    if free.all():
        return np.ones(len(free))
    u = np.clip(distance_transform_edt(free) / DROP_EASE, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def foot_lock_free(motion: Motion, free: np.ndarray) -> tuple[Motion, FootLockReport]:
    """Planted feet pinned and skimming feet lifted (`foot_lock`, `lift_skims`) on the `free` (T,) frames of an edit
    (a comp's or a repeat's transitions, the frames between keyed poses); every other frame comes back exactly.
    Returns the motion and a report on the free frames.

    An edit's kept frames come from dances whose feet were locked already, but the frames the model dances anew were
    not: a 40-s waltz comp's transitions slid planted feet at 1.4-1.6 m/s against 0.35 for the takes' p99. A stance
    that runs on into kept frames is pinned where its kept frames stand, so the free frames meet them without a step.
    """
    free = np.asarray(free, dtype=bool)
    if not free.any():
        return motion, FootLockReport(0.0, 0.0, 0)
    stances = planted_feet(motion)
    grown = grow_stances(motion, stances)
    for col in range(2):  # a stance kept on both sides of a free run stands in two places: split it in the middle
        for a, b in contact_segments(grown[:, col], 1):
            for u, v in contact_segments(free[a:b], 1):
                if u > 0 and a + v < b:  # kept frames before and after this free run
                    grown[a + (u + v) // 2, col] = False
    anchors = stances.copy()
    for col in range(2):
        for a, b in contact_segments(grown[:, col], 1):
            kept = ~free[a:b] & grown[a:b, col]
            if kept.any():  # the kept frames' stand is where the stance is (they come back as they are)
                anchors[a:b, col] = kept
    out, _ = foot_lock(motion, planted=grown, anchors=anchors, lower=_away_from_kept(free))
    # a foot on the floor faster than the kept dancing's feet ever glide there (its 99th percentile) is dragged in
    # swing: raised as `lift_skims` raises the takes' skims (they glide slower than SKIM_SPEED, which is for the
    # model's own dances), and as deep as it sinks: no floor lift follows for an edit (it would move kept frames),
    # and a 40-s waltz comp's transition dragged a foot with its toe 13 cm under the floor at 4-5 m/s
    out, _ = lift_skims(out, speed=min(SKIM_SPEED, _floor_glide(motion, ~free)), max_lift=EDIT_MAX_LIFT, by_step=True)
    legs = [j for leg in LEGS.values() for j in leg[:3]]  # the joints the lock turns
    turned = out.rotations[:, legs] * np.sign(np.sum(out.rotations[:, legs] * motion.rotations[:, legs], axis=-1,
                                                     keepdims=True) + 1e-12)  # the original's sign: no sign flips
    rotations = motion.rotations.copy()
    rotations[:, legs] = np.where(free[:, None, None], turned, motion.rotations[:, legs])
    root = np.where(free[:, None], out.root_translation, motion.root_translation)  # the pelvis sunk for a reach
    out = replace(motion, rotations=rotations, root_translation=root)
    on = grown & free[:, None]
    return out, FootLockReport(foot_slide(motion, on), foot_slide(out, on), int(on.sum()))


def _floor_glide(motion: Motion, frames: np.ndarray, share: float = 99.0) -> float:
    """The `share` percentile of a sliding foot's speed on the floor (m/s) over the steps between two of `frames`
    (T,), measured as the joins' check measures it (backend.metrics.joins.foot_slide: the ankle's step from one frame
    to the next with ankle and toe at planted height at both); PLANTED_SPEED where no foot slides there: those frames
    never glide, so a faster foot on the floor is dragged (it had been SKIM_SPEED, and a keyed window's flat foot slid
    at 1.1 m/s)."""
    both = frames[1:] & frames[:-1]
    v = floor_slides(motion)[both].ravel()
    v = v[v > 0]
    return float(np.percentile(v, share)) if v.size else PLANTED_SPEED


SKIM_SPEED = 1.5  # m/s: a foot at planted height moving faster than this is in swing (real dancers: 4 % of low frames)
SKIM_CLEARANCE = 0.03  # m above the planted heights a swinging foot is raised to: visibly off the floor
SKIM_MAX_LIFT = 0.06  # m: the most a foot is raised (a deeper skim is left to the floor lift)
EDIT_MAX_LIFT = 0.15  # m: the most a foot in an edit's free frames is raised (no floor lift follows there)


def lift_skims(motion: Motion, speed: float = SKIM_SPEED, clearance: float = SKIM_CLEARANCE,
               max_lift: float = SKIM_MAX_LIFT, by_step: bool = False) -> tuple[Motion, int]:
    """Feet skimming the floor faster than `speed` raised just clear of it; returns the motion and frames raised.

    What is left sliding after the foot lock is feet in swing that the model drags along the floor: on the test songs
    a third of the frames a foot is at planted height, at 1.1-1.4 m/s on average, where a real dancer's foot on the
    floor moves faster than 1.5 m/s on 4 % of them (its glides are slower). A foot that fast and lower than
    `clearance` above the planted heights is taken as swinging and raised (two-bone IK, the foot's orientation kept)
    until its ankle or toe is `clearance` above them, with the lift eased in and out over a few frames so the step
    reads as a step, not a hop. The raise is small (test songs: median 0.8 cm, at most 5.6 cm, 5 % of foot frames).
    `by_step`: a frame is fast when either of its steps (to the frame before or after) is, so no step faster than
    `speed` keeps both its ends on the floor (an edit's limit is a measured step speed, `_floor_glide`).
    """
    glob, pos = motion.forward()
    targets, raised = {}, 0
    toes = (SK.index("left_foot"), SK.index("right_foot"))
    for ((side, (_, _, ankle, _)), toe) in zip(LEGS.items(), toes):
        # the lift that makes the ankle clear ANKLE_LOW or the toe clear TOE_LOW, whichever is nearer
        need = np.minimum(ANKLE_LOW - pos[:, ankle, 1], TOE_LOW - pos[:, toe, 1]) + clearance
        if by_step:
            step = np.linalg.norm(np.diff(pos[:, ankle][:, [0, 2]], axis=0), axis=-1) * motion.fps
            v = np.maximum(np.r_[0.0, step], np.r_[step, 0.0])
        else:
            v = np.linalg.norm(np.gradient(pos[:, ankle][:, [0, 2]], axis=0), axis=-1) * motion.fps
        skim = (need > 0) & (v > speed)
        if not skim.any():
            continue
        full = np.where(skim, np.minimum(need, max_lift), 0.0)
        eased = gaussian_filter1d(maximum_filter1d(full, size=5), sigma=1.0)
        # the ease reaches only into moving frames (a foot standing, slower than PLANTED_SPEED, stays where it is
        # pinned) and grows with the foot's speed, so lifting off and setting down follow the foot's own pace
        moving = np.clip((v - PLANTED_SPEED) / max(speed - PLANTED_SPEED, 1e-6), 0.0, 1.0)
        lift = np.maximum(eased * moving, full)
        target = pos[:, ankle].copy()
        target[:, 1] += lift
        targets[side] = (target, lift > 1e-4)
        raised += int(skim.sum())
    if not targets:
        return motion, 0
    return _reach(motion, glob, pos, targets), raised


def repair_root_flips(motion: Motion, max_deg: float = 40.0, calm_deg: float = 20.0, margin: int = 2,
                      keep: np.ndarray | None = None) -> tuple[Motion, int]:
    """Replace the pelvis orientation through too-fast flips by a slerp across them; returns (motion, repaired count).

    The model sometimes averages two headings in its last denoising steps and the orthonormalised result tips the
    whole body over while it swings round (e.g. 124 deg in one frame with the torso leaning 60 deg). The real dances
    never turn the pelvis faster than 36 deg per frame (99.9th percentile 24), so a step above `max_deg` is a glitch;
    see `repair_flip_quaternions`. `keep` (T,) bool: frames whose pelvis must come back exactly (an edit's kept frames).
    """
    q, repaired = repair_flip_quaternions(motion.rotations[:, 0], max_deg, calm_deg, margin, keep)
    if not repaired:
        return motion, 0
    out = motion.rotations.copy()
    out[:, 0] = q
    return replace(motion, rotations=out), repaired


def repair_flip_quaternions(q: np.ndarray, max_deg: float = 40.0, calm_deg: float = 20.0, margin: int = 2,
                            keep: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(T, 4) orientations with each step above `max_deg` re-interpolated; returns (orientations, repaired count).

    The stretch around a flip where the orientation moves faster than `calm_deg` per frame (plus `margin` frames) is
    replaced by an eased slerp between its calm ends, which keeps the turn and drops the tip-over. `keep` (T,) bool:
    frames that come back exactly; a blend runs between them, never through them.
    """
    q = np.asarray(q, dtype=np.float64)
    T = len(q)
    if T < 3:
        return q, 0
    step = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], axis=-1)), 0, 1)))  # frame t -> t+1
    fast = step > calm_deg
    out = q.copy()
    repaired, t = 0, 0
    while t < len(step):
        if step[t] <= max_deg:
            t += 1
            continue
        a, b = t, t
        while a > 0 and fast[a - 1]:
            a -= 1
        while b + 1 < len(step) and fast[b + 1]:
            b += 1
        first, last = 0, T - 1  # how far a blend may reach
        if keep is not None:  # the blend runs between kept frames, never through them (no step where they resume)
            kept_before = np.flatnonzero(keep[:t + 1])
            kept_after = np.flatnonzero(keep[t + 1:]) + t + 1
            first = int(kept_before[-1]) if len(kept_before) else first
            last = int(kept_after[0]) if len(kept_after) else last
        lo, hi = max(first, a - margin), min(last, b + 1 + margin)  # calm frames at both ends
        # widen until the eased blend's fastest step (1.5x its mean) stays under max_deg: a half-turn squeezed into
        # the few frames of the glitch would still be a snap
        while 1.5 * _angle_deg(q[lo], q[hi]) / max(hi - lo, 1) > max_deg and (lo > first or hi < last):
            lo, hi = max(first, lo - 1), min(last, hi + 1)
        u = (np.arange(lo, hi + 1) - lo) / max(hi - lo, 1)
        ease = u * u * (3 - 2 * u)
        ends = np.broadcast_to(q[lo], (len(u), 4)), np.broadcast_to(q[hi], (len(u), 4))
        out[lo:hi + 1] = rot.quaternion_slerp(*ends, ease)
        repaired += 1
        t = max(b + 1, hi)  # a widened blend has already smoothed what lies inside it
    if repaired and keep is not None:
        out[keep] = q[keep]
    return out, repaired


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle (degrees) between two orientations given as unit quaternions."""
    return float(np.degrees(2 * np.arccos(np.clip(abs(float(np.dot(a, b))), 0.0, 1.0))))


FOOT_POINTS = [SK.index(n) for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]


def keep_above_floor(motion: Motion, floor: float = 0.0, radius: int = 6, sigma: float = 2.0
                     ) -> tuple[Motion, float]:
    """Raise the root wherever an ankle or toe would sink under the floor; returns (motion, largest lift in m).

    The lift is a smooth envelope over the sinking (a running maximum over +-`radius` frames, Gaussian-smoothed, and
    never below the sinking itself), so the body rises into and out of the frames that needed it instead of popping
    up for one frame. Nothing changes where the feet stay on or above the floor.
    """
    low = motion.joint_positions()[:, FOOT_POINTS, 1].min(axis=1)
    need = np.maximum(0.0, floor - low)
    if not need.any():
        return motion, 0.0
    lift = gaussian_filter1d(maximum_filter1d(need, size=2 * radius + 1, mode="nearest"), sigma, mode="nearest")
    lift = np.maximum(lift, need)
    root = motion.root_translation.astype(np.float64).copy()
    root[:, 1] += lift
    return replace(motion, root_translation=root), float(need.max())
