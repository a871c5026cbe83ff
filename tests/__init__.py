"""The test suite. Its modules import the development stack (``scripts/devstack``):
pytest puts ``scripts/`` on ``sys.path`` (``pythonpath`` in pyproject.toml), and this
does the same for modules run directly, e.g. ``python -m tests.reliability.failure_modes_page``."""

import sys
from pathlib import Path

_SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")
if _SCRIPTS not in sys.path:
    sys.path.append(_SCRIPTS)
