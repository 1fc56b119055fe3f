"""The decode loop's cache buckets: views of one buffer, picked per request, same results."""

import pytest
import torch
from engine_fixtures import reference_loop
from transformers import AutoModelForCausalLM, AutoTokenizer

from pictale_server.engine.base import Sampling
from pictale_server.engine.chat_format import format_tekken
from pictale_server.engine.kv_buckets import KVBuckets, bucket_lengths
from pictale_server.engine.runners import CausalLMRunner, WriterPrompt

pytest_plugins = ["engine_fixtures"]
CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("max_tokens", "expected"),
    [
        (16384, [1024, 2048, 4096, 8192, 16384]),
        (8192, [1024, 2048, 4096, 8192]),
        (3000, [1024, 2048, 3000]),
        (1024, [1024]),
        (500, [500]),
    ],
)
def test_bucket_lengths_double_up_to_the_context(max_tokens, expected):
    assert bucket_lengths(max_tokens) == expected


@pytest.fixture(scope="module")
def writer(dev_model_paths):
    model = AutoModelForCausalLM.from_pretrained(
        dev_model_paths.writer, dtype=torch.float32, attn_implementation="sdpa"
    )
    return model.eval(), AutoTokenizer.from_pretrained(dev_model_paths.writer)


def test_every_bucket_is_a_view_of_one_buffer(writer):
    model, _ = writer
    buckets = KVBuckets(model.config, 4096, dtype=torch.float32, device=CPU)
    full = buckets.caches[4096]
    for length, cache in buckets.caches.items():
        for layer, full_layer in zip(cache.layers, full.layers, strict=True):
            assert layer.keys.shape[2] == length
            assert layer.keys.data_ptr() == full_layer.keys.data_ptr()
            assert layer.values.data_ptr() == full_layer.values.data_ptr()
    assert buckets.length_for(1) == 1024
    assert buckets.length_for(1025) == 2048
    assert buckets.length_for(4096) == 4096
    with pytest.raises(ValueError):
        buckets.length_for(4097)


def test_requests_pick_the_shortest_bucket_and_decode_the_same_tokens(writer):
    model, tokenizer = writer
    prompt = format_tekken([{"role": "user", "content": "A red circle sits beside the water."}])
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    loop = reference_loop(CausalLMRunner(model), cache_tokens=4096, vocab_size=model.config.vocab_size)
    short = Sampling(max_tokens=16, temperature=0.0)
    long = Sampling(max_tokens=3000, temperature=0.0)
    short_tokens = list(loop.tokens(WriterPrompt(ids), ids, short, seed=0))
    assert loop.bucket == 1024
    steps = loop.tokens(WriterPrompt(ids), ids, long, seed=0)
    long_prefix = [token for _, token in zip(range(16), steps)]
    steps.close()
    assert loop.bucket == 4096
    assert long_prefix == short_tokens
    again = list(loop.tokens(WriterPrompt(ids), ids, short, seed=0))  # back to the short view
    assert loop.bucket == 1024
    assert again == short_tokens
    assert loop.written_tokens() == ids.shape[1] + short.max_tokens - 1
