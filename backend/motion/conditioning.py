"""What the denoiser is conditioned on besides noise: the music inputs (librosa columns + rhythm) and the style.

One definition for training, evaluation and generation, chosen by the model's config, so a model folder trained on
the 35 EDGE columns keeps getting exactly those and a rhythm-aware model gets its extra columns.
"""

from __future__ import annotations

import numpy as np

from backend.music.features import ENVELOPE, FEATURE_DIM, MusicFeatures
from backend.music.rhythm import RHYTHM_DIM, rhythm_features
from bridge.request import STYLES, RequestError, style_key

# STYLES (bridge.request): index 0 is "auto": no style asked for (the condition dropped), the model picks one from the
# music.


class StyleError(ValueError):
    """A style name the model does not know, or a style asked of a model without a style condition."""


def style_index(name: str | None, n_styles: int) -> int:
    """The embedding index of a style name for a model with `n_styles` styles ('auto' and None are 0)."""
    try:
        index = STYLES.index(style_key(name))
    except RequestError as exc:
        raise StyleError(str(exc)) from None
    if index and not n_styles:
        raise StyleError(f"this model has no style condition; use style 'auto' instead of {name!r}")
    return index


def music_dim(rhythm: bool) -> int:
    """Width of the music inputs: the 35 librosa columns, plus the rhythm columns for rhythm-aware models."""
    return FEATURE_DIM + (RHYTHM_DIM if rhythm else 0)


def music_inputs(music: MusicFeatures, rhythm: bool) -> np.ndarray:
    """(T, music_dim) float32 unnormalised music inputs of a model."""
    if not rhythm:
        return np.asarray(music.features, dtype=np.float32)
    extra = rhythm_features(music.beat_frames, music.features[:, ENVELOPE.start])
    return np.concatenate([music.features, extra], axis=1).astype(np.float32)
