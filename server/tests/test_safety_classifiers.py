"""Operator image classifiers: loaded by import path, able to refuse, unable to allow."""

from __future__ import annotations

import math

import pytest
import safety_classifier_samples as samples
from PIL import Image

from pictale_server.errors import ApiError
from pictale_server.safety.classifiers import ClassifierConfigError
from pictale_server.safety.gate import SafetyGate
from pictale_server.settings import Settings

PICTURE = Image.new("RGB", (48, 32), (200, 180, 40))
NO_PEOPLE = [math.log(0.9), math.log(0.1)]
PEOPLE = [math.log(0.1), math.log(0.9)]
ADULT = [math.log(0.9), math.log(0.04), math.log(0.03), math.log(0.03)]
CHILD = [math.log(0.05), math.log(0.05), math.log(0.85), math.log(0.05)]


class Assessor:
    def __init__(self, *answers: list[float]) -> None:
        self.answers = list(answers)

    def score_vision_options(self, image, messages, options):
        return self.answers.pop(0)


def gate_with(*specs: str) -> SafetyGate:
    return SafetyGate.from_settings(Settings(image_classifiers=list(specs)))


def refusal_message(gate: SafetyGate, engine: Assessor) -> str | None:
    try:
        gate.check_image(PICTURE, engine)  # type: ignore[arg-type]
    except ApiError as error:
        assert error.code == "content_refused"
        return error.message
    return None


def test_loaded_from_the_environment_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PICTALE_IMAGE_CLASSIFIERS",
        "safety_classifier_samples:allowing, safety_classifier_samples:refusing",
    )
    gate = SafetyGate.from_settings(Settings())
    assert [c.name for c in gate.classifiers] == ["always-allow", "always-refuse"]


def test_classifier_can_refuse_what_the_model_allows() -> None:
    samples.SEEN.clear()
    gate = gate_with("safety_classifier_samples:allowing", "safety_classifier_samples:refusing")
    assert refusal_message(gate, Assessor(PEOPLE, ADULT)) == (
        "This request was refused by the content policy (classifier:always-refuse)."
    )
    assert samples.SEEN == [("always-allow", (48, 32)), ("always-refuse", (48, 32))]


def test_classifier_runs_when_the_model_sees_no_people() -> None:
    assert "classifier:always-refuse" in (
        refusal_message(gate_with("safety_classifier_samples:refusing"), Assessor(NO_PEOPLE)) or ""
    )


def test_classifier_cannot_allow_what_the_model_refused() -> None:
    gate = gate_with("safety_classifier_samples:allowing")
    assert refusal_message(gate, Assessor(PEOPLE, CHILD)) == (
        "This request was refused by the content policy (image_minor)."
    )
    assert refusal_message(gate, Assessor([float("nan"), 0.0])) == (
        "This request was refused by the content policy (image_unparseable)."
    )


def test_allowing_classifier_lets_an_allowed_image_through() -> None:
    assert (
        refusal_message(gate_with("safety_classifier_samples:allowing"), Assessor(PEOPLE, ADULT))
        is None
    )


@pytest.mark.parametrize(
    ("factory", "code"), [("broken", "classifier:broken"), ("vague", "classifier:vague")]
)
def test_failing_or_vague_classifier_refuses(factory: str, code: str) -> None:
    message = refusal_message(
        gate_with(f"safety_classifier_samples:{factory}"), Assessor(NO_PEOPLE)
    )
    assert message == f"This request was refused by the content policy ({code})."


@pytest.mark.parametrize(
    "spec",
    [
        "safety_classifier_samples",  # no factory
        "safety_classifier_samples:missing",
        "no_such_module_anywhere:factory",
        "safety_classifier_samples:not_a_classifier",
        "safety_classifier_samples:badly_named",
        "os:system; rm",
    ],
)
def test_misconfigured_classifier_stops_startup(spec: str) -> None:
    with pytest.raises(ClassifierConfigError):
        gate_with(spec)
