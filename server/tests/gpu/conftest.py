"""The GPU suite: tests that need a CUDA GPU. Where there is none (CPU CI), every test in this
folder is collected and skipped.

On a GPU machine, from server/ (docs/kernels.md):

    python -m pytest tests/gpu -q -rs --confcutdir=tests/gpu

`--confcutdir` keeps the parent folder's conftest (the HTTP server's fixtures) out, so the
suite needs only torch, Triton and transformers (and bitsandbytes for the tests that use it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)
