"""Runs the written-out decode step's interpreter cases (fused_decoder_step_interpreter_cases.py)
in a fresh process."""

from interpreter_runner import run_under_interpreter


def test_fused_decoder_step_cases_under_the_triton_interpreter() -> None:
    run_under_interpreter("fused_decoder_step_interpreter_cases.py", minimum_passed=3)
