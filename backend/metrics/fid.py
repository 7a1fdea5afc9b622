"""Normalisation, Frechet distance and diversity over feature sets; spec sections 3 and 4."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg


def normalize(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise both sets with the reference set's mean and std (ddof 0), as Bailando and mint do."""
    ref = np.asarray(reference, dtype=np.float64)
    gen = np.asarray(generated, dtype=np.float64)
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    return (ref - mean) / (std + 1e-10), (gen - mean) / (std + 1e-10)


def frechet_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> float:
    """FID between two feature sets (rows are samples); real part of sqrtm, eps*I added when non-finite."""
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 samples per set, got {a.shape[0]} and {b.shape[0]}")
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        # With fewer samples than dimensions the covariances are singular by construction (spec section 9.8).
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def fid(reference: np.ndarray, generated: np.ndarray, varying_only: bool = False) -> float:
    """FID of generated features against reference features, both normalised by the reference.

    `varying_only` drops features that never vary in the reference (std 0): the reference code divides those by
    1e-10, so one rare event in a generated set explodes the score. That variant is ours and reported separately.
    """
    if varying_only:
        keep = np.asarray(reference).std(axis=0) > 1e-6
        reference, generated = np.asarray(reference)[:, keep], np.asarray(generated)[:, keep]
    ref, gen = normalize(reference, generated)
    return frechet_distance(gen, ref)


def diversity(reference: np.ndarray, generated: np.ndarray) -> float:
    """Mean pairwise Euclidean distance of the normalised generated features (Div / Dist)."""
    _, gen = normalize(reference, generated)
    n = gen.shape[0]
    if n < 2:
        raise ValueError("diversity needs at least 2 samples")
    d = np.linalg.norm(gen[:, None] - gen[None, :], axis=-1)
    return float(d[np.triu_indices(n, 1)].mean())
