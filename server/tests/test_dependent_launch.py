"""Programmatic dependent launch (kernels/dependent_launch.py): when it is on, and the launch
it makes. The kernels' behaviour under it is checked on a GPU (bench/gpu/kernel_bench.py,
fused_ops_check.py); here, everything that needs no GPU."""

import ctypes

import pytest
import torch
from engine_fixtures import dev_settings

from pictale_server.engine.loader import load_engine
from pictale_server.kernels import dependent_launch
from pictale_server.kernels.triton_dependent_launch import launch_options

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    monkeypatch.setattr(dependent_launch, "_enabled", True)
    dependent_launch._supported.cache_clear()
    yield
    dependent_launch._supported.cache_clear()


def gpu_of(monkeypatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


def test_on_for_hopper_and_newer_only(monkeypatch) -> None:
    gpu_of(monkeypatch, (9, 0))
    assert dependent_launch.active(CUDA)
    dependent_launch._supported.cache_clear()
    gpu_of(monkeypatch, (8, 6))  # A10G
    assert not dependent_launch.active(CUDA)
    assert not dependent_launch.active(torch.device("cpu"))


def test_the_setting_turns_it_off_for_later_launches(monkeypatch) -> None:
    gpu_of(monkeypatch, (9, 0))
    dependent_launch.configure(False)
    assert not dependent_launch.active(CUDA)
    assert launch_options(CUDA) == {"PDL": False, "launch_pdl": False}
    dependent_launch.configure(True)
    assert launch_options(CUDA) == {"PDL": True, "launch_pdl": True}


def test_triton_kernels_launch_the_usual_way_on_cpu() -> None:
    assert launch_options(torch.device("cpu")) == {"PDL": False, "launch_pdl": False}


def test_launch_structures_match_the_driver_api_layout() -> None:
    # cuda.h: CUlaunchAttribute is an 8-byte-padded id and a 64-byte union; CUlaunchConfig has
    # seven uints, then the stream, the attribute pointer and their count, 8-byte aligned.
    attribute, config = dependent_launch._LaunchAttribute, dependent_launch._LaunchConfig
    assert ctypes.sizeof(attribute) == 72
    assert attribute.value.offset == 8
    assert (config.stream.offset, config.attrs.offset, config.num_attrs.offset) == (32, 40, 48)
    assert ctypes.sizeof(config) == 56


def test_a_launch_passes_the_attribute_grid_and_arguments(monkeypatch) -> None:
    seen = {}

    def launch_kernel_ex(config_pointer, function, params, extra) -> int:
        config = config_pointer._obj
        seen["grid"] = (config.grid_x, config.grid_y, config.grid_z)
        seen["block"] = (config.block_x, config.block_y, config.block_z)
        seen["shared"] = config.shared_mem
        seen["attribute"] = (config.attrs[0].id, config.attrs[0].value, config.num_attrs)
        seen["function"] = function
        slots = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
        seen["pointer"] = ctypes.cast(slots[0], ctypes.POINTER(ctypes.c_void_p))[0]
        seen["int"] = ctypes.cast(slots[1], ctypes.POINTER(ctypes.c_int))[0]
        seen["float"] = ctypes.cast(slots[2], ctypes.POINTER(ctypes.c_double))[0]  # as torch passes one
        return 0

    class Stream:
        cuda_stream = 1234

    class Kernel:
        func = ctypes.c_void_p(42)

    monkeypatch.setattr(dependent_launch, "_launch_kernel_ex", lambda: launch_kernel_ex)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: Stream())
    tensor = torch.zeros(4)
    dependent_launch.launch_dependent(Kernel(), 396, 160, [tensor, -7, 1e-5], 70_000)
    assert seen["grid"] == (396, 1, 1) and seen["block"] == (160, 1, 1) and seen["shared"] == 70_000
    assert seen["attribute"] == (6, 1, 1)  # programmatic stream serialization, allowed
    assert seen["function"].value == 42
    assert (seen["pointer"], seen["int"], seen["float"]) == (tensor.data_ptr(), -7, 1e-5)


def test_arguments_other_than_tensors_ints_and_floats_are_refused() -> None:
    class Kernel:
        func = ctypes.c_void_p(1)

    with pytest.raises(TypeError, match="str"):
        dependent_launch.launch_dependent(Kernel(), 1, 32, ["1.5"], 0)


class StopLoading(Exception):
    pass


def test_the_engine_applies_the_setting_before_loading_a_model(tmp_path, monkeypatch) -> None:
    engine = load_engine(dev_settings(tmp_path, dependent_launch=False))

    def stop() -> None:
        assert not dependent_launch._enabled
        raise StopLoading

    monkeypatch.setattr(engine, "_resolve_dev_sources", stop)
    with pytest.raises(StopLoading):
        engine.load()
