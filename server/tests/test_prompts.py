import re

import pytest

from pictale_server.runtime import prompts
from pictale_server.engine.chat_format import format_tekken


def test_every_style_has_an_instruction_and_a_token_budget():
    assert set(prompts.DESCRIBE_INSTRUCTIONS) == {"caption", "detailed", "scene"}
    assert set(prompts.DESCRIBE_MAX_TOKENS) == {"caption", "detailed", "scene"}


def test_scene_style_asks_for_the_structured_breakdown():
    scene = prompts.DESCRIBE_INSTRUCTIONS["scene"]
    for heading in ("Setting:", "Characters:", "Mood:", "Lighting:", "Notable objects:"):
        assert heading in scene


def test_describe_messages_use_defaults_or_the_overrides():
    default = prompts.describe_messages("caption")
    assert default == [
        {"role": "system", "content": prompts.VISION_SYSTEM_PROMPT},
        {"role": "user", "content": prompts.DESCRIBE_INSTRUCTIONS["caption"]},
    ]
    custom = prompts.describe_messages("scene", "Count the stars.", "You count.")
    assert custom == [
        {"role": "system", "content": "You count."},
        {"role": "user", "content": "Count the stars."},
    ]
    assert (
        prompts.describe_messages(None)[1]["content"] == prompts.DESCRIBE_INSTRUCTIONS["detailed"]
    )


def test_describe_messages_reject_an_unknown_style():
    with pytest.raises(ValueError):
        prompts.describe_messages("poem")


def test_narrate_messages_frame_the_context_and_end_with_the_instruction():
    history = [{"role": "user", "content": "Start"}, {"role": "assistant", "content": "It began."}]
    messages = prompts.narrate_messages(
        "Continue the story.", "A lighthouse at dusk.", None, history
    )
    assert messages[0] == {"role": "system", "content": prompts.WRITER_SYSTEM_PROMPT}
    assert (
        messages[1]["role"] == "system"
        and "<scene>\nA lighthouse at dusk.\n</scene>" in messages[1]["content"]
    )
    assert messages[2:4] == history
    assert messages[-1] == {"role": "user", "content": "Continue the story."}


def test_narrate_without_context_has_no_scene_bridge():
    messages = prompts.narrate_messages("Write a poem.", "  ", "Custom system.")
    assert messages == [
        {"role": "system", "content": "Custom system."},
        {"role": "user", "content": "Write a poem."},
    ]


def test_narrate_prompt_in_the_writer_format_carries_system_and_scene_before_the_instruction():
    prompt = format_tekken(prompts.narrate_messages("Begin.", "A quiet harbour."))
    assert prompt.startswith("<s>[INST]" + prompts.WRITER_SYSTEM_PROMPT + "\n\n")
    assert prompt.endswith("</scene>\n\nBegin.[/INST]")


@pytest.mark.parametrize(
    ("stage", "style", "expected"),
    [
        (
            "narrate",
            None,
            {
                "max_tokens": 512,
                "temperature": 0.8,
                "top_p": 1.0,
                "top_k": 0,
                "min_p": 0.05,
                "repetition_penalty": 1.05,
                "stop": [],
                "seed": None,
            },
        ),
        (
            "describe",
            "caption",
            {
                "max_tokens": 96,
                "temperature": 0.2,
                "top_p": 0.9,
                "top_k": 0,
                "min_p": 0.0,
                "repetition_penalty": 1.05,
                "stop": [],
                "seed": None,
            },
        ),
        ("describe", "detailed", {"max_tokens": 384}),
        ("describe", "scene", {"max_tokens": 512}),
        ("describe", None, {"max_tokens": 384}),
    ],
)
def test_default_sampling_follows_the_contract_table(stage, style, expected):
    values = prompts.default_sampling(stage, style)
    assert {k: values[k] for k in expected} == expected


def test_default_sampling_returns_a_fresh_stop_list():
    prompts.default_sampling("narrate")["stop"].append("x")
    assert prompts.default_sampling("narrate")["stop"] == []


def test_default_sampling_rejects_unknown_stage_and_style():
    with pytest.raises(ValueError):
        prompts.default_sampling("paint")
    with pytest.raises(ValueError):
        prompts.default_sampling("describe", "poem")


def test_default_prompts_contain_nothing_sexual():
    texts = [
        prompts.VISION_SYSTEM_PROMPT,
        prompts.WRITER_SYSTEM_PROMPT,
        prompts.SCENE_CONTEXT_BRIDGE,
        *prompts.DESCRIBE_INSTRUCTIONS.values(),
    ]
    forbidden = re.compile(
        r"\b(sex\w*|erotic\w*|nud\w*|naked|explicit|nsfw|lewd|porn\w*)\b", re.IGNORECASE
    )
    for text in texts:
        assert not forbidden.search(text), text
