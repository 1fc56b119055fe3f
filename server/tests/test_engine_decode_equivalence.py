"""The engine's own decoding (a batch over a static KV pool, the reference step) against plain
Hugging Face."""

import pytest
import torch
from engine_fixtures import scene_image, reference_loop
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from pictale_server.engine.base import Sampling
from pictale_server.engine.chat_format import format_chatml, format_tekken
from pictale_server.engine.kv_pool import PAGE_TOKENS, KVPool
from pictale_server.engine.batch_decoder import CacheNotWritten
from pictale_server.engine.runners import CausalLMRunner, QwenVLRunner, WriterPrompt
from pictale_server.engine.vision_inputs import VisionPreprocessor

pytest_plugins = ["engine_fixtures"]

GREEDY = Sampling(max_tokens=24, temperature=0.0)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def writer(dev_model_paths):
    model = AutoModelForCausalLM.from_pretrained(
        dev_model_paths.writer, dtype=torch.float32, attn_implementation="sdpa"
    )
    tokenizer = AutoTokenizer.from_pretrained(dev_model_paths.writer)
    loop = reference_loop(CausalLMRunner(model.eval()), cache_tokens=256, vocab_size=model.config.vocab_size)
    return model, tokenizer, loop


def writer_prompt(tokenizer, text="A red circle sits beside the calm water."):
    prompt = format_tekken([{"role": "user", "content": text}])
    return tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]


def test_greedy_tokens_match_hf_generate(writer):
    model, tokenizer, loop = writer
    ids = writer_prompt(tokenizer)
    ours = list(loop.tokens(WriterPrompt(ids), ids, GREEDY, seed=0))
    reference = model.generate(
        ids, max_new_tokens=GREEDY.max_tokens, do_sample=False, eos_token_id=None
    )
    assert ours == reference[0, ids.shape[1] :].tolist()


def test_step_logits_match_a_full_forward_over_the_sequence(writer):
    """Each step's logits (the batch's last logits after a request of that many tokens: the
    same seed gives the same tokens) against one forward over the whole sequence."""
    model, tokenizer, loop = writer
    ids = writer_prompt(tokenizer)
    step_logits = []
    for count in range(1, 13):
        sampling = Sampling(max_tokens=count, temperature=0.9, seed=3)
        tokens = list(loop.tokens(WriterPrompt(ids), ids, sampling, seed=3))
        step_logits.append(loop.logits.clone())
    full = torch.cat([ids, torch.tensor([tokens[:-1]])], dim=1)
    with torch.no_grad():
        reference = model(full).logits[0, ids.shape[1] - 1 :]
    assert torch.allclose(torch.cat(step_logits), reference, atol=1e-4, rtol=1e-4)


def test_the_cache_is_reset_between_requests(writer):
    _, tokenizer, loop = writer
    long_ids = writer_prompt(tokenizer, "The old lighthouse looks toward the evening sky. " * 4)
    short_ids = writer_prompt(tokenizer)
    first = list(loop.tokens(WriterPrompt(short_ids), short_ids, GREEDY, seed=0))
    for _ in range(3):  # more total steps than the cache holds, across requests
        list(
            loop.tokens(
                WriterPrompt(long_ids), long_ids, Sampling(max_tokens=60, temperature=1.0), seed=1
            )
        )
    again = list(loop.tokens(WriterPrompt(short_ids), short_ids, GREEDY, seed=0))
    assert again == first


class PrefillBesideTheCache(CausalLMRunner):
    """A forward that takes the cache under a keyword it does not know keeps its own cache."""

    def prefill(self, inputs, cache, *, row=0):
        return self.model(input_ids=inputs.input_ids, use_cache=True).logits[:, -1, :]


def test_a_model_that_does_not_write_the_cache_is_caught(writer, dev_model_paths):
    model, tokenizer, loop = writer
    ids = writer_prompt(tokenizer)
    loop.check_cache_writes(WriterPrompt(ids), ids)  # the real runner writes it
    unwritten = reference_loop(
        PrefillBesideTheCache(model), cache_tokens=256, vocab_size=model.config.vocab_size
    )
    with pytest.raises(CacheNotWritten, match=f"wrote 0 of {ids.shape[1]} tokens"):
        unwritten.check_cache_writes(WriterPrompt(ids), ids)


def test_sampling_with_a_seed_is_reproducible(writer):
    _, tokenizer, loop = writer
    ids = writer_prompt(tokenizer)
    settings = Sampling(
        max_tokens=30, temperature=1.0, top_p=0.95, min_p=0.02, repetition_penalty=1.1
    )
    runs = [list(loop.tokens(WriterPrompt(ids), ids, settings, seed=s)) for s in (11, 11, 12)]
    assert runs[0] == runs[1] != runs[2]


def test_vision_greedy_tokens_match_hf_generate(dev_model_paths):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        dev_model_paths.vision, dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    preprocessor = VisionPreprocessor.from_pretrained(
        dev_model_paths.vision, max_pixels=1280 * 28 * 28
    )
    prompt = format_chatml(
        [{"role": "system", "content": "Describe."}, {"role": "user", "content": "What?"}],
        with_image=True,
    )
    inputs = preprocessor(scene_image(), prompt)
    loop = reference_loop(QwenVLRunner(model), cache_tokens=512, vocab_size=model.config.text_config.vocab_size)
    ours = list(loop.tokens(inputs, inputs.input_ids, GREEDY, seed=0))
    reference = model.generate(
        input_ids=inputs.input_ids,
        pixel_values=inputs.pixel_values,
        image_grid_thw=inputs.image_grid_thw,
        mm_token_type_ids=inputs.mm_token_type_ids,
        max_new_tokens=GREEDY.max_tokens,
        do_sample=False,
        eos_token_id=None,
    )
    assert ours == reference[0, inputs.length :].tolist()


def test_a_loop_without_cuda_runs_its_steps_eagerly(writer):
    model, _, _ = writer
    loop = reference_loop(CausalLMRunner(model), cache_tokens=64, vocab_size=model.config.vocab_size)
    assert loop.graphs is False


def test_chunked_prefill_gives_the_same_logits_and_cache(writer):
    model, tokenizer, loop = writer
    ids = writer_prompt(tokenizer, "The old lighthouse looks toward the evening sky. " * 3)
    assert ids.shape[1] > 3 * 7  # several chunks, the last one partial
    pool = KVPool(model.config, 3 * PAGE_TOKENS, dtype=model.dtype, device=CPU)
    caches = [pool.region_cache(pool.reserve(ids.shape[1])) for _ in range(2)]
    with torch.inference_mode():
        whole = CausalLMRunner(model).prefill(WriterPrompt(ids), caches[0])
        chunked = CausalLMRunner(model, prefill_chunk_tokens=7).prefill(WriterPrompt(ids), caches[1])
    assert torch.allclose(chunked, whole, atol=1e-4, rtol=1e-4)
    for ours, theirs in zip(caches[0].layers, caches[1].layers, strict=True):
        assert int(ours.cumulative_length) == int(theirs.cumulative_length) == ids.shape[1]
        assert torch.allclose(ours.keys, theirs.keys, atol=1e-4, rtol=1e-4)
