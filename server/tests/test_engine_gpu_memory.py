"""The engine's allocator habits (engine/gpu_memory.py): what they do and when they stay out."""

import threading

import torch

from pictale_server.engine import gpu_memory

CUDA = torch.device("cuda")


def test_nothing_happens_on_cpu(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("no CUDA call on a CPU engine")

    monkeypatch.setattr(torch.cuda, "empty_cache", fail)
    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", fail)
    cpu = torch.device("cpu")
    assert gpu_memory.use_expandable_segments(cpu) is False
    gpu_memory.prepare_thread(cpu)
    gpu_memory.release_cached_memory(cpu)


def test_expandable_segments_leave_an_operators_allocator_settings_alone(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", calls.append)
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:512")
    assert gpu_memory.use_expandable_segments(CUDA) is False
    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF")
    assert gpu_memory.use_expandable_segments(CUDA) is True
    assert calls == ["expandable_segments:True"]


def test_an_allocator_without_the_setting_keeps_serving(monkeypatch, caplog) -> None:
    def refuse(setting):
        raise RuntimeError("unrecognized CachingAllocator option: expandable_segments")

    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", refuse)
    assert gpu_memory.use_expandable_segments(CUDA) is False
    assert "expandable segments not available" in caplog.text


def test_each_thread_allocates_its_workspace_once_with_nothing_cached(monkeypatch) -> None:
    events = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("empty_cache"))
    monkeypatch.setattr(gpu_memory, "_allocate_workspace", lambda device: events.append("workspace"))

    def worker() -> None:
        gpu_memory.prepare_thread(CUDA)
        gpu_memory.prepare_thread(CUDA)

    for _ in range(2):  # two threads: one workspace each, the second call a no-op
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert events == ["empty_cache", "workspace"] * 2
