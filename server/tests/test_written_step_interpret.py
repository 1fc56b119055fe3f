"""Runs the written-out decode step's interpreter cases (written_step_interpreter_cases.py)
in a fresh process."""

from interpreter_runner import run_under_interpreter


def test_written_step_cases_under_the_triton_interpreter() -> None:
    run_under_interpreter("written_step_interpreter_cases.py", minimum_passed=5)
