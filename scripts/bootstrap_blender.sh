#!/usr/bin/env bash
# Creates one small venv per extra Blender version under .venv-blender/<version>/, holding only that version's bpy
# wheel; everything else (torch, the project itself, pytest) comes from .venv through a site-dir line, so the add-on
# suite runs against each Blender with the same backend. Cached: a stamp per version skips work already done.
# Usage: scripts/bootstrap_blender.sh 4.2.23 4.5.15   (run after scripts/bootstrap.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
main="$root/.venv"
[ -x "$main/bin/python" ] || { echo "run scripts/bootstrap.sh first: $main is missing" >&2; exit 1; }
site_main="$("$main/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for version in "$@"; do
  venv="$root/.venv-blender/$version"
  stamp="$venv/.bpy-installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "bpy==$version $site_main" ]; then
    continue
  fi
  echo "creating $venv (bpy $version)" >&2
  rm -rf "$venv"
  # The same interpreter as .venv: bpy wheels and the shared packages must share one Python ABI.
  "$main/bin/python" -c 'import sys, venv; venv.EnvBuilder(with_pip=False).create(sys.argv[1])' "$venv"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # addsitedir (not a bare path) also runs .venv's own .pth files, e.g. the editable install of this project.
  # It appends, so this venv's bpy wins over .venv's.
  echo "import site; site.addsitedir('$site_main')" > "$site/zz_mace_dance_main.pth"
  # --no-deps: numpy and the rest are .venv's (bpy 4.x/5.0 wheels all run on numpy 1.26).
  "$main/bin/python" -m pip --disable-pip-version-check -q --python "$venv/bin/python" install --no-deps \
      "bpy==$version" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; } >&2
  "$venv/bin/python" -c "import bpy; assert bpy.app.version_string.startswith('${version%.*}'), bpy.app.version_string"
  echo "bpy==$version $site_main" > "$stamp"
done
