"""Every default prompt the server sends to a model, and the default sampling settings.

All of them can be replaced per request (`prompt`, `system`, sampling fields). The scene
description reaches the writer as a second system message (the bridge); the writer's chat
format merges system messages, so it lands in front of the latest instruction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pictale_server.engine.base import ChatMessage

Style = Literal["caption", "detailed", "scene"]
Stage = Literal["describe", "narrate"]

VISION_SYSTEM_PROMPT = (
    "You describe pictures accurately for a creative-writing application. Describe only what "
    "is visible; do not guess names or identities. When something is unclear, say so briefly. "
    'Write plain prose without preamble such as "This image shows".'
)

DESCRIBE_INSTRUCTIONS: dict[str, str] = {
    "caption": (
        "Write a caption for this picture: one or two short, factual sentences naming the main "
        "subject, what it is doing and where."
    ),
    "detailed": (
        "Describe this picture in detail: the main subject, the people or animals and what they "
        "are doing, the setting, colours, lighting, composition and any visible text."
    ),
    "scene": (
        "Break this picture down as a scene for a storyteller. Use these headings, each followed "
        "by a few short lines:\n"
        "Setting: place, time of day, season, weather.\n"
        "Characters: each person or creature with apparent age range, build, hair, clothing, "
        "expression, pose and what they are doing.\n"
        "Mood: the atmosphere the picture conveys.\n"
        "Lighting: light sources, direction, colour and contrast.\n"
        "Notable objects: things a story could use, with their position.\n"
        'Write "none" under a heading that does not apply.'
    ),
}

SCENE_CONTEXT_BRIDGE = (
    "The story is set in the scene below, described from a picture. Keep the people, places "
    "and details consistent with it, and build on it rather than repeating it.\n\n"
    "<scene>\n{context}\n</scene>"
)

WRITER_SYSTEM_PROMPT = (
    "You are a skilled fiction writer collaborating with an adult reader on stories and "
    "roleplay. Write vivid, well-paced prose in the voice the reader asks for, with concrete "
    "sensory detail and natural dialogue. Follow the reader's instructions, keep characters "
    "and facts consistent with what came before, and do not write the reader's own actions or "
    "lines unless asked. Never add disclaimers or commentary outside the story."
)

DEFAULT_SAMPLING: dict[str, dict[str, Any]] = {
    "describe": {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 0,
        "min_p": 0.0,
        "repetition_penalty": 1.05,
        "stop": [],
        "seed": None,
    },
    "narrate": {
        "max_tokens": 512,
        "temperature": 0.8,
        "top_p": 1.0,
        "top_k": 0,
        "min_p": 0.05,
        "repetition_penalty": 1.05,
        "stop": [],
        "seed": None,
    },
}
DESCRIBE_MAX_TOKENS: dict[str, int] = {"caption": 96, "detailed": 384, "scene": 512}
DEFAULT_DESCRIBE_STYLE: Style = "detailed"


def describe_messages(
    style: str | None, prompt: str | None = None, system: str | None = None
) -> list[ChatMessage]:
    """Messages for the vision model; the image is attached to the last user turn."""
    style = style or DEFAULT_DESCRIBE_STYLE
    if style not in DESCRIBE_INSTRUCTIONS:
        raise ValueError(f"unknown describe style {style!r}")
    return [
        ChatMessage(role="system", content=system if system is not None else VISION_SYSTEM_PROMPT),
        ChatMessage(
            role="user", content=prompt if prompt is not None else DESCRIBE_INSTRUCTIONS[style]
        ),
    ]


def scene_context(context: str) -> str:
    return SCENE_CONTEXT_BRIDGE.format(context=context.strip())


def narrate_messages(
    instruction: str,
    context: str | None = None,
    system: str | None = None,
    history: Sequence[ChatMessage] | None = None,
) -> list[ChatMessage]:
    """Messages for the writer: system prompt, scene context, history, then the instruction."""
    messages = [
        ChatMessage(role="system", content=system if system is not None else WRITER_SYSTEM_PROMPT)
    ]
    if context and context.strip():
        messages.append(ChatMessage(role="system", content=scene_context(context)))
    messages.extend(
        ChatMessage(role=turn["role"], content=turn["content"]) for turn in history or []
    )
    messages.append(ChatMessage(role="user", content=instruction))
    return messages


def default_sampling(stage: str, style: str | None = None) -> dict[str, Any]:
    """The contract's default sampling settings for a stage (and describe style)."""
    if stage not in DEFAULT_SAMPLING:
        raise ValueError(f"unknown stage {stage!r}")
    values = {
        key: (list(v) if isinstance(v, list) else v) for key, v in DEFAULT_SAMPLING[stage].items()
    }
    if stage == "describe":
        style = style or DEFAULT_DESCRIBE_STYLE
        if style not in DESCRIBE_MAX_TOKENS:
            raise ValueError(f"unknown describe style {style!r}")
        values["max_tokens"] = DESCRIBE_MAX_TOKENS[style]
    return values
