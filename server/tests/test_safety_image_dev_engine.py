"""The image gate against the real engine on the dev profile (random weights).

The verdict is arbitrary with random weights, so these tests check the seam: the engine's
scores parse as an assessment, and the same image always gets the same verdict.
"""

from __future__ import annotations

from engine_fixtures import dev_cache_dir, dev_engine, dev_model_paths, scene_image  # noqa: F401

from pictale_server.errors import ApiError
from pictale_server.safety.gate import SafetyGate
from pictale_server.safety.image_assessment import AGE_BANDS, PEOPLE_OPTIONS, assess_image
from pictale_server.safety.image_policy import MINOR, UNCERTAIN


def verdict(gate: SafetyGate, engine, image) -> str | None:
    try:
        gate.check_image(image, engine)
    except ApiError as error:
        return error.message
    return None


def test_dev_engine_scores_parse_as_an_assessment(dev_engine) -> None:  # noqa: F811
    assessment = assess_image(dev_engine, scene_image())
    assert set(assessment.people_probabilities) == set(PEOPLE_OPTIONS)
    assert abs(sum(assessment.people_probabilities.values()) - 1) < 1e-6
    if assessment.band_probabilities is not None:
        assert set(assessment.band_probabilities) == set(AGE_BANDS)


def test_dev_engine_verdict_is_deterministic_per_image(dev_engine) -> None:  # noqa: F811
    gate = SafetyGate()
    image = scene_image((200, 150))
    first = verdict(gate, dev_engine, image)
    assert verdict(gate, dev_engine, image) == first
    assert first is None or any(f"({code})" in first for code in (MINOR, UNCERTAIN))
