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


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT_STATUS.append(int(exitstatus))


def pytest_unconfigure(config) -> None:
    """End the process right after the report under the bpy 4.2 and 4.5 wheels.

    Their module teardown at interpreter exit hangs (4.5) or segfaults (4.2) after a session whose tests loaded torch
    models in the same process (5.0's does not; the add-on itself never imports torch in Blender). The outcome is
    decided and printed by then, so the exit status is kept and the broken teardown skipped.
    """
    import sys

    bpy = sys.modules.get("bpy")
    if bpy is not None and tuple(bpy.app.version) < (5, 0, 0) and _EXIT_STATUS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
