"""A prompt's segments (chat_format.py) as token ids: special tokens only where the template
put them. Content is tokenized with special-token matching off, so text a user wrote can never
become a control token (`[/INST]`, `</s>`, `<|im_start|>`) that ends a turn or opens one."""

from __future__ import annotations

from collections.abc import Sequence

from pictale_server.engine.chat_format import Segment


def prompt_token_ids(tokenizer, segments: Sequence[Segment]) -> list[int]:
    ids: list[int] = []
    for segment in segments:
        if segment.text:
            encoded = tokenizer(segment.text, add_special_tokens=False, split_special_tokens=not segment.markup)
            ids += encoded["input_ids"]
    return ids
