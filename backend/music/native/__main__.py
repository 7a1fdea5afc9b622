"""`python -m backend.music.native [FOLDER]`: build the C kernels into the environment, or FOLDER
(scripts/bootstrap.sh runs it)."""

import sys
from pathlib import Path

from backend.music.native import BuildError, build


def main(argv: list[str]) -> int:
    """Build, saying where; without a compiler say so and leave the numba kernels in charge (exit 0)."""
    try:
        path = build(Path(argv[0]) if argv else None)
    except BuildError as exc:
        print(f"C kernels not built, the numba ones will run (slower to start): {exc}", file=sys.stderr)
        return 0
    print(f"C kernels: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
