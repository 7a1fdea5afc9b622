"""BVH files: a general reader, and a writer/reader for motions on the SMPL skeleton."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rigs import rotations as rot
from rigs.motion import Motion, MotionFileError
from rigs.skeleton import Skeleton, smpl_skeleton

_ROTATION_CHANNELS = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
_WRITE_ORDER = "ZXY"  # the most common order in the wild (Mixamo, CMU conversions)


@dataclass
class BvhClip:
    """The content of a BVH file, in the file's own units and joint order (depth first)."""

    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3)
    channels: tuple[tuple[str, ...], ...]
    frame_time: float
    values: np.ndarray  # (F, total channels)
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> its End Site offset

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def _columns(self) -> list[dict[str, int]]:
        cols, start = [], 0
        for chans in self.channels:
            cols.append({c: start + i for i, c in enumerate(chans)})
            start += len(chans)
        return cols

    def local_rotations(self) -> np.ndarray:
        """(F, J, 3, 3) joint rotations relative to the parent (identity for joints without rotation channels)."""
        out = np.broadcast_to(np.eye(3), (self.num_frames, len(self.joint_names), 3, 3)).copy()
        for j, (chans, cols) in enumerate(zip(self.channels, self._columns())):
            names = [c for c in chans if c in _ROTATION_CHANNELS]
            if not names:
                continue
            if len(names) != 3:
                raise ValueError(f"joint {self.joint_names[j]!r} has {len(names)} rotation channels; expected 3")
            order = "".join(_ROTATION_CHANNELS[c] for c in names)
            angles = np.deg2rad(self.values[:, [cols[c] for c in names]])
            out[:, j] = rot.euler_to_matrix(angles, order)
        return out

    def local_translations(self) -> np.ndarray:
        """(F, J, 3) joint positions in the parent frame: the offset, or the position channels where a joint has them."""
        out = np.broadcast_to(self.offsets, (self.num_frames, *self.offsets.shape)).copy()
        for j, cols in enumerate(self._columns()):
            for axis, c in enumerate(_POSITION_CHANNELS):
                if c in cols:
                    out[:, j, axis] = self.values[:, cols[c]]
        return out

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations (F, J, 3, 3) and positions (F, J, 3), in file units."""
        local_r = self.local_rotations()
        local_t = self.local_translations()
        rots, pos = [], []
        for j, p in enumerate(self.parents):
            if p < 0:
                rots.append(local_r[:, j])
                pos.append(local_t[:, j])
            else:
                rots.append(rots[p] @ local_r[:, j])
                pos.append(pos[p] + (rots[p] @ local_t[:, j, :, None])[..., 0])
        return np.stack(rots, 1), np.stack(pos, 1)

    def skeleton(self, scale: float = 1.0, name: str = "bvh") -> Skeleton:
        """The file's hierarchy as a Skeleton, offsets multiplied by `scale`."""
        return Skeleton(name, self.joint_names, self.parents, self.offsets * scale)


def read_bvh(path: str | Path) -> BvhClip:
    """Parse a BVH file; malformed or truncated files raise MotionFileError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise MotionFileError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MotionFileError(path, f"cannot read ({exc})") from None
    try:
        return _parse(text)
    except (ValueError, IndexError) as exc:
        raise MotionFileError(path, f"not a valid BVH file: {exc}") from None


def _parse(text: str) -> BvhClip:
    head, sep, motion = text.partition("MOTION")
    if not sep:
        raise ValueError("no MOTION section")
    tokens = head.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise ValueError("does not start with HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []  # open joints; -2 marks an End Site block
    end_sites: dict[int, np.ndarray] = {}
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            if tok == "ROOT" and stack:
                raise ValueError("ROOT inside another joint")
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            if tokens[i + 2] != "{":
                raise ValueError(f"expected '{{' after joint {tokens[i + 1]!r}")
            stack.append(len(names) - 1)
            i += 3
        elif tok == "End":
            if tokens[i + 2] != "{":
                raise ValueError("expected '{' after End Site")
            stack.append(-2)
            i += 3
        elif tok == "OFFSET":
            values = [float(v) for v in tokens[i + 1 : i + 4]]
            if stack and stack[-1] >= 0:
                offsets[stack[-1]] = values
            elif len(stack) >= 2 and stack[-2] >= 0:
                end_sites[stack[-2]] = np.asarray(values, dtype=np.float64)
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            chans = tuple(tokens[i + 2 : i + 2 + n])
            unknown = [c for c in chans if c not in _ROTATION_CHANNELS and c not in _POSITION_CHANNELS]
            if unknown or len(chans) != n:
                raise ValueError(f"bad CHANNELS line {' '.join(tokens[i:i + 2 + n])!r}")
            channels[stack[-1]] = chans
            i += 2 + n
        elif tok == "}":
            if not stack:
                raise ValueError("unbalanced '}'")
            stack.pop()
            i += 1
        else:
            raise ValueError(f"unexpected token {tok!r} in HIERARCHY")
    if stack:
        raise ValueError("HIERARCHY is not closed (truncated file?)")
    if not names:
        raise ValueError("no joints in HIERARCHY")
    if sum(p < 0 for p in parents) != 1:
        raise ValueError("exactly one ROOT joint is supported")

    mtok = motion.split()
    if len(mtok) < 5 or mtok[0] != "Frames:" or mtok[2:4] != ["Frame", "Time:"]:
        raise ValueError("MOTION section must start with 'Frames: N' and 'Frame Time: dt'")
    frames = int(mtok[1])
    frame_time = float(mtok[4])
    if frames < 1 or not (frame_time > 0):
        raise ValueError(f"bad frame count {frames} or frame time {frame_time}")
    n_channels = sum(len(c) for c in channels)
    data = np.asarray(mtok[5:], dtype=np.float64)
    if data.size != frames * n_channels:
        got = data.size / max(n_channels, 1)
        raise ValueError(f"expected {frames} frames of {n_channels} values, found {got:g} frames (truncated file?)")
    values = data.reshape(frames, n_channels)
    if not np.isfinite(values).all():
        raise ValueError("motion data contain NaN or infinite values")
    return BvhClip(tuple(names), tuple(parents), np.asarray(offsets, dtype=np.float64), tuple(channels), frame_time,
                   values, end_sites)


def rotate_clip(clip: BvhClip, matrix: np.ndarray) -> BvhClip:
    """The same clip with the whole world turned by `matrix` (e.g. Z-up to Y-up): offsets and positions rotate,
    every joint's rotation R becomes M R M^T, re-expressed in the joint's own channel order."""
    m = np.asarray(matrix, dtype=np.float64)
    values = clip.values.copy()
    local_r = clip.local_rotations()
    for j, (chans, cols) in enumerate(zip(clip.channels, clip._columns())):
        pos = [c for c in _POSITION_CHANNELS if c in cols]
        if pos:
            if len(pos) != 3:
                raise ValueError(f"joint {clip.joint_names[j]!r} has {len(pos)} position channels; expected 3")
            values[:, [cols[c] for c in _POSITION_CHANNELS]] = values[:, [cols[c] for c in _POSITION_CHANNELS]] @ m.T
        names = [c for c in chans if c in _ROTATION_CHANNELS]
        if names:
            order = "".join(_ROTATION_CHANNELS[c] for c in names)
            turned = m @ local_r[:, j] @ m.T
            # unwrapped along time, so curves made from the file do not jump by 360 degrees
            values[:, [cols[c] for c in names]] = np.rad2deg(np.unwrap(rot.matrix_to_euler(turned, order), axis=0))
    return replace(clip, offsets=clip.offsets @ m.T, values=values,
                   end_sites={j: m @ o for j, o in clip.end_sites.items()})


def transform_clip(clip: BvhClip, matrix: np.ndarray) -> BvhClip:
    """The same clip placed by a 4x4 transform (uniform scale, rotation, translation), e.g. an armature object's
    world matrix: lengths scale, the world turns (rotate_clip), and the root's position channels move."""
    m = np.asarray(matrix, dtype=np.float64)
    scale = float(abs(np.linalg.det(m[:3, :3])) ** (1.0 / 3.0))
    if scale < 1e-12:
        raise ValueError("the transform scales the clip to nothing")
    values = clip.values.copy()
    cols = clip._columns()
    for j in range(len(clip.joint_names)):
        pos = [cols[j][c] for c in _POSITION_CHANNELS if c in cols[j]]
        values[:, pos] *= scale
    scaled = replace(clip, offsets=clip.offsets * scale, values=values,
                     end_sites={j: o * scale for j, o in clip.end_sites.items()})
    turned = rotate_clip(scaled, m[:3, :3] / scale)
    root = [cols[0][c] for c in _POSITION_CHANNELS if c in cols[0]]
    if len(root) == 3:
        turned.values[:, root] += m[:3, 3]
    return turned


def write_clip(path: str | Path, clip: BvhClip) -> Path:
    """Write any BvhClip (its joints, channel orders and End Sites as they are)."""
    lines = ["HIERARCHY"]
    children: dict[int, list[int]] = {}
    for j, p in enumerate(clip.parents):
        children.setdefault(p, []).append(j)

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if clip.parents[j] < 0 else 'JOINT'} {clip.joint_names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET " + " ".join(f"{v:.6f}" for v in clip.offsets[j]))
        if clip.channels[j]:
            lines.append(f"{pad}  CHANNELS {len(clip.channels[j])} " + " ".join(clip.channels[j]))
        for c in children.get(j, []):
            emit(c, depth + 1)
        if j in clip.end_sites:
            lines.extend([f"{pad}  End Site", f"{pad}  {{",
                          f"{pad}    OFFSET " + " ".join(f"{v:.6f}" for v in clip.end_sites[j]), f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(children[-1][0], 0)
    lines += ["MOTION", f"Frames: {clip.num_frames}", f"Frame Time: {clip.frame_time:.10f}"]
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in clip.values)
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# --- SMPL motions -----------------------------------------------------------------------------------------------

def _depth_first(skeleton: Skeleton) -> list[int]:
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in skeleton.children(j):
            visit(c)

    visit(0)
    return order


def write_bvh(path: str | Path, motion: Motion, scale: float = 100.0) -> Path:
    """Write a motion on the SMPL skeleton as BVH; `scale` converts metres to file units (100: centimetres)."""
    sk = motion.skeleton()
    order = _depth_first(sk)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        kind = "ROOT" if sk.parents[j] < 0 else "JOINT"
        off = sk.offsets[j] * scale
        lines.append(f"{pad}{kind} {sk.joint_names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        rot_chans = " ".join(f"{a}rotation" for a in _WRITE_ORDER)
        if kind == "ROOT":
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_chans}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {rot_chans}")
        kids = sk.children(j)
        for c in kids:
            emit(c, depth + 1)
        if not kids:
            # End sites only draw the leaf bone; continue the parent-to-joint direction by a short distance.
            tip = sk.offsets[j] / max(np.linalg.norm(sk.offsets[j]), 1e-9) * 0.05 * scale
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {tip[0]:.6f} {tip[1]:.6f} {tip[2]:.6f}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    euler = np.rad2deg(rot.matrix_to_euler(motion.matrices(), _WRITE_ORDER))  # (T, J, 3)
    cols = [motion.root_translation.astype(np.float64) * scale] + [euler[:, j] for j in order]
    values = np.concatenate(cols, axis=1)
    lines.append("MOTION")
    lines.append(f"Frames: {motion.num_frames}")
    lines.append(f"Frame Time: {1.0 / motion.fps:.10f}")
    body = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in values)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("\n".join(lines) + "\n" + body + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_bvh_motion(path: str | Path) -> Motion:
    """Read a BVH whose hierarchy is the SMPL skeleton (as `write_bvh` writes it) into a Motion.

    The file's unit is inferred from its leg length against SMPL's, so files in metres or centimetres both load.
    BVH files of other skeletons go through `rigs.retarget.bvh_to_motion` with a preset instead.
    """
    clip = read_bvh(path)
    smpl = smpl_skeleton()
    missing = [n for n in smpl.joint_names if n not in clip.joint_names]
    if missing:
        raise MotionFileError(path, f"not an SMPL-skeleton BVH (missing joints {missing[:4]}...); "
                                    "load it through a retarget preset instead")
    index = [clip.joint_names.index(n) for n in smpl.joint_names]
    file_sk = Skeleton("bvh", tuple(smpl.joint_names), smpl.parents, clip.offsets[index])
    unit = file_sk.leg_length() / smpl.leg_length()
    local = clip.local_rotations()[:, index]
    root = clip.local_translations()[:, index[0]] / unit
    return Motion.from_matrices(local, root, fps=clip.fps)

