"""Keeping the caching allocator from holding GPU memory that nothing uses.

Both models and their caches leave ~4 GiB of an A10G for everything else, so memory that
PyTorch's allocator keeps reserved but unused is memory a long request cannot have. Two habits
of a serving process cause most of it (measured on an H200, docs/benchmarks.md):

- Every thread gets its own cuBLAS handle, whose workspace (32 MiB on Hopper) is allocated the
  first time the thread multiplies matrices. In the middle of a request that allocation is
  carved out of a segment cached for the request's temporaries, and as it lives for good it
  keeps the whole segment reserved (224 MiB of a 256 MiB segment). `prepare_thread` allocates
  it first, with nothing cached to carve from, so it gets a segment of its own size. The engine
  calls it on the threads that run the models: the loading thread, each batch's thread, and a
  thread that scores an image for the safety gate. The threads that only hand a request to a
  batch and read its tokens run no matmul, so they get no workspace.
- Temporaries differ in size from request to request and from phase to phase (the vision
  tower's patches, then the language model's prompt), and cached segments pile up because
  few later allocations fit them: five requests left 1.0 GiB reserved above the weights with
  at most 0.34 GiB ever in use. `release_cached_memory` hands them back at the end of a phase.
- What is left is fragmentation inside one request's segments; expandable segments (one
  growing segment per stream, mapped a page at a time) take most of it away
  (`use_expandable_segments`, before the weights are loaded).
"""

from __future__ import annotations

import logging
import os
import threading

import torch

log = logging.getLogger("pictale.engine")
_state = threading.local()


def use_expandable_segments(device: torch.device) -> bool:
    """Have the caching allocator grow expandable segments from now on, unless the operator set
    PYTORCH_CUDA_ALLOC_CONF (then theirs stands). True when the setting took effect."""
    if device.type != "cuda" or os.environ.get("PYTORCH_CUDA_ALLOC_CONF"):
        return False
    try:
        torch.cuda.memory._set_allocator_settings("expandable_segments:True")  # private API
    except (AttributeError, RuntimeError) as error:  # an allocator without the setting: keep it
        log.warning("expandable segments not available: %s", error)
        return False
    return True


def prepare_thread(device: torch.device) -> None:
    """Allocate this thread's cuBLAS workspace now, once (call before its first GPU work)."""
    if device.type != "cuda" or getattr(_state, "prepared", False):
        return
    torch.cuda.empty_cache()  # once per thread: leave no cached segment for the workspace
    _allocate_workspace(device)
    _state.prepared = True


def _allocate_workspace(device: torch.device) -> None:
    """Tiny bf16 matmuls: PyTorch allocates the calling thread's cuBLAS workspace on the first."""
    with torch.inference_mode():
        x = torch.zeros(8, 64, dtype=torch.bfloat16, device=device)
        w = torch.zeros(64, 64, dtype=torch.bfloat16, device=device)
        torch.nn.functional.linear(x, w)  # mm: the cuBLAS workspace
        torch.nn.functional.linear(x, w, w[0])  # addmm with a bias: cuBLASLt's, where separate


def release_cached_memory(device: torch.device) -> None:
    """Return cached, unused segments to the GPU (one device synchronization)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


_warm_up_streams: dict[torch.device, torch.cuda.Stream] = {}
_warm_up_lock = threading.Lock()


def warm_up_stream(device: torch.device) -> torch.cuda.Stream:
    """The one stream every graph capture on `device` warms up on. cuBLAS keeps a workspace
    (32 MiB on Hopper) for each stream it has run on, for good: a fresh stream per capture held
    32 MiB per captured graph (0.28 GiB for nine graphs, measured on an H200)."""
    with _warm_up_lock:
        if device not in _warm_up_streams:
            _warm_up_streams[device] = torch.cuda.Stream(device)
        return _warm_up_streams[device]
