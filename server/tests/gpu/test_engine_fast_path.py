"""The engine's fast decode path on a GPU, against its reference path, through the engine.

Small random models of both architectures, with the head size and widths the fast path's
kernels take (the dev profile's are too narrow), are written as the Hub repositories hold
them (old Qwen key names, bf16, several shards with an index), turned into NF4 checkpoints by
`prepare_weights` exactly as a deployment prepares them (bitsandbytes quantizes on the GPU),
and loaded by the engine. One engine serves on the fast path, a second one on the reference
path (PICTALE_FAST_PATH=off) over the same checkpoints, so every difference is the decode
step's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading

import pytest
import torch
from PIL import Image
from transformers import MistralForCausalLM, Qwen2_5_VLForConditionalGeneration

from pictale_server.engine.base import Cancel, ChatMessage, Finished, Sampling
from pictale_server.engine.dev.models import (
    image_processor,
    tiny_writer_config,
    vision_config,
)
from pictale_server.engine.dev.hub_layout import save_in_hub_layout
from pictale_server.engine.dev.tokenizers import build_qwen_tokenizer, build_tekken_tokenizer
from pictale_server.engine.fast_path.written_step import RowRegions
from pictale_server.engine.prepare_weights import HubModel, prepare, quantize_nf4
from pictale_server.engine.runners import WriterPrompt
from pictale_server.engine.loader import load_engine
from pictale_server.settings import Settings

pytest.importorskip("bitsandbytes", reason="the fast path serves bitsandbytes NF4 models")
if not torch.cuda.is_available():
    pytest.skip("the fast path needs a CUDA GPU", allow_module_level=True)

TEXT = {
    "hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 3,
    "num_attention_heads": 8, "num_key_value_heads": 4,
}
CONTEXT_TOKENS = 2048
SHARD_BYTES = 8_000_000  # several shards and an index, as the Hub repositories have
COMMIT = "0" * 40


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("small-models")
    writer_tokenizer = build_tekken_tokenizer()
    config = tiny_writer_config(
        len(writer_tokenizer), writer_tokenizer.bos_token_id, writer_tokenizer.eos_token_id,
        writer_tokenizer.pad_token_id,
    )
    for key, value in TEXT.items():
        setattr(config, key, value)
    config.head_dim = 64
    torch.manual_seed(11)
    save_in_hub_layout(MistralForCausalLM(config), root / "hub-writer", max_shard_bytes=SHARD_BYTES)
    writer_tokenizer.save_pretrained(root / "hub-writer")

    vision_tokenizer = build_qwen_tokenizer()
    vconfig = vision_config(
        vision_tokenizer,
        text={**TEXT, "vocab_size": len(vision_tokenizer), "max_window_layers": TEXT["num_hidden_layers"],
              "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]}},
        vision={"depth": 2, "hidden_size": 128, "intermediate_size": 256, "num_heads": 2,
                "out_hidden_size": TEXT["hidden_size"], "fullatt_block_indexes": [1]},
    )
    torch.manual_seed(12)
    save_in_hub_layout(Qwen2_5_VLForConditionalGeneration(vconfig), root / "hub-vision", max_shard_bytes=SHARD_BYTES)
    vision_tokenizer.save_pretrained(root / "hub-vision")
    image_processor().save_pretrained(root / "hub-vision")

    def download(source: HubModel, downloads):  # the snapshot a Hub download would leave
        snapshot = downloads / "snapshots" / COMMIT
        shutil.copytree(root / f"hub-{source.role}", snapshot)
        return snapshot

    sources = [HubModel("vision", "acme/vision-small", COMMIT), HubModel("writer", "acme/writer-small", COMMIT)]
    prepared = prepare(root / "weights", sources, download=download, quantize=quantize_nf4)
    return {result.source.role: result.path for result in prepared}


def test_prepare_weights_made_plain_nf4_checkpoints_from_the_hub_layout(checkpoints):
    for role, path in checkpoints.items():
        config = json.loads((path / "config.json").read_text())
        assert config["quantization_config"]["bnb_4bit_quant_type"] == "nf4", role
        assert not config["quantization_config"]["bnb_4bit_use_double_quant"], role


def engine_for(paths, fast_path: str):
    engine = load_engine(Settings(
        profile="custom", vision_model=str(paths["vision"]), writer_model=str(paths["writer"]),
        max_context_tokens=CONTEXT_TOKENS, fast_path=fast_path,
    ))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def fast(checkpoints):
    return engine_for(checkpoints, "auto")


@pytest.fixture(scope="module")
def reference(checkpoints):
    return engine_for(checkpoints, "off")


PROMPT = [ChatMessage(role="user", content="Tell a story about the harbour at dusk, the ships and the lights.")]


def writer_tokens(engine, sampling: Sampling, prompt=PROMPT) -> tuple[list[int], torch.Tensor]:
    """The writer's token ids for `prompt`, and the first decode step's logits (from a run of
    two tokens alone: lane 0's last logits)."""
    loop = engine.loaded("writer").loop
    ids = engine.writer_prompt_ids(prompt)
    seed = sampling.seed or 0
    tokens = list(loop.tokens(WriterPrompt(ids), ids, sampling, seed=seed))
    list(loop.tokens(WriterPrompt(ids), ids, dataclasses.replace(sampling, max_tokens=2), seed=seed))
    return tokens, loop.logits.clone()


def test_nf4_models_on_this_gpu_decode_on_the_fast_path(fast, reference):
    for model in ("vision", "writer"):
        assert fast.decode_info(model) == {"path": "fast", "reason": ""}
        assert reference.decode_info(model) == {"path": "reference", "reason": "PICTALE_FAST_PATH=off"}
    assert not torch.backends.cuda.cudnn_sdp_enabled()  # prefills plan nothing (attention_backends.py)


@pytest.mark.parametrize("deterministic", [False, True], ids=["cuda-cores", "tensor-cores"])
def test_the_fast_step_computes_what_the_reference_step_computes(fast, reference, deterministic):
    greedy = Sampling(max_tokens=24, temperature=0.0, deterministic=deterministic)
    ours, our_logits = writer_tokens(fast, greedy)
    theirs, their_logits = writer_tokens(reference, greedy)
    # Same prefill (bitsandbytes on both), so the first token is equal; the first decode step's
    # logits differ by the NF4 kernel's rounding (bf16 pair products) against bitsandbytes'.
    assert ours[0] == theirs[0]
    relative = float((our_logits - their_logits).norm() / their_logits.norm())
    assert relative < 2e-2, relative
    assert our_logits.argmax() == their_logits.argmax()


def graph_and_eager(engine, sampling: Sampling):
    """writer_tokens once through the captured graphs and once eagerly."""
    loop = engine.loaded("writer").loop
    replayed = writer_tokens(engine, sampling)
    captured, loop.graphs = loop.graphs, False
    try:
        return replayed, writer_tokens(engine, sampling)
    finally:
        loop.graphs = captured


def test_replayed_graphs_give_the_eager_steps_tokens_bit_for_bit(fast):
    sampled = Sampling(max_tokens=40, temperature=0.9, min_p=0.05, repetition_penalty=1.1, seed=3)
    ranked = Sampling(max_tokens=40, temperature=0.9, top_p=0.8, top_k=40, seed=4)
    for sampling in (sampled, ranked):
        (graph_tokens, graph_logits), (eager_tokens, eager_logits) = graph_and_eager(fast, sampling)
        assert graph_tokens == eager_tokens
        assert torch.equal(graph_logits, eager_logits)


def test_a_seed_gives_the_same_story_every_time(fast):
    sampling = Sampling(max_tokens=32, temperature=1.0, min_p=0.02, seed=99)
    assert writer_tokens(fast, sampling)[0] == writer_tokens(fast, sampling)[0]


def test_many_requests_leave_every_lane_and_slot_free(fast):
    """2,400 steps over 30 requests: each ends whole and gives its lane and region back."""
    loop = fast.loaded("writer").loop
    sampling = Sampling(max_tokens=80, temperature=0.7, seed=1)
    for _ in range(30):
        tokens, _ = writer_tokens(fast, sampling)
        assert len(tokens) == 80
    assert settled(loop)


def settled(loop) -> bool:
    loop.wait_idle(10)
    return loop.pool.free_tokens == loop.pool.capacity


def all_at_once(engine, requests: list[tuple[list, Sampling]]) -> list[list[int]]:
    """Each (prompt, sampling) streamed on its own thread, all at once: their token ids."""
    loop = engine.loaded("writer").loop
    results: list[list[int]] = [[] for _ in requests]

    def consume(index: int) -> None:
        prompt, sampling = requests[index]
        ids = engine.writer_prompt_ids(prompt)
        results[index] = list(loop.tokens(WriterPrompt(ids), ids, sampling, seed=sampling.seed or 0))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def story(words: int) -> list:
    return [ChatMessage(role="user", content="A lighthouse by the sea," + " and the gulls" * words)]


@pytest.mark.parametrize("sampling", [
    Sampling(max_tokens=96, temperature=0.0, deterministic=True),
    Sampling(max_tokens=96, temperature=1.0, min_p=0.02, seed=21, deterministic=True),
    Sampling(max_tokens=96, temperature=0.9, top_p=0.8, seed=22, deterministic=True),
    Sampling(max_tokens=96, temperature=0.9, seed=23, presence_penalty=0.3, dry_multiplier=0.8,
             xtc_probability=0.5, xtc_threshold=0.05, deterministic=True),
], ids=["greedy", "min_p", "top_p", "creative"])
def test_a_deterministic_request_gets_the_same_tokens_alone_and_in_a_batch_of_eight(fast, sampling):
    """Batch invariance on the fast path: alone, a deterministic request's steps run the
    tensor-core kernel as a batch of eight does, which computes a row the same way whatever
    rows share the step, so the tokens are equal, not merely close."""
    loop = fast.loaded("writer").loop
    alone = writer_tokens(fast, sampling, story(3))[0]
    others = [(story(w), Sampling(max_tokens=40 + 9 * w, temperature=1.0, seed=w)) for w in range(7)]
    rows_before = loop.stats.rows
    together = all_at_once(fast, [*others[:4], (story(3), sampling), *others[4:]])
    assert together[4] == alone
    assert loop.stats.rows - rows_before > 96  # steps ran many rows
    assert settled(loop)


def test_steps_of_three_rows_and_more_and_deterministic_ones_run_on_tensor_cores(fast):
    step = fast.loaded("writer").loop.step
    assert [step.tensor_cores_for(rows, False) for rows in (1, 2, 4, 8, 16)] == [False, False, True, True, True]
    assert all(step.tensor_cores_for(rows, True) for rows in (1, 2, 4, 8, 16))
    vision = fast.loaded("vision").loop.step  # its two-row step is faster on tensor cores too
    assert [vision.tensor_cores_for(rows, False) for rows in (1, 2, 4)] == [False, True, True]


@pytest.mark.parametrize("tensor_cores", [False, True], ids=["cuda-cores", "tensor-cores"])
def test_the_batched_step_of_eight_rows_gives_each_row_its_one_row_logits(fast, tensor_cores):
    """The written-out step over 8 lanes at once against each lane on its own, bit for bit, on
    either kernel (each is row invariant by itself; they differ from each other)."""
    loop = fast.loaded("writer").loop
    ids = fast.writer_prompt_ids(story(2))
    regions = []
    try:
        for lane in range(8):
            region = loop.pool.reserve(ids.shape[1] + 64 * (lane + 1))
            regions.append(region)
            cache = loop.pool.region_cache(region)
            with torch.inference_mode():
                loop.runner.prefill(WriterPrompt(ids[:, : ids.shape[1] - lane]), cache)
            loop.token[lane, 0] = int(ids[0, ids.shape[1] - lane - 1]) + lane
            loop.position[lane] = ids.shape[1] - lane
            loop.first[lane] = region.start
            loop.chunk[lane] = region.chunk
        chunk = max(region.chunk for region in regions)
        with torch.inference_mode():
            together = loop.step.rows(
                loop.token[:8], loop.position[:8], loop._regions(8, chunk), loop.pool.cache, tensor_cores
            ).clone()
            for lane in range(8):
                one = slice(lane, lane + 1)
                regions_one = RowRegions(loop.first[one], loop.chunk[one], regions[lane].chunk)
                alone = loop.step.rows(loop.token[one], loop.position[one], regions_one, loop.pool.cache, tensor_cores)
                assert torch.equal(alone[0], together[lane]), lane
    finally:
        for region in regions:
            loop.pool.release(region)
        for lane in range(8):  # no sequence held them: back to scratch
            loop._release(lane)


def test_a_description_streams_on_the_fast_path(fast):
    picture = Image.new("RGB", (224, 168), (30, 120, 200))
    chunks = list(fast.stream_vision(picture, PROMPT, Sampling(max_tokens=16, temperature=0.0), Cancel()))
    finished = chunks[-1]
    assert isinstance(finished, Finished) and finished.output_tokens >= 1


def describe_tokens(engine, picture: Image.Image, sampling: Sampling) -> tuple[list[int], torch.Tensor]:
    """The vision model's token ids for `picture`, and its last step's logits (lane 0's)."""
    loop = engine.loaded("vision").loop
    inputs = engine._vision_inputs(picture, PROMPT).to(engine._device, engine.loaded("vision").model.dtype)
    tokens = list(loop.tokens(inputs, inputs.input_ids, sampling, seed=sampling.seed or 0))
    return tokens, loop.logits.clone()


PICTURES = [Image.new("RGB", size, colour) for size, colour in (
    ((224, 168), (30, 120, 200)), ((112, 448), (200, 60, 30)), ((336, 336), (20, 160, 60)), ((168, 112), (90, 90, 90)),
)]


def test_the_fast_describe_step_computes_what_the_reference_step_computes(fast, reference):
    """With the image's rotary offset: the first decode step's logits (two tokens, greedy)."""
    greedy = Sampling(max_tokens=2, temperature=0.0)
    ours, our_logits = describe_tokens(fast, PICTURES[1], greedy)
    theirs, their_logits = describe_tokens(reference, PICTURES[1], greedy)
    assert ours[0] == theirs[0]
    relative = float((our_logits - their_logits).norm() / their_logits.norm())
    assert relative < 2e-2, relative


def test_deterministic_describes_get_their_own_logits_alone_and_four_at_once(fast):
    """Four pictures of different sizes (each row its own rotary offset) decoded together on
    the fast path: each gets the tokens and last logits it gets alone, bit for bit."""
    loop = fast.loaded("vision").loop
    sampling = Sampling(max_tokens=48, temperature=0.0, deterministic=True)
    alone = [describe_tokens(fast, picture, sampling) for picture in PICTURES]
    lengths = [fast._vision_inputs(picture, PROMPT).length for picture in PICTURES]
    assert len(set(lengths)) == len(PICTURES)
    together: list[list[int]] = [[] for _ in PICTURES]

    def consume(index: int) -> None:
        together[index] = describe_tokens(fast, PICTURES[index], sampling)[0]

    steps_before, rows_before = loop.stats.steps, loop.stats.rows
    threads = [threading.Thread(target=consume, args=(i,)) for i in range(len(PICTURES))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert together == [tokens for tokens, _ in alone]
    assert loop.stats.rows - rows_before > 2 * (loop.stats.steps - steps_before)  # steps held several
    for length, (_, logits) in zip(lengths, alone, strict=True):
        lane = next(s for s in loop.samplers if s.prompt_tokens == length)
        assert torch.equal(lane.logits, logits), length
    assert settled(loop)


def test_creative_sampling_replays_its_graph_bit_for_bit(fast):
    """DRY, XTC, penalties and bias run inside the captured step as they run eagerly."""
    creative = Sampling(
        max_tokens=40, temperature=0.9, seed=5, presence_penalty=0.3, frequency_penalty=0.2,
        logit_bias=((11, -100.0), (12, 2.0)), dry_multiplier=0.8, xtc_probability=0.5, xtc_threshold=0.05,
    )
    (graph_tokens, graph_logits), (eager_tokens, eager_logits) = graph_and_eager(fast, creative)
    assert graph_tokens == eager_tokens
    assert torch.equal(graph_logits, eager_logits)
    assert 11 not in graph_tokens


def test_a_banned_phrase_rewinds_on_the_gpu_and_never_appears(fast):
    greedy = Sampling(max_tokens=64, temperature=0.0)
    plain = "".join(c.text for c in fast.stream_writer(PROMPT, greedy, Cancel()) if hasattr(c, "text"))
    middle = plain[len(plain) // 2 :].strip()
    assert len(middle) >= 4, plain  # 64 greedy tokens write text whatever the weights
    phrase = middle[:4]  # greedy decoding walks into it
    banned = Sampling(max_tokens=64, temperature=0.0, banned_phrases=(phrase,))
    chunks = list(fast.stream_writer(PROMPT, banned, Cancel()))
    text = "".join(c.text for c in chunks if hasattr(c, "text"))
    assert phrase.lower() not in text.lower()
    assert chunks[-1].output_tokens == 64
