"""The writer's prompt, as the engine formats it, tokenizes to the ids Mistral's own library gives.

mistral-common ships the Tekken tokenizer of Mistral-Nemo (tekken_240718.json: the tokenizer of
Mistral-Nemo-Instruct-2407, which magnum-v4-12b is finetuned from) and the reference encoding of
a chat for it (`MistralTokenizer.encode_chat_completion`, instruct tokenizer V3). The engine
formats the prompt as text (engine/chat_format.py `format_tekken`) and tokenizes that text with
special tokens recognised (transformers_engine.py `writer_prompt_ids`); here the same text is
tokenized with the real Tekken vocabulary and compared id for id.

Tokenizing the text: a Hugging Face tokenizer matches its special tokens (`<s>`, `[INST]`, ...)
anywhere in the string and runs the BPE on the text between them. The same is done here with
mistral-common's Tekkenizer (control tokens by id, the text between them through its BPE), so
no converted tokenizer file is needed.

Two differences from mistral-common are pinned below rather than hidden: a history that opens
with the assistant gets the neutral user turn "Continue." where mistral-common leaves the user
turn empty, and trailing spaces of assistant turns are kept where mistral-common strips them.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("mistral_common")

from mistral_common.protocol.instruct.messages import (
    AssistantMessage,
    SystemMessage,
    UserMessage,
)
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from pictale_server.engine.chat_format import NEUTRAL_USER_TURN, format_tekken

BOS, EOS = "<s>", "</s>"
CONTROL_TOKENS = (BOS, EOS, "[INST]", "[/INST]")
MESSAGE_CLASSES = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}


@pytest.fixture(scope="module")
def nemo() -> MistralTokenizer:
    """Mistral-Nemo's tokenizer as mistral-common ships it (tekken_240718.json, V3)."""
    return MistralTokenizer.v3(is_tekken=True)


def m(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def reference_ids(nemo: MistralTokenizer, messages: list[dict]) -> list[int]:
    request = ChatCompletionRequest(
        messages=[MESSAGE_CLASSES[x["role"]](content=x["content"]) for x in messages]
    )
    return nemo.encode_chat_completion(request).tokens


def engine_ids(nemo: MistralTokenizer, messages: list[dict]) -> list[int]:
    """format_tekken's text, tokenized as the engine's tokenizer does: special tokens matched
    in the text, the BPE over the pieces between them."""
    tekken = nemo.instruct_tokenizer.tokenizer
    prompt = format_tekken(messages, bos=BOS, eos=EOS)
    pattern = "(" + "|".join(re.escape(t) for t in CONTROL_TOKENS) + ")"
    ids: list[int] = []
    for piece in re.split(pattern, prompt):
        if piece in CONTROL_TOKENS:
            ids.append(tekken.get_special_token(piece))
        elif piece:
            ids.extend(tekken.encode(piece, bos=False, eos=False))
    return ids


def test_the_shipped_tokenizer_is_nemos(nemo):
    tekken = nemo.instruct_tokenizer.tokenizer
    assert type(nemo.instruct_tokenizer).__name__ == "InstructTokenizerV3"
    assert tekken.n_words == 131072  # the writer's vocab_size (reference_configs)
    assert [tekken.get_special_token(t) for t in CONTROL_TOKENS] == [1, 2, 3, 4]


CONVERSATIONS = {
    "one user turn": [m("user", "Write a story about the lighthouse.")],
    "system and user": [
        m("system", "You are a careful storyteller."),
        m("user", "Write a story about the lighthouse."),
    ],
    "history": [
        m("system", "You write vivid, concise prose."),
        m("user", "Scene: a harbour at dusk, three boats, a red lighthouse."),
        m("assistant", "The harbour lay still under a bruised sky."),
        m("user", "Continue from the keeper's point of view."),
        m("assistant", "From the lamp room, Maren counted the boats."),
        m("user", "Now end it in the past tense, 200 words."),
    ],
    # (mistral-common refuses a system message after an assistant one; the engine merges them
    # wherever they stand, tests/test_chat_format.py)
    "several system messages and repeated roles": [
        m("system", "Rule one: second person."),
        m("system", "Rule two: no dialogue."),
        m("user", "Scene: a night market."),
        m("user", "Keep it short."),
        m("assistant", "You step between the stalls."),
        m("assistant", "Lanterns sway above you."),
        m("user", "Go on."),
    ],
    "unicode, numbers and line breaks": [
        m("system", "Écris en français.\nSois bref."),
        m("user", "  Le port à 19h45 — trois bateaux, 1 phare.\n\n\tDécris-le."),
        m("assistant", "Le phare (rouge) veillait: 3 lumières, 2 ombres…"),
        m("user", "東京の港はどうですか? Réponds en 2 phrases."),
    ],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_the_engine_prompt_is_mistral_commons_encoding(nemo, name):
    messages = CONVERSATIONS[name]
    assert engine_ids(nemo, messages) == reference_ids(nemo, messages)


def test_a_history_opening_with_the_assistant_gets_a_neutral_user_turn(nemo):
    """mistral-common opens such a history with an empty user turn (`[INST][/INST]`); the engine
    opens it with NEUTRAL_USER_TURN. Otherwise the two agree."""
    messages = [m("assistant", "Once upon a time."), m("user", "Go on.")]
    ours = engine_ids(nemo, messages)
    assert ours != reference_ids(nemo, messages)
    assert ours == reference_ids(nemo, [m("user", NEUTRAL_USER_TURN), *messages])
    assert reference_ids(nemo, messages)[:3] == [1, 3, 4]  # <s>[INST][/INST]


def test_trailing_spaces_of_assistant_turns_are_kept_where_mistral_common_strips_them(nemo):
    """mistral-common encodes an assistant turn as `content.rstrip(" ")`; the engine keeps the
    text as sent: one extra token before `</s>`."""
    messages = [m("user", "Begin."), m("assistant", "The tide turned. "), m("user", "Go on.")]
    ours = engine_ids(nemo, messages)
    reference = reference_ids(nemo, messages)
    stripped = [m("user", "Begin."), m("assistant", "The tide turned."), m("user", "Go on.")]
    assert engine_ids(nemo, stripped) == reference
    eos = reference.index(2)
    assert ours[:eos] == reference[:eos] and ours[eos + 1 :] == reference[eos:]
    assert nemo.instruct_tokenizer.tokenizer.id_to_piece(ours[eos]) == " "
