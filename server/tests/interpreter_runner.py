"""Runs a file of test cases under Triton's interpreter in a fresh process.

Triton picks interpreter or compiled mode when it is first imported, and bitsandbytes imports
it, so such cases cannot share the main test process: any earlier test may already have
imported it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def run_under_interpreter(cases_file: str, minimum_passed: int) -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / cases_file)],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= minimum_passed, summary
    assert not re.search(r"skipped|xfail|deselected", summary), summary
