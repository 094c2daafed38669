"""Take SAE research ideas through LLM-coded experiments: `python launch_scientist.py --help`."""

import sys

from scientist.launcher import main

if __name__ == "__main__":
    sys.exit(main())
