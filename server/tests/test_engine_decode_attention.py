"""The decode attention path computes what SDPA computes."""

import pytest
import torch
from engine_fixtures import reference_loop
from transformers import AutoModelForCausalLM, AutoTokenizer

from pictale_server.engine.base import Sampling
from pictale_server.engine.chat_format import format_tekken
from pictale_server.engine.decode_attention import decode_attention, register
from pictale_server.engine.runners import CausalLMRunner, WriterPrompt

pytest_plugins = ["engine_fixtures"]


@pytest.mark.parametrize("mask_kind", ["bool", "float", "none"])
@pytest.mark.parametrize(("query_heads", "kv_heads"), [(32, 8), (4, 4), (28, 4)])
def test_matches_sdpa_for_one_query_token(mask_kind, query_heads, kv_heads):
    torch.manual_seed(0)
    length, dim = 300, 16
    query = torch.randn(1, query_heads, 1, dim)
    full_key = torch.randn(1, kv_heads, 512, dim)
    key, value = full_key[:, :, :length], torch.randn(1, kv_heads, 512, dim)[:, :, :length]
    filled = torch.arange(length) < 200  # unfilled cache slots are masked
    mask = {
        "bool": filled.view(1, 1, 1, length),
        "float": torch.where(filled, 0.0, float("-inf")).view(1, 1, 1, length),
        "none": None,
    }[mask_kind]
    expected = torch.nn.functional.scaled_dot_product_attention(
        query,
        key.repeat_interleave(query_heads // kv_heads, dim=1),
        value.repeat_interleave(query_heads // kv_heads, dim=1),
        attn_mask=mask,
        scale=dim**-0.5,
    ).transpose(1, 2)
    ours = decode_attention(query, key, value, mask, dim**-0.5)
    assert ours.shape == (1, 1, query_heads, dim)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5)


def test_the_dev_writer_decodes_the_same_tokens_with_it(dev_model_paths):
    name = register()
    tokenizer = AutoTokenizer.from_pretrained(dev_model_paths.writer)
    prompt = format_tekken([{"role": "user", "content": "A red circle sits beside the water."}])
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    results = {}
    for attention in ("sdpa", name):
        model = AutoModelForCausalLM.from_pretrained(
            dev_model_paths.writer, dtype=torch.float32, attn_implementation=attention
        ).eval()
        loop = reference_loop(CausalLMRunner(model), cache_tokens=2048, vocab_size=model.config.vocab_size)
        tokens = list(loop.tokens(WriterPrompt(ids), ids, Sampling(max_tokens=24, temperature=0.0), 0))
        results[attention] = (tokens, loop.logits.clone())
    assert results[name][0] == results["sdpa"][0]
    assert torch.allclose(results[name][1], results["sdpa"][1], atol=1e-4, rtol=1e-4)
