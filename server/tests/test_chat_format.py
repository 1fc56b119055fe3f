import pytest
from transformers import AutoTokenizer

from pictale_server.engine.chat_format import (
    NEUTRAL_USER_TURN,
    format_chatml,
    format_tekken,
    normalize,
)

pytest_plugins = ["engine_fixtures"]


def m(role, content):
    return {"role": role, "content": content}


def test_tekken_single_turn_puts_system_before_the_user_text():
    prompt = format_tekken([m("system", "Be brief."), m("user", "Hello")])
    assert prompt == "<s>[INST]Be brief.\n\nHello[/INST]"


def test_tekken_multi_turn_places_merged_system_in_the_last_user_turn():
    messages = [
        m("system", "Rule one."),
        m("user", "First"),
        m("assistant", "Answer"),
        m("system", "Rule two."),
        m("user", "Second"),
    ]
    assert format_tekken(messages) == (
        "<s>[INST]First[/INST]Answer</s>[INST]Rule one.\n\nRule two.\n\nSecond[/INST]"
    )


def test_tekken_folds_consecutive_turns_and_opens_with_a_user_turn():
    messages = [
        m("assistant", "Once upon a time."),
        m("assistant", "The end?"),
        m("user", "Go on"),
        m("user", "Longer"),
    ]
    assert format_tekken(messages) == (
        f"<s>[INST]{NEUTRAL_USER_TURN}[/INST]Once upon a time.\n\nThe end?</s>[INST]Go on\n\nLonger[/INST]"
    )


def test_tekken_leaves_a_trailing_assistant_turn_open_for_the_answer_to_continue():
    prompt = format_tekken([m("system", "Be brief."), m("user", "a"), m("assistant", "The door")])
    assert prompt == "<s>[INST]Be brief.\n\na[/INST]The door"


def test_chatml_leaves_a_trailing_assistant_turn_open_after_the_image_turn():
    prompt = format_chatml([m("user", "What is here?"), m("assistant", "A red")], with_image=True)
    assert prompt == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is here?<|im_end|>\n"
        "<|im_start|>assistant\nA red"
    )


def test_chatml_needs_a_user_turn():
    with pytest.raises(ValueError):
        format_chatml([m("assistant", "b")], with_image=True)


def test_normalize_without_alternation_keeps_the_assistant_first():
    conversation = normalize([m("assistant", "x"), m("user", "y")], alternate=False)
    assert [t["role"] for t in conversation.turns] == ["assistant", "user"]
    assert conversation.system is None


def test_chatml_puts_the_image_at_the_start_of_the_last_user_turn():
    prompt = format_chatml([m("system", "Describe."), m("user", "What is here?")], with_image=True)
    assert prompt == (
        "<|im_start|>system\nDescribe.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is here?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_merges_system_messages():
    prompt = format_chatml([m("system", "A"), m("system", "B"), m("user", "u")], with_image=False)
    assert prompt.startswith(
        "<|im_start|>system\nA\n\nB<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
    )


def _as_template_messages(messages):
    conversation = normalize(messages, alternate=True)
    system = [m("system", conversation.system)] if conversation.system else []
    return system + list(conversation.turns)


@pytest.mark.parametrize(
    "messages",
    [
        [m("system", "S"), m("user", "u")],
        [
            m("system", "S1"),
            m("user", "u1"),
            m("assistant", "a1"),
            m("system", "S2"),
            m("user", "u2"),
        ],
        [m("user", "only")],
    ],
)
def test_python_tekken_format_matches_the_dev_tokenizers_jinja_template(dev_model_paths, messages):
    tokenizer = AutoTokenizer.from_pretrained(dev_model_paths.writer)
    rendered = tokenizer.apply_chat_template(_as_template_messages(messages), tokenize=False)
    assert format_tekken(messages) == rendered


def test_python_chatml_format_matches_the_dev_tokenizers_jinja_template(dev_model_paths):
    tokenizer = AutoTokenizer.from_pretrained(dev_model_paths.vision)
    template_messages = [
        m("system", "Describe."),
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]},
    ]
    rendered = tokenizer.apply_chat_template(
        template_messages, tokenize=False, add_generation_prompt=True
    )
    assert (
        format_chatml([m("system", "Describe."), m("user", "What?")], with_image=True) == rendered
    )
