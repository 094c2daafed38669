"""Paths shared by both test suites: tests/template runs in the template's environment, tests/scientist in the
orchestrator's. Tests run offline on the CPU at tiny sizes."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = REPO / "templates" / "sae_variants"
sys.path.insert(0, str(TEMPLATE_DIR))
