"""Runs the decode Triton kernels' interpreter cases (decode_ops_interpreter_cases.py: decode
ops, decode attention, sampler noise, sampler) in a fresh process."""

from interpreter_runner import run_under_interpreter


def test_decode_op_cases_under_the_triton_interpreter() -> None:
    run_under_interpreter("decode_ops_interpreter_cases.py", minimum_passed=35)
