"""GPU loading choices as plain functions: NF4 config, attention kernel, and the layout check.

bitsandbytes NF4 with bf16 compute (fp16 overflows Qwen2.5-VL). The vision tower and `lm_head`
stay unquantized: transformers 5 needs `model.visual` spelled out (a bare `visual` does not
match), and any skip list replaces the default `lm_head` skip, so it is listed too.
"""

from __future__ import annotations

import importlib.util

import torch

from pictale_server.engine.decode_attention import register as register_decode_attention

SKIP_MODULES = ["model.visual", "visual", "lm_head"]
VISION_TOWER_PREFIXES = ("model.visual", "visual")


def nf4_config():
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        # No nested (double) quantization: the fast decode kernel reads fp32 absmax (~0.4 GB
        # more for both models, well inside the A10G budget; docs/kernels.md).
        bnb_4bit_use_double_quant=False,
        llm_int8_skip_modules=list(SKIP_MODULES),
    )


def attention_implementation(*, cuda: bool) -> str:
    """flash-attn 2 when it is installed (and a GPU is there), else PyTorch SDPA with the
    engine's decode-step attention (decode_attention.py) for single-token queries."""
    if cuda and importlib.util.find_spec("flash_attn") is not None:
        try:
            import flash_attn  # noqa: F401
        except Exception:  # noqa: BLE001 — a broken build must not stop the server: SDPA has its own flash kernel
            return register_decode_attention()
        return "flash_attention_2"
    return register_decode_attention()


def _is_4bit(module: torch.nn.Module) -> bool:
    return type(module).__name__ == "Linear4bit"


def quantization_layout_errors(model: torch.nn.Module) -> list[str]:
    """Names of 4-bit layers that must not be 4-bit: under the vision tower, or `lm_head`."""
    errors = []
    for name, module in model.named_modules():
        if not _is_4bit(module):
            continue
        if name == "lm_head" or name.endswith(".lm_head"):
            errors.append(f"{name} is 4-bit")
        elif any(name == p or name.startswith(p + ".") for p in VISION_TOWER_PREFIXES):
            errors.append(f"{name} is 4-bit inside the vision tower")
    return errors


def assert_quantization_layout(model: torch.nn.Module) -> None:
    errors = quantization_layout_errors(model)
    if errors:
        shown = "; ".join(errors[:5])
        raise RuntimeError(
            f"quantization left {len(errors)} layer(s) 4-bit that must not be: {shown}"
        )
    if not any(_is_4bit(module) for module in model.modules()):
        raise RuntimeError("quantization was requested but no layer is 4-bit")
