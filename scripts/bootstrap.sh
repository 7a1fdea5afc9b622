#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the project with the extras given as arguments, e.g. `dev`.
# Re-running is cheap: a stamp of pyproject.toml and the extras installed skips the install when nothing changed
# and the extras asked for are installed already (scripts/dance after scripts/test reinstalled everything: 15-85 s).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
venv="$root/.venv"
stamp="$venv/.mace-dance-installed"
# the C kernels' sources count too: a change to them rebuilds them (python -m backend.music.native, below)
hash="$(cat pyproject.toml backend/music/native/*.c | sha256sum | cut -c1-16)"
have_hash="" have=""
[ -f "$stamp" ] && read -r have_hash have < "$stamp" || true
args="${*:-}"
wanted=" ${args//,/ } "  # extras as arguments or comma-separated: dev,blender
if [ "$have_hash" = "$hash" ]; then
  missing=""
  for extra in $wanted; do case " ${have//,/ } " in *" $extra "*) ;; *) missing="$missing $extra" ;; esac; done
  [ -z "$missing" ] && exit 0
  wanted="$wanted ${have//,/ }"  # install the union: the extras already there stay
fi
extras="$(printf '%s\n' $wanted | sort -u | paste -sd, -)"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with $($py --version 2>&1)" >&2
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
quiet() {  # this machine's pip config names local index folders that may be empty: hide only those warnings
  "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; } >&2
}
# The CPU build of torch lies on this machine's disk; asking for it first keeps pip from pulling a CUDA build.
quiet "${pip[@]}" install "torch==2.13.0"
spec="."
[ -n "$extras" ] && spec=".[$extras]"
quiet "${pip[@]}" install -e "$spec"
# Compile librosa's numba kernels once, here, before anything runs in parallel: numba writes each cached gufunc as
# two files, and two processes compiling at once can leave a mismatched pair that segfaults every later run
# (numba#10128, librosa#1998; seen here when the tests and prepare-data first ran side by side). librosa.beat compiles
# its kernels on import; the same call compiles the numba fallback of the downbeat networks' LSTM kernel and the
# decode the bar-pointer HMMs' Viterbi (backend/music/numba_kernels.py; MACE_DANCE_KERNELS=numba asks for them).
# A pair already broken segfaults here too: delete librosa/**/__pycache__/*.nb[ic] and rerun.
MACE_DANCE_KERNELS=numba \
"$venv/bin/python" -W ignore -c "import librosa.beat; from backend.music.features import extract_features; import numpy as np; \
extract_features(np.random.default_rng(0).standard_normal(15360 * 3).astype(np.float32)); \
from backend.music import downbeats; downbeats.decode(np.full((40, 2), 0.2, np.float32), (0.0, 0.4))" >/dev/null
# The same two loops in C (backend/music/native), which a cold run loads without numba's 0.3 s start; without a C
# compiler this says so and the numba kernels above run instead.
"$venv/bin/python" -m backend.music.native >/dev/null
echo "$hash $extras" > "$stamp"
