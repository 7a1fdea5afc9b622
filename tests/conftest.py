"""Shared fixtures: the real data folder beside the repository (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# float32 passes on every CPU, so the suite's tolerances do not depend on whether this one has native bf16
# (backend/motion/precision.py); tests/test_precision.py asks for bf16 itself
os.environ.setdefault("MACE_DANCE_PRECISION", "fp32")


def shared_data_dir() -> Path:
    """../shared/data beside the repository, or $MACE_DANCE_DATA."""
    return Path(os.environ.get("MACE_DANCE_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"real data not found at {path} (set MACE_DANCE_DATA or place ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def tang_dataset(shared_data, tmp_path_factory):
    """The Tang 2018 set converted once per session into a folder of the session's own (not the repository's
    .cache): the slow tests that need all of it share it."""
    from backend.data.dataset import DanceDataset

    return DanceDataset(shared_data, tmp_path_factory.mktemp("tang_cache"))


@pytest.fixture(autouse=True, scope="session")
def _own_rig_presets_folder(tmp_path_factory):
    """User bone-map presets go to a folder of the test session's own (never the machine user's ~/.config)."""
    old = os.environ.get("MACE_DANCE_RIG_PRESETS")
    os.environ["MACE_DANCE_RIG_PRESETS"] = str(tmp_path_factory.mktemp("rig_presets"))
    yield
    if old is None:
        os.environ.pop("MACE_DANCE_RIG_PRESETS", None)
    else:
        os.environ["MACE_DANCE_RIG_PRESETS"] = old


@pytest.fixture(autouse=True, scope="session")
def _no_analysis_cache():
    """No test writes song analyses to the machine user's ~/.cache, and each analyses its song as it always did; the
    cache's own tests (tests/test_analysis_cache.py) give it a folder of their own."""
    old = os.environ.get("MACE_DANCE_ANALYSIS_CACHE")
    os.environ["MACE_DANCE_ANALYSIS_CACHE"] = "off"
    yield
    if old is None:
        os.environ.pop("MACE_DANCE_ANALYSIS_CACHE", None)
    else:
        os.environ["MACE_DANCE_ANALYSIS_CACHE"] = old


_SESSION: list = []


def pytest_sessionstart(session) -> None:
    _SESSION.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """End the process right after the report under the bpy 4.2 and 4.5 wheels.

    Their module teardown at interpreter exit hangs (4.5) or segfaults (4.2) after a session whose tests loaded torch
    models in the same process (5.0's does not; the add-on itself never imports torch in Blender). The outcome is
    decided and printed by then, so the session's exit status is kept and the broken teardown skipped (as are atexit
    handlers: coverage.py would lose its data under these two versions).
    """
    import sys

    bpy = sys.modules.get("bpy")
    if bpy is not None and tuple(bpy.app.version) < (5, 0, 0) and _SESSION:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(_SESSION[-1].exitstatus))
