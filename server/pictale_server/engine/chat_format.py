"""The two prompt formats the reference models were trained on, as plain string functions.

The writer (magnum-v4-12b, a Mistral-Nemo finetune) speaks Mistral "V3-Tekken":
    <s>[INST]user[/INST]assistant</s>[INST]system\n\nuser[/INST]
with the merged system text in front of the LAST user turn, as the Nemo template does.
The vision model (Qwen2.5-VL) speaks ChatML with the image inside the last user turn.

The engine formats prompts here rather than through each checkpoint's bundled template, so the
format is the one these models need whatever a checkpoint ships; the dev tokenizers carry the
same formats as Jinja templates and a test keeps the two in agreement.

A prompt is a list of segments: template markup, where special tokens are meant, and content
(what users and apps wrote), which is always tokenized as plain text (prompt_tokens.py). A
user who writes `[/INST]` or `<|im_start|>system` gets those characters, not control tokens.
The `format_*` functions join the segments into the same text for display and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pictale_server.engine.base import ChatMessage

# Inserted when a history starts with the assistant: V3-Tekken must open with a user turn.
NEUTRAL_USER_TURN = "Continue."
TURN_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Segment:
    text: str
    markup: bool  # the template's own text: special tokens in it are meant


def markup(text: str) -> Segment:
    return Segment(text, True)


def content(text: str) -> Segment:
    return Segment(text, False)


def joined(segments: Sequence[Segment]) -> str:
    return "".join(segment.text for segment in segments)


@dataclass(frozen=True)
class Conversation:
    """Messages after normalization: one optional system text, then alternating turns."""

    system: str | None
    turns: tuple[ChatMessage, ...]


def normalize(messages: Sequence[ChatMessage], *, alternate: bool) -> Conversation:
    """Merge every system message into one, fold consecutive same-role turns.

    With `alternate`, the turns also start with a user turn (a neutral one is inserted when the
    history opens with the assistant), as V3-Tekken requires.
    """
    system_parts = [m["content"] for m in messages if m["role"] == "system" and m["content"]]
    turns: list[ChatMessage] = []
    for message in messages:
        if message["role"] == "system":
            continue
        if message["role"] not in ("user", "assistant"):
            raise ValueError(f"unknown role {message['role']!r}")
        if turns and turns[-1]["role"] == message["role"]:
            merged = turns[-1]["content"] + TURN_SEPARATOR + message["content"]
            turns[-1] = ChatMessage(role=message["role"], content=merged)
        else:
            turns.append(ChatMessage(role=message["role"], content=message["content"]))
    if alternate and turns and turns[0]["role"] == "assistant":
        turns.insert(0, ChatMessage(role="user", content=NEUTRAL_USER_TURN))
    system = TURN_SEPARATOR.join(system_parts) if system_parts else None
    return Conversation(system=system, turns=tuple(turns))


def tekken_segments(
    messages: Sequence[ChatMessage], *, bos: str = "<s>", eos: str = "</s>"
) -> list[Segment]:
    """Mistral V3-Tekken prompt ready for the assistant's answer: it ends with `[/INST]`, or,
    when the last turn is the assistant's, with that turn's text left open (a prefill the
    answer continues, as OpenAI-compatible servers treat a trailing assistant message)."""
    conversation = normalize(messages, alternate=True)
    turns = list(conversation.turns)
    if not turns:
        turns = [ChatMessage(role="user", content=conversation.system or NEUTRAL_USER_TURN)]
        conversation = Conversation(system=None, turns=())
    last_user = max(i for i, turn in enumerate(turns) if turn["role"] == "user")
    segments = [markup(bos)]
    for index, turn in enumerate(turns):
        if turn["role"] == "user":
            text = turn["content"]
            if index == last_user and conversation.system:
                text = conversation.system + TURN_SEPARATOR + text
            segments += [markup("[INST]"), content(text), markup("[/INST]")]
        elif index == len(turns) - 1:  # a prefill: the answer goes on from this text
            segments.append(content(turn["content"]))
        else:
            segments += [content(turn["content"]), markup(eos)]
    return segments


def format_tekken(messages: Sequence[ChatMessage], *, bos: str = "<s>", eos: str = "</s>") -> str:
    return joined(tekken_segments(messages, bos=bos, eos=eos))


IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def chatml_segments(messages: Sequence[ChatMessage], *, with_image: bool) -> list[Segment]:
    """Qwen ChatML prompt ending with the assistant header (and, when the last turn is the
    assistant's, that turn's text as a prefill); the image opens the last user turn.

    `<|image_pad|>` appears once here; the vision preprocessor expands it to one token per
    merged 28×28 patch. Each role name stays with its `<|im_start|>` and the newline after it
    starts the content, where the tokenizer's pre-tokenizer splits the text anyway, so the
    segments tokenize to exactly the ids of the joined text.
    """
    conversation = normalize(messages, alternate=False)
    turns = list(conversation.turns)
    users = [i for i, turn in enumerate(turns) if turn["role"] == "user"]
    if not users:
        raise ValueError("the vision prompt needs a user turn")
    prefill = turns[-1]["content"] if turns[-1]["role"] == "assistant" else None
    if prefill is not None:
        turns = turns[:-1]
    segments = []
    if conversation.system:
        segments += [markup("<|im_start|>system"), content("\n" + conversation.system), markup("<|im_end|>\n")]
    last_user = users[-1]
    for index, turn in enumerate(turns):
        segments.append(markup(f"<|im_start|>{turn['role']}"))
        if with_image and index == last_user:
            segments += [content("\n"), markup(IMAGE_PLACEHOLDER), content(turn["content"])]
        else:
            segments.append(content("\n" + turn["content"]))
        segments.append(markup("<|im_end|>\n"))
    segments.append(markup("<|im_start|>assistant\n"))
    if prefill is not None:  # the answer goes on from this text
        segments.append(content(prefill))
    return segments


def format_chatml(messages: Sequence[ChatMessage], *, with_image: bool) -> str:
    return joined(chatml_segments(messages, with_image=with_image))


CHATML_ANSWER_END = "<|im_end|>"
