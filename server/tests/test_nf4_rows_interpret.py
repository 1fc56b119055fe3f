"""Runs the rows NF4 kernel's interpreter cases (nf4_rows_interpreter_cases.py) in a fresh process."""

from interpreter_runner import run_under_interpreter


def test_nf4_rows_cases_under_the_triton_interpreter() -> None:
    run_under_interpreter("nf4_rows_interpreter_cases.py", minimum_passed=12)
