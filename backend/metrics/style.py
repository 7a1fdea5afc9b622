"""A ballroom style classifier for dances: is the style a user asked for the one they got?

Trained on real dances only. Each 5-s window becomes a vector of body-frame pose statistics (joint positions relative
to the pelvis in the pelvis' heading frame: mean and spread), joint-speed statistics, the root's height range and
the heading turn rate; a class-balanced logistic regression scores the windows and a dance takes the style with the
highest mean log-probability over its windows. Its own accuracy on real held-out dances is reported beside any use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rigs.motion import Motion

WINDOW, STRIDE = 150, 75  # frames at 30 fps


def window_features(motion: Motion, window: int = WINDOW, stride: int = STRIDE) -> np.ndarray:
    """(N, F) features of the dance's windows (one window when the dance is shorter than `window`)."""
    m = motion.resample(30.0) if abs(motion.fps - 30.0) > 1e-6 else motion
    j = m.joint_positions()
    root = j[:, 0]
    hips = j[:, 2] - j[:, 1]
    yaw = np.arctan2(hips[:, 0], hips[:, 2])
    c, s = np.cos(-yaw), np.sin(-yaw)
    rel = j - root[:, None]
    # turn every frame so the hip line lies along +z: pose in the dancer's own frame
    x = c[:, None] * rel[..., 0] + s[:, None] * rel[..., 2]
    z = -s[:, None] * rel[..., 0] + c[:, None] * rel[..., 2]
    body = np.stack([x, rel[..., 1], z], axis=-1).reshape(len(j), -1)
    speed = np.linalg.norm(j[1:] - j[:-1], axis=-1) * 30.0
    speed = np.concatenate([speed, speed[-1:]])
    turn = np.abs(np.angle(np.exp(1j * np.diff(yaw)))) * 30.0
    turn = np.concatenate([turn, turn[-1:]])
    travel = np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=-1) * 30.0
    travel = np.concatenate([travel, travel[-1:]])
    starts = list(range(0, max(1, len(j) - window + 1), stride))
    rows = []
    for a in starts:
        sl = slice(a, a + window)
        rows.append(np.concatenate([
            body[sl].mean(0), body[sl].std(0), speed[sl].mean(0), speed[sl].std(0),
            [root[sl, 1].std(), np.ptp(root[sl, 1]), turn[sl].mean(), turn[sl].std(), travel[sl].mean()],
        ]))
    return np.asarray(rows, dtype=np.float64)


@dataclass
class StyleClassifier:
    """Logistic regression over window features; `predict` votes over a dance's windows."""

    styles: list[str] = field(default_factory=list)
    model: object = None

    @classmethod
    def fit(cls, motions: list[Motion], labels: list[str], c: float = 0.1) -> "StyleClassifier":
        """Train on real dances with their style names."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = [], []
        for motion, label in zip(motions, labels):
            f = window_features(motion)
            X.append(f)
            y += [label] * len(f)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))
        model.fit(np.concatenate(X), np.asarray(y))
        return cls(list(model.classes_), model)

    def log_probs(self, motion: Motion) -> dict[str, float]:
        """Mean log-probability of each style over the dance's windows."""
        p = self.model.predict_log_proba(window_features(motion)).mean(0)
        return dict(zip(self.styles, p.tolist()))

    def predict(self, motion: Motion) -> str:
        """The most likely style of a dance."""
        lp = self.log_probs(motion)
        return max(lp, key=lp.get)


def leave_one_out_accuracy(motions: list[Motion], labels: list[str]) -> float:
    """Accuracy of the classifier on each real dance when trained on all the others."""
    hits = 0
    for i in range(len(motions)):
        rest = [m for k, m in enumerate(motions) if k != i]
        rest_labels = [lab for k, lab in enumerate(labels) if k != i]
        if labels[i] not in rest_labels:  # a style with one dance cannot be recognised without it
            continue
        hits += StyleClassifier.fit(rest, rest_labels).predict(motions[i]) == labels[i]
    return hits / len(motions)
