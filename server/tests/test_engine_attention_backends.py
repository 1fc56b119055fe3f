"""The engine keeps SDPA off cuDNN's attention on a GPU (engine/attention_backends.py)."""

import torch

from pictale_server.engine.attention_backends import avoid_planned_attention


def test_a_gpu_engine_turns_cudnn_attention_off_and_a_cpu_one_leaves_it() -> None:
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        avoid_planned_attention(torch.device("cpu"))
        assert torch.backends.cuda.cudnn_sdp_enabled()
        avoid_planned_attention(torch.device("cuda"))
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        # the other kernels stay: a prefill's mask still goes to the memory-efficient one
        assert torch.backends.cuda.mem_efficient_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
