"""Runs the NF4 kernel's interpreter cases (nf4_interpreter_cases.py) in a fresh process."""

from interpreter_runner import run_under_interpreter


def test_kernel_cases_under_the_triton_interpreter() -> None:
    run_under_interpreter("nf4_interpreter_cases.py", minimum_passed=21)
