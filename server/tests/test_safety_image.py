"""The image gate with a scripted assessor engine: what it asks, and how it decides."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import pytest
from PIL import Image

from pictale_server.errors import ApiError
from pictale_server.safety.gate import SafetyGate
from pictale_server.safety.image_assessment import AGE_BANDS, PEOPLE_OPTIONS

PICTURE = Image.new("RGB", (32, 24), (40, 120, 200))


def logprobs(*probabilities: float) -> list[float]:
    return [math.log(p) for p in probabilities]


class ScriptedAssessor:
    """Answers score_vision_options from a script: one entry per question, in order."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.questions: list[tuple[str, tuple[str, ...]]] = []

    def score_vision_options(self, image, messages, options: Sequence[str]):
        self.questions.append((messages[-1]["content"], tuple(options)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def refusal_code(engine: ScriptedAssessor) -> str | None:
    try:
        SafetyGate().check_image(PICTURE, engine)  # type: ignore[arg-type]
    except ApiError as error:
        assert error.code == "content_refused" and error.status == 403
        return error.message.removeprefix(
            "This request was refused by the content policy ("
        ).removesuffix(").")
    return None


def test_no_people_is_allowed_after_one_question() -> None:
    engine = ScriptedAssessor(logprobs(0.9, 0.1))
    assert refusal_code(engine) is None
    assert engine.questions == [(engine.questions[0][0], PEOPLE_OPTIONS)]


def test_adult_is_allowed() -> None:
    engine = ScriptedAssessor(logprobs(0.1, 0.9), logprobs(0.9, 0.04, 0.03, 0.03))
    assert refusal_code(engine) is None
    assert [options for _, options in engine.questions] == [PEOPLE_OPTIONS, AGE_BANDS]
    assert "youngest person" in engine.questions[1][0]


@pytest.mark.parametrize(
    ("bands", "code"),
    [
        ((0.05, 0.1, 0.8, 0.05), "image_minor"),  # child
        ((0.2, 0.7, 0.05, 0.05), "image_minor"),  # teenager
        ((0.1, 0.1, 0.1, 0.7), "image_uncertain"),  # unclear
        ((0.45, 0.2, 0.15, 0.2), "image_uncertain"),  # adult, but not a majority
        (
            (0.6, 0.3, 0.0001, 0.0999),
            "image_uncertain",
        ),  # adult majority, too much weight on a minor
        ((0.25, 0.25, 0.25, 0.25), "image_uncertain"),
    ],
)
def test_minor_or_uncertain_band_is_refused(bands: tuple[float, ...], code: str) -> None:
    assert refusal_code(ScriptedAssessor(logprobs(0.2, 0.8), logprobs(*bands))) == code


def test_people_question_tie_goes_on_to_the_age_question() -> None:
    engine = ScriptedAssessor([-0.7, -0.7], logprobs(0.1, 0.1, 0.7, 0.1))
    assert refusal_code(engine) == "image_minor"


def test_scores_need_not_be_normalized() -> None:
    # The engine returns sequence log-probs; only their ratio matters.
    assert refusal_code(ScriptedAssessor([-9.0, -1.0], [-1.0, -8.0, -9.0, -9.0])) is None


@pytest.mark.parametrize(
    "garbage",
    [
        [float("nan"), -1.0],
        [float("inf"), -1.0],
        [float("-inf"), -1.0],
        [-1.0],
        [-1.0, -2.0, -3.0],
        [],
        None,
        "no",
        {"no": -0.1, "yes": -3.0},
        [-0.1, "yes"],
        [True, False],
        [0.5, -3.0],  # a log-probability cannot be positive
        RuntimeError("CUDA error"),
        ApiError("internal", "model failure"),
    ],
)
def test_garbage_people_answer_is_refused(garbage: object) -> None:
    assert refusal_code(ScriptedAssessor(garbage)) == "image_unparseable"


@pytest.mark.parametrize(
    "garbage",
    [[-0.1, -3.0, float("nan"), -3.0], [-0.1, -3.0, -3.0], ValueError("bad image")],
)
def test_garbage_age_answer_is_refused(garbage: object) -> None:
    assert refusal_code(ScriptedAssessor(logprobs(0.1, 0.9), garbage)) == "image_unparseable"


def test_refusal_is_logged_with_code_and_request_id_only(caplog: pytest.LogCaptureFixture) -> None:
    engine = ScriptedAssessor(logprobs(0.1, 0.9), logprobs(0.05, 0.05, 0.85, 0.05))
    with caplog.at_level(logging.INFO, logger="pictale.safety"), pytest.raises(ApiError):
        SafetyGate().check_image(PICTURE, engine, request_id="req_123")  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        "content refused: code=image_minor request_id=req_123"
    ]


def test_text_refusal_log_carries_no_content(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pictale.safety"), pytest.raises(ApiError):
        SafetyGate().check_text(
            {"instruction": "a sex scene with a 14-year-old"}, request_id="req_9"
        )
    assert [r.getMessage() for r in caplog.records] == [
        "content refused: code=text_minor_sexual request_id=req_9"
    ]
