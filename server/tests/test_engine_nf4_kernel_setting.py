"""The engine's NF4 decode-kernel setting: off means bitsandbytes, on falls back with a reason."""

import logging

import pytest
import torch

import pictale_server.kernels as kernels
from pictale_server.engine.loader import load_engine
from pictale_server.settings import Settings


def engine_with(tmp_path, kernel: str):
    return load_engine(Settings(profile="dev", cache_dir=tmp_path, nf4_kernel=kernel))


def test_off_never_touches_the_model(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the kernel must not be enabled when the setting is off")

    monkeypatch.setattr(kernels, "enable_fast_nf4", refuse)
    engine_with(tmp_path, "off")._enable_nf4_kernel(torch.nn.Linear(4, 4))


@pytest.mark.parametrize("kernel", ["fp32", "bf16x2", "cuda"])
def test_a_model_the_kernel_cannot_run_keeps_bitsandbytes_and_says_why(tmp_path, kernel, caplog):
    engine = engine_with(tmp_path, kernel)
    with caplog.at_level(logging.WARNING, logger="pictale.engine"):
        engine._enable_nf4_kernel(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    assert engine._nf4_kernels == []
    assert "NF4 decode kernel not used: the model has no bitsandbytes 4-bit layers" in caplog.text


def test_the_setting_accepts_only_known_values():
    with pytest.raises(ValueError):
        Settings(nf4_kernel="fast")


def test_a_kernel_that_fails_to_compile_falls_back_to_bitsandbytes(tmp_path, monkeypatch, caplog):
    class Handle:
        enabled = True
        disabled = False

        def warmup(self, rows):
            raise RuntimeError("ptxas: unsupported instruction")

        def disable(self):
            self.disabled = True

    handle = Handle()
    monkeypatch.setattr(kernels, "enable_fast_nf4", lambda model, **options: handle)
    engine = engine_with(tmp_path, "fp32")
    with caplog.at_level(logging.ERROR, logger="pictale.engine"):
        engine._enable_nf4_kernel(torch.nn.Linear(4, 4))
    assert handle.disabled
    assert engine._nf4_kernels == []
    assert "failed to compile" in caplog.text
