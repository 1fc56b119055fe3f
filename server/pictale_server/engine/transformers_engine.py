"""The model engine: Qwen2.5-VL for describing, a Mistral-Nemo writer for narrating.

Implements engine.base.Engine for every profile; only where the checkpoints come from differs
(engine/loader.py). Construction is cheap; `load()` does the heavy work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import torch
from PIL.Image import Image
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from pictale_server.engine.attention_backends import avoid_planned_attention
from pictale_server.engine.base import Admission, Cancel, ChatMessage, Chunk, Sampling
from pictale_server.engine.chat_format import CHATML_ANSWER_END, chatml_segments, markup, tekken_segments
from pictale_server.engine.chunk_stream import stream_chunks
from pictale_server.engine.decode_choice import DecodeChoice, choose_decode_step
from pictale_server.engine.batch_decoder import BatchDecoder
from pictale_server.engine.gpu_memory import prepare_thread, release_cached_memory, use_expandable_segments
from pictale_server.engine.kv_pool import PAGE_TOKENS, KVPool, bytes_per_token, pool_tokens
from pictale_server.engine.load_failures import check_source, classify
from pictale_server.engine.loading import LoadPlan, from_pretrained_kwargs, hub_kwargs, plan_for
from pictale_server.engine.model_sources import ModelSource
from pictale_server.engine.prompt_tokens import prompt_token_ids
from pictale_server.engine.quantization import assert_quantization_layout
from pictale_server.engine.runners import CausalLMRunner, QwenVLRunner, WriterPrompt
from pictale_server.engine.sampler_vocabulary import SamplerVocabulary
from pictale_server.engine.vision_inputs import VisionInputs, VisionPreprocessor
from pictale_server.engine.vision_window_attention import batch_window_attention
from pictale_server.engine.errors import (
    ImageUnprocessable,
    MalformedConversation,
    ModelRole,
    NotLoaded,
    PromptTooLong,
    TokenOutOfVocabulary,
)
from pictale_server.settings import Settings

logger = logging.getLogger("pictale.engine")

# Room for the largest describe request the contract allows: ~1,280 image tokens, a long
# prompt and system text, and 2,048 new tokens.
VISION_CACHE_TOKENS = 8192
# The vision model's KV pool per lane: a describe at the default size (~1,300 image tokens, its
# prompt and ~500 new tokens) fits one lane's share; the pool always holds the longest one.
VISION_LANE_TOKENS = 2048


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    loop: BatchDecoder  # decodes the model's requests together
    end_ids: frozenset[int]
    decode: DecodeChoice


class TransformersEngine:
    # Each model decodes in a batch that admits a request once a lane and a region of its KV
    # pool are free (batch_decoder.py) and reports the wait through `admission`.
    writer_admission = True
    vision_admission = True

    def __init__(
        self,
        *,
        profile: str,
        vision: ModelSource,
        writer: ModelSource,
        settings: Settings,
        device: torch.device,
        quantize: bool,
    ) -> None:
        self.profile = profile
        self.vision_id = vision.id
        self.writer_id = writer.id
        self._vision_source = vision
        self._writer_source = writer
        self._settings = settings
        self._device = device
        self._quantize = quantize
        self._load_lock = threading.Lock()
        self._vision: LoadedModel | None = None
        self._writer: LoadedModel | None = None
        self._preprocessor: VisionPreprocessor | None = None
        # Seconds per load step (vision, writer, warm_up: compilation and graph capture).
        self.load_seconds: dict[str, float] = {}

    # -- loading -------------------------------------------------------------------------------

    @property
    def vision_loaded(self) -> bool:
        return self._vision is not None

    @property
    def writer_loaded(self) -> bool:
        return self._writer is not None

    def loaded(self, model: ModelRole) -> LoadedModel:
        """A resident model with its tokenizer, decode loop and decode choice (for benchmarks
        and tests that look inside; serving goes through the Engine protocol)."""
        return self._require(self._vision if model == "vision" else self._writer, model)

    def decode_info(self, model: ModelRole) -> dict[str, str] | None:
        """{"path": "fast" | "reference", "reason": why not fast ("" when fast)}, once loaded."""
        loaded = self._vision if model == "vision" else self._writer
        if loaded is None:
            return None
        return {"path": loaded.decode.path, "reason": loaded.decode.reason}

    def load(self) -> None:
        use_expandable_segments(self._device)
        avoid_planned_attention(self._device)
        prepare_thread(self._device)
        with self._load_lock:
            self._resolve_dev_sources()
            if self._vision is None:
                with _load_failures("vision"), self._timed("vision"):
                    check_source("vision", self._vision_source)
                    self._vision, self._preprocessor = self._load_vision(self._vision_source)
            if self._writer is None:
                with _load_failures("writer"):
                    with self._timed("writer"):
                        check_source("writer", self._writer_source)
                        self._writer = self._load_writer(self._writer_source)
                    with self._timed("warm_up"):
                        self._warm_up()

    @contextlib.contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.load_seconds[step] = time.perf_counter() - start
            logger.info("load step %s took %.1f s", step, self.load_seconds[step])

    def _warm_up(self) -> None:
        """One short generation per model, then each batch's decode graphs (every lane bucket
        and attention chunk) and its sampler kernels, so capture and compilation happen before
        serving: they then never meet a request on the other model's thread, and never land in
        a request's time to first token."""
        greedy = Sampling(max_tokens=3, temperature=0.0)
        for _ in self.stream_writer([ChatMessage(role="user", content="Hello")], greedy, Cancel()):
            pass
        picture = PIL.Image.new("RGB", (56, 56), (128, 128, 128))
        for _ in self.stream_vision(
            picture, [ChatMessage(role="user", content="Hello")], greedy, Cancel()
        ):
            pass
        hello = [ChatMessage(role="user", content="Hello")]
        ids = self.writer_prompt_ids(hello)
        writer = self._require(self._writer, "writer")
        vision = self._require(self._vision, "vision")
        inputs = self._vision_inputs(picture, hello).to(self._device, vision.model.dtype)
        for loop, prompt, prompt_ids in ((writer.loop, WriterPrompt(ids), ids), (vision.loop, inputs, inputs.input_ids)):
            loop.check_cache_writes(prompt, prompt_ids)
            loop.capture_graphs()
            loop.warm_samplers(prompt, prompt_ids)

    def _resolve_dev_sources(self) -> None:
        if self._vision_source.location is not None and self._writer_source.location is not None:
            return
        from pictale_server.engine.dev.models import ensure_dev_models

        paths = ensure_dev_models(self._settings.cache_dir)
        self._vision_source = _located(self._vision_source, paths.vision)
        self._writer_source = _located(self._writer_source, paths.writer)

    def _plan(self, source: ModelSource) -> LoadPlan:
        return plan_for(
            source,
            device=self._device,
            quantize=self._quantize,
        )

    def _finish_loading(self, model: torch.nn.Module, plan: LoadPlan) -> torch.nn.Module:
        model.eval()
        if plan.cuda and getattr(model.config, "quantization_config", None) is not None:
            assert_quantization_layout(model)
        if not plan.cuda:
            model.to(plan.device)
        return model

    def _batch(
        self, name: str, runner, model: torch.nn.Module, pool: KVPool, *, lanes: int, context_tokens: int,
        vocab_size: int, tokenizer, end_ids: frozenset[int],
    ) -> tuple[BatchDecoder, DecodeChoice]:
        """The model's decode step over its KV pool (decode_choice.py) and the batch over both."""
        choice = choose_decode_step(
            name, runner, [pool.cache], self._device, setting=self._settings.fast_path, cache_tokens=context_tokens,
        )
        vocabulary = SamplerVocabulary(tokenizer, vocab_size, end_ids, self._device)
        decoder = BatchDecoder(
            runner, pool, choice.step, lanes=lanes, vocab_size=vocab_size, context_tokens=context_tokens,
            vocabulary=vocabulary, name=name,
        )
        return decoder, choice

    def _vision_pool(self, model: torch.nn.Module) -> KVPool:
        """Loaded first, its pool is sized by its lanes, never by what the card has free."""
        lanes = self._settings.vision_streams
        tokens = max(VISION_CACHE_TOKENS, lanes * VISION_LANE_TOKENS) + PAGE_TOKENS  # + scratch
        per_token = bytes_per_token(model.config, model.dtype)
        logger.info("the vision model's KV pool holds %d tokens (%.2f GiB) for %d streams", tokens, tokens * per_token / 2**30, lanes)
        return KVPool(model.config, tokens, dtype=model.dtype, device=self._device)

    def _writer_pool(self, model: torch.nn.Module) -> KVPool:
        """What the card has free once both models and the vision pool are resident, less
        headroom for prefill (kv_pool.pool_tokens), up to a full context per lane."""
        context = self._settings.max_context_tokens
        lanes = self._settings.writer_streams
        per_token = bytes_per_token(model.config, model.dtype)
        if self._device.type == "cuda":
            tokens = pool_tokens(_free_gpu_bytes(self._device), per_token, context, lanes * context)
        else:  # the dev profile: room for a full context and as much again
            tokens = pool_tokens(0, per_token, 2 * context, 2 * context)
        logger.info("the writer's KV pool holds %d tokens (%.2f GiB) for %d streams", tokens, tokens * per_token / 2**30, lanes)
        return KVPool(model.config, tokens, dtype=model.dtype, device=self._device)

    def _load_vision(self, source: ModelSource) -> tuple[LoadedModel, VisionPreprocessor]:
        plan = self._plan(source)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            source.location, **from_pretrained_kwargs(source, plan)
        )
        model = self._finish_loading(model, plan)
        batch_window_attention(model)  # the vision tower's windows in one SDPA call per layer
        preprocessor = VisionPreprocessor.from_pretrained(
            source.location,
            max_pixels=self._settings.max_pixels,
            device=self._device,
            **hub_kwargs(source),
        )
        tokenizer = preprocessor.tokenizer
        end_ids = {tokenizer.convert_tokens_to_ids(t) for t in (CHATML_ANSWER_END, "<|endoftext|>")}
        lanes = self._settings.vision_streams
        loop, choice = self._batch(
            "the vision model", QwenVLRunner(model), model, self._vision_pool(model), lanes=lanes,
            context_tokens=VISION_CACHE_TOKENS, vocab_size=model.config.text_config.vocab_size,
            tokenizer=tokenizer, end_ids=frozenset(end_ids),
        )
        return LoadedModel(model, tokenizer, loop, frozenset(end_ids), choice), preprocessor

    def _load_writer(self, source: ModelSource) -> LoadedModel:
        plan = self._plan(source)
        model = AutoModelForCausalLM.from_pretrained(
            source.location, **from_pretrained_kwargs(source, plan)
        )
        model = self._finish_loading(model, plan)
        tokenizer = AutoTokenizer.from_pretrained(source.location, **hub_kwargs(source))
        loop, choice = self._batch(
            "the writer", CausalLMRunner(model), model, self._writer_pool(model), lanes=self._settings.writer_streams,
            context_tokens=self._settings.max_context_tokens, vocab_size=model.config.vocab_size,
            tokenizer=tokenizer, end_ids=frozenset({tokenizer.eos_token_id}),
        )
        return LoadedModel(model, tokenizer, loop, frozenset({tokenizer.eos_token_id}), choice)

    def _require(self, loaded: LoadedModel | None, model: ModelRole) -> LoadedModel:
        if loaded is None:
            raise NotLoaded(model)
        return loaded

    # -- generation ----------------------------------------------------------------------------

    def stream_vision(
        self,
        image: Image,
        messages: Sequence[ChatMessage],
        sampling: Sampling,
        cancel: Cancel,
        *,
        admission: Admission | None = None,
    ) -> Iterator[Chunk]:
        vision = self._require(self._vision, "vision")
        inputs = self._vision_inputs(image, messages)
        sampling = _fitted(sampling, inputs.length, vision.loop.cache_tokens)
        if inputs.length + sampling.max_tokens > vision.loop.cache_tokens:
            raise PromptTooLong(
                "vision", prompt_tokens=inputs.length, max_tokens=sampling.max_tokens,
                limit=vision.loop.cache_tokens,
            )
        inputs = inputs.to(self._device, vision.model.dtype)
        return self._stream(vision, inputs, inputs.input_ids, sampling, cancel, admission)

    def stream_writer(
        self,
        messages: Sequence[ChatMessage],
        sampling: Sampling,
        cancel: Cancel,
        *,
        admission: Admission | None = None,
    ) -> Iterator[Chunk]:
        writer = self._require(self._writer, "writer")
        ids = self.writer_prompt_ids(messages)
        limit = self.writer_context_tokens
        sampling = _fitted(sampling, int(ids.shape[1]), limit)
        if ids.shape[1] + sampling.max_tokens > limit:
            raise PromptTooLong(
                "writer", prompt_tokens=int(ids.shape[1]), max_tokens=sampling.max_tokens, limit=limit,
                has_history=sum(1 for m in messages if m["role"] != "system") > 1,
            )
        return self._stream(writer, WriterPrompt(ids), ids, sampling, cancel, admission)

    def stream_writer_text(
        self, prompt: str, sampling: Sampling, cancel: Cancel, *, admission: Admission | None = None
    ) -> Iterator[Chunk]:
        writer = self._require(self._writer, "writer")
        ids = self.writer_text_ids(prompt)
        limit = self.writer_context_tokens
        sampling = _fitted(sampling, len(ids), limit)
        if len(ids) + sampling.max_tokens > limit:
            raise PromptTooLong(
                "writer", prompt_tokens=len(ids), max_tokens=sampling.max_tokens, limit=limit
            )
        tensor = torch.tensor([ids], dtype=torch.int64)
        return self._stream(writer, WriterPrompt(tensor), tensor, sampling, cancel, admission)

    def writer_text_ids(self, prompt: str) -> list[int]:
        """A prompt the client templated itself: its control tokens are meant (`[INST]`), and
        the sequence starts with BOS as the writer was trained, unless the prompt brings one."""
        tokenizer = self._require(self._writer, "writer").tokenizer
        ids = self.writer_token_ids(prompt)
        bos = tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos):
            ids.insert(0, bos)
        return ids

    def writer_token_ids(self, text: str, *, special: bool = True) -> list[int]:
        tokenizer = self._require(self._writer, "writer").tokenizer
        encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=not special)
        return list(encoded["input_ids"])

    @property
    def writer_context_tokens(self) -> int:
        """The most tokens a writer prompt and its answer may hold together."""
        writer = self._writer
        cache = writer.loop.cache_tokens if writer is not None else self._settings.max_context_tokens
        return min(self._settings.max_context_tokens, cache)

    def writer_prompt_ids(self, messages: Sequence[ChatMessage]) -> torch.Tensor:
        writer = self._require(self._writer, "writer")
        tokenizer = writer.tokenizer
        try:
            segments = tekken_segments(messages, bos=tokenizer.bos_token, eos=tokenizer.eos_token)
        except ValueError as error:
            raise MalformedConversation("writer", str(error)) from error
        return torch.tensor([prompt_token_ids(tokenizer, segments)], dtype=torch.int64)

    def _vision_inputs(self, image: Image, messages: Sequence[ChatMessage], answer: str = ""):
        assert self._preprocessor is not None
        try:
            segments = chatml_segments(messages, with_image=True)
        except ValueError as error:
            raise MalformedConversation("vision", str(error)) from error
        try:
            return self._preprocessor(image, segments + [markup(answer)] if answer else segments)
        except ValueError as error:  # e.g. an aspect ratio the processor refuses
            raise ImageUnprocessable(f"the image cannot be processed: {error}") from error

    def _stream(
        self,
        loaded: LoadedModel,
        inputs: object,
        prompt_ids: torch.Tensor,
        sampling: Sampling,
        cancel: Cancel,
        admission: Admission | None = None,
    ) -> Iterator[Chunk]:
        vocab_size = loaded.loop.vocab_size
        for token, _ in sampling.logit_bias:
            if not 0 <= token < vocab_size:
                raise TokenOutOfVocabulary("writer" if loaded is self._writer else "vision", token, vocab_size)
        seed = sampling.seed if sampling.seed is not None else secrets.randbits(63)
        tokens = loaded.loop.tokens(inputs, prompt_ids, sampling, seed, cancel=cancel, admission=admission)
        return stream_chunks(
            tokens,
            tokenizer=loaded.tokenizer,
            end_ids=loaded.end_ids,
            stop=sampling.stop,
            input_tokens=int(prompt_ids.shape[1]),
            cancel=cancel,
            banned_phrases=sampling.banned_phrases,
        )

    # -- safety assessment ---------------------------------------------------------------------

    @torch.inference_mode()
    def score_vision_options(
        self, image: Image, messages: Sequence[ChatMessage], options: Sequence[str]
    ) -> list[float]:
        """Each option's log-probability as the whole answer. It runs on the caller's thread
        beside the vision model's batch, never beside another forward over a whole prompt (a
        scoring or a describe's prefill: QwenVLRunner.whole_prompt), and keeps only the
        answer's logits."""
        vision = self._require(self._vision, "vision")
        prepare_thread(self._device)
        runner: QwenVLRunner = vision.loop.runner  # type: ignore[assignment]
        prompt = self._vision_inputs(image, messages).to(self._device, vision.model.dtype)
        with runner.whole_prompt:
            features = runner.image_features(prompt)
            scores = []
            for option in options:
                answer = vision.tokenizer(
                    option + CHATML_ANSWER_END, add_special_tokens=False, return_tensors="pt"
                )["input_ids"].to(self._device)
                inputs = _append_answer(prompt, answer)
                # The last len(answer) + 1 positions: the one before the answer predicts its first token.
                kept = answer.shape[1] + 1
                logits = runner.forward_full(inputs, image_features=features, logits_to_keep=kept).float()
                predicted = logits[0, :-1]
                log_probs = torch.log_softmax(predicted, dim=-1).gather(-1, answer[0].unsqueeze(-1))
                scores.append(float(log_probs.sum()))
            release_cached_memory(self._device)
        return scores


def _free_gpu_bytes(device: torch.device) -> int:
    """Memory this process may still take on `device`: the card's free memory, or less where a
    memory fraction caps the process (benchmarks emulate a smaller card that way)."""
    free, total = torch.cuda.mem_get_info(device)
    fraction = torch.cuda.get_per_process_memory_fraction(device)
    return int(min(free, fraction * total - torch.cuda.memory_reserved(device)))


def _fitted(sampling: Sampling, prompt_tokens: int, limit: int) -> Sampling:
    """`sampling` with max_tokens cut to what the context leaves, when it asks for that and the
    prompt leaves room at all (a prompt that fills the context is still PromptTooLong)."""
    room = limit - prompt_tokens
    if sampling.fit_context and 0 < room < sampling.max_tokens:
        return dataclasses.replace(sampling, max_tokens=room)
    return sampling


@contextlib.contextmanager
def _load_failures(role: ModelRole) -> Iterator[None]:
    """Whatever loading `role` raises leaves as a ModelLoadFailed with a reason code."""
    try:
        yield
    except Exception as exc:
        raise classify(role, exc) from exc


def _located(source: ModelSource, path: Path) -> ModelSource:
    return ModelSource(source.id, str(path), None, local_files_only=True)


def _append_answer(prompt: VisionInputs, answer: torch.Tensor) -> VisionInputs:
    return VisionInputs(
        input_ids=torch.cat([prompt.input_ids, answer], dim=1),
        mm_token_type_ids=torch.cat(
            [prompt.mm_token_type_ids, torch.zeros_like(answer, dtype=torch.int32)], dim=1
        ),
        pixel_values=prompt.pixel_values,
        image_grid_thw=prompt.image_grid_thw,
    )
