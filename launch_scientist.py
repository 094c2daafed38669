"""Take research ideas through LLM-coded experiments: `python launch_scientist.py --help`.

Any python3 will do: the script runs itself again with the repository's environment (.venv, which `make setup`
creates), so that the orchestrator's pinned packages are the ones used.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"


def in_repository_environment() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


if __name__ == "__main__":
    if not in_repository_environment():
        python = VENV / "bin" / "python"
        if python.exists():
            os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
        print(f"launch_scientist.py: the orchestrator's environment ({VENV}) is missing; run `make setup` first.",
              file=sys.stderr)
        sys.exit(2)
    from scientist.launch.cli import main

    sys.exit(main())
