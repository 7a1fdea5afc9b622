"""The allocator tuning applies on glibc Linux and can be switched off for measurements."""

import os
import platform
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tuned_in_child(setting: str) -> str:
    code = "from backend.runtime import tune_allocator; print(tune_allocator(), tune_allocator())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={**os.environ, "MACE_DANCE_MALLOC": setting})
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_allocator_is_tuned_unless_asked_not_to():
    assert _tuned_in_child("tuned") == "True True"  # and a second call is a harmless no-op
    assert _tuned_in_child("default") == "False False"



@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc-only")
def test_memory_is_handed_back_only_after_the_process_grew():
    """A release after every job cost a full collection and a heap walk (trivial jobs fell from 254 to 107 a
    second): a process that has not grown since its last release skips it; one that grew hands its pages back."""
    code = """
import numpy as np
from backend.runtime import release_memory, tune_allocator
tune_allocator()
first = release_memory()  # the first release settles where the process stands
again = release_memory()  # nothing grew: skipped
blocks = [np.ones(256) for _ in range(100_000)]  # ~200 MB of 2-KB heap blocks
kept = blocks[::1000]
del blocks
print(again, release_memory(), release_memory())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "True", "False"], out.stdout + out.stderr
