"""Programmatic dependent launch: a decode kernel starts while the one before it finishes.

Inside the captured decode graph a kernel normally starts only after the previous one has
completed and its writes are flushed, so every one of the ~600 launches of a writer token
pays a gap plus its own start-up (an NF4 launch first fills a 64 KB table and requests its
first weights). On Hopper and newer (compute capability 9.0+) a kernel launched with the
"programmatic stream serialization" attribute may start as soon as every block of the previous
kernel has signalled (`griddepcontrol.launch_dependents`) or exited; it does what does not
depend on that kernel (the NF4 table, the first weight tiles) and then waits
(`griddepcontrol.wait`) until the previous kernel has completed and its memory is visible.

The rule every kernel here keeps: nothing before the wait reads what an earlier kernel wrote or
writes anything another kernel reads. The wait covers the whole chain: a kernel completes only
after its own wait, so each kernel still sees everything launched before it.

Off unless `configure(True)` (setting `PICTALE_DEPENDENT_LAUNCH=true`); older GPUs always
launch the usual way. Once the NF4 kernel's table build got cheap, the early start cost the
writer more than it hid (docs/kernels.md). It applies to launches made after the call, so set
it before decode graphs are captured.
"""

from __future__ import annotations

import ctypes
import functools

import torch

_enabled = False

# cuda.h: CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
_PROGRAMMATIC_STREAM_SERIALIZATION = 6


def configure(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


@functools.cache
def _supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (9, 0)


def active(device: torch.device) -> bool:
    """Whether kernels launched now on `device` overlap their start with the previous kernel."""
    return _enabled and _supported(device)


class _LaunchAttribute(ctypes.Structure):
    # CUlaunchAttribute: an enum id padded to 8 bytes, then a 64-byte value union
    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_int), ("rest", ctypes.c_char * 60)]


class _LaunchConfig(ctypes.Structure):
    # CUlaunchConfig
    _fields_ = [
        ("grid_x", ctypes.c_uint), ("grid_y", ctypes.c_uint), ("grid_z", ctypes.c_uint),
        ("block_x", ctypes.c_uint), ("block_y", ctypes.c_uint), ("block_z", ctypes.c_uint),
        ("shared_mem", ctypes.c_uint), ("stream", ctypes.c_void_p),
        ("attrs", ctypes.POINTER(_LaunchAttribute)), ("num_attrs", ctypes.c_uint),
    ]


@functools.cache
def _launch_kernel_ex():
    from torch.cuda import _utils as cuda_utils

    function = cuda_utils._get_gpu_runtime_library().cuLaunchKernelEx
    function.argtypes = [ctypes.POINTER(_LaunchConfig), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


def launch_dependent(kernel, grid: int, block: int, args: list, shared_mem: int) -> None:
    """Launch a kernel loaded by torch.cuda's module loader (`_CudaKernel`) on the current stream
    with the programmatic-serialization attribute. Arguments: tensors (as pointers), ints, floats (doubles)."""
    from torch.cuda import _utils as cuda_utils

    keep = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            keep.append(ctypes.c_void_p(arg.data_ptr()))
        elif isinstance(arg, int):
            keep.append(ctypes.c_int(arg))
        elif isinstance(arg, float):  # a double, as torch's module loader passes it
            keep.append(ctypes.c_double(arg))
        else:
            raise TypeError(f"unsupported kernel argument {type(arg).__name__}")
    params = (ctypes.c_void_p * len(keep))(*[ctypes.cast(ctypes.byref(value), ctypes.c_void_p) for value in keep])
    attribute = _LaunchAttribute(id=_PROGRAMMATIC_STREAM_SERIALIZATION, value=1)
    config = _LaunchConfig(
        grid, 1, 1, block, 1, 1, shared_mem,
        ctypes.c_void_p(torch.cuda.current_stream().cuda_stream), ctypes.pointer(attribute), 1,
    )
    cuda_utils._check_cuda(_launch_kernel_ex()(ctypes.byref(config), kernel.func, params, None))


__all__ = ["active", "configure", "launch_dependent"]
