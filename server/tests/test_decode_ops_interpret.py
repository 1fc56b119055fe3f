"""Runs the fused decode ops' interpreter cases (decode_ops_interpreter_cases.py) in a fresh
process: Triton picks interpreter or compiled mode when first imported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_decode_op_cases_under_the_triton_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "decode_ops_interpreter_cases.py")],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 13, summary
    assert not re.search(r"skipped|xfail|deselected", summary), summary
