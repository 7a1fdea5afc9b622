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

