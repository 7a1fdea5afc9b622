"""Pictures for checking a conversion by eye: marker skeleton beside the fitted SMPL skeleton."""

from __future__ import annotations

from pathlib import Path


from backend.data.tang2018 import CHAIN_A, CHAIN_B, HEAD_POINTS, PELVIS_POINT, TangSequence
from rigs.motion import Motion
from rigs.skeleton import smpl_skeleton

_MARKER_BONES = [(HEAD_POINTS[0], HEAD_POINTS[1]), (PELVIS_POINT, CHAIN_A["hip"]), (PELVIS_POINT, CHAIN_B["hip"]),
                 (CHAIN_A["shoulder"], CHAIN_B["shoulder"])]
for _c in (CHAIN_A, CHAIN_B):
    _MARKER_BONES += [(_c["shoulder"], _c["elbow"]), (_c["elbow"], _c["wrist"]), (_c["hip"], _c["knee"]),
                      (_c["knee"], _c["ankle"]), (_c["ankle"], _c["heel"]), (_c["ankle"], _c["toe"]),
                      (_c["heel"], _c["toe"])]


def plot_fit_frame(seq: TangSequence, motion25: Motion, scale: float, frame: int, path: Path,
                   chain_a_is_left: bool) -> Path:
    """Front and side views of one frame: markers (left panel pair) and fitted SMPL (right), same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sk = smpl_skeleton()
    markers = seq.positions[frame]
    joints = motion25.joint_positions()[frame] * scale
    # Both skeletons share the marker hip midpoint so they can be compared by eye; floors differ by design.
    joints += (markers[CHAIN_A["hip"]] + markers[CHAIN_B["hip"]]) / 2 - (joints[1] + joints[2]) / 2
    centre = markers.mean(axis=0)
    left_color, right_color = "#1f77b4", "#d62728"
    fig, axes = plt.subplots(1, 4, figsize=(14, 5), dpi=100)
    for col, (axis_h, label) in enumerate(((0, "x"), (2, "z"))):
        for k, (title, draw) in enumerate((("markers", "m"), ("fitted SMPL", "s"))):
            ax = axes[col * 2 + k]
            if draw == "m":
                for a, b in _MARKER_BONES:
                    side_a = a in CHAIN_A.values()
                    color = "#555555" if a in (0, 1, 2) or (a, b) == (CHAIN_A["shoulder"], CHAIN_B["shoulder"]) else (
                        left_color if side_a == chain_a_is_left else right_color)
                    ax.plot(markers[[a, b], axis_h], markers[[a, b], 1], color=color, lw=2)
                mid_sh = (markers[CHAIN_A["shoulder"]] + markers[CHAIN_B["shoulder"]]) / 2
                head = (markers[HEAD_POINTS[0]] + markers[HEAD_POINTS[1]]) / 2
                for a, b in ((markers[PELVIS_POINT], mid_sh), (mid_sh, head)):  # spine and neck as drawn by the authors
                    ax.plot([a[axis_h], b[axis_h]], [a[1], b[1]], color="#555555", lw=2)
                ax.scatter(markers[:, axis_h], markers[:, 1], s=8, color="k")
            else:
                for j, p in enumerate(sk.parents):
                    if p < 0:
                        continue
                    name = sk.joint_names[j]
                    color = left_color if name.startswith("left") else right_color if name.startswith("right") else "#555555"
                    ax.plot(joints[[p, j], axis_h], joints[[p, j], 1], color=color, lw=2)
                ax.scatter(joints[:, axis_h], joints[:, 1], s=8, color="k")
            ax.set_xlim(centre[axis_h] - 1.0, centre[axis_h] + 1.0)
            ax.set_ylim(centre[1] - 1.1, centre[1] + 0.9)
            ax.set_aspect("equal")
            ax.set_title(f"{title}: view along {'z' if axis_h == 0 else 'x'}")
            ax.set_xlabel(f"{label} (m)")
    fig.suptitle(f"{seq.name} frame {frame}: left side blue, right side red")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
