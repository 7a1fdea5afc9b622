"""Shared fixtures: the real data folder beside the repository (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """../shared/data beside the repository, or $MACE_DANCE_DATA."""
    return Path(os.environ.get("MACE_DANCE_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"real data not found at {path} (set MACE_DANCE_DATA or place ../shared/data beside the repo)")
    return path
