"""A stand-in for ``kubectl`` or ``aws`` that answers from recorded JSON.

Usage (from a generated wrapper on PATH): ``python fake_tool.py TOOL ARGS...``

``$FAKE_TOOLS_SCENARIO`` names a JSON file ``{"kubectl": [rule, ...], "aws": [...]}``;
a rule is ``{"args": [...], "file": "name.json" | "stdout": "...", "stderr": "...",
"exit": 0}``. The first rule whose ``args`` all occur in the command line answers
(``file`` is relative to the scenario file); no rule: exit 1 with an error like the
real tool's. Every call is appended to ``$FAKE_TOOLS_CALLS`` as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main() -> int:
    tool, args = sys.argv[1], sys.argv[2:]
    scenario_path = Path(os.environ["FAKE_TOOLS_SCENARIO"])
    with open(os.environ["FAKE_TOOLS_CALLS"], "a") as calls:
        calls.write(json.dumps({"tool": tool, "args": args}) + "\n")
    rules = json.loads(scenario_path.read_text()).get(tool, [])
    for rule in rules:
        if all(token in args for token in rule["args"]):
            if "file" in rule:
                sys.stdout.write((scenario_path.parent / rule["file"]).read_text())
            sys.stdout.write(rule.get("stdout", ""))
            sys.stderr.write(rule.get("stderr", ""))
            return int(rule.get("exit", 0))
    sys.stderr.write(f"error: fake {tool} has no recorded answer for: {' '.join(args)}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
