"""The vision model's structured self-assessment of an image, by constrained choice.

The model is asked short questions and never writes free text: for each question the engine
returns the log-probability of each allowed answer as the complete reply
(`Engine.score_vision_options`), and this module turns those numbers into an `Assessment`,
strictly: anything but one finite log-probability (<= 0) per option is `Unparseable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL.Image import Image

from pictale_server.engine.base import ChatMessage, Engine

SYSTEM = (
    "You are a content-safety assessor. Answer each question about the image with exactly one "
    "of the allowed words and nothing else."
)
PEOPLE_QUESTION = (
    "Are there any people (or human-like characters) in this image? Answer with one word: "
    "no or yes."
)
PEOPLE_OPTIONS = ("no", "yes")
AGE_QUESTION = (
    "What is the apparent age band of the youngest person (or human-like character) in this "
    "image? Answer with one word: adult, teenager, child or unclear."
)
AGE_BANDS = ("adult", "teenager", "child", "unclear")
# log-probabilities are <= 0; allow for float rounding in the engine's sums.
_LOGPROB_TOLERANCE = 1e-3


class Unparseable(Exception):
    """The assessor's answer could not be read: the gate fails closed."""


@dataclass(frozen=True)
class Assessment:
    people_probabilities: dict[str, float]  # over PEOPLE_OPTIONS, sums to 1
    band_probabilities: dict[str, float] | None  # over AGE_BANDS; None when no people

    @property
    def people_present(self) -> bool:
        return self.band_probabilities is not None

    @property
    def youngest_band(self) -> str | None:
        if self.band_probabilities is None:
            return None
        return max(AGE_BANDS, key=self.band_probabilities.__getitem__)


def option_probabilities(scores: object, options: Sequence[str]) -> dict[str, float]:
    """Validate one question's scores and renormalize them over its options."""
    if not isinstance(scores, (list, tuple)) or len(scores) != len(options):
        raise Unparseable("wrong number of scores")
    values: list[float] = []
    for score in scores:
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise Unparseable("score is not a number")
        value = float(score)
        if not math.isfinite(value) or value > _LOGPROB_TOLERANCE:
            raise Unparseable("score is not a finite log-probability")
        values.append(value)
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    total = sum(weights)
    return {option: weight / total for option, weight in zip(options, weights)}


def _ask(engine: Engine, image: Image, question: str, options: Sequence[str]) -> dict[str, float]:
    messages: list[ChatMessage] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    try:
        scores = engine.score_vision_options(image, messages, list(options))
    except Exception as error:  # a failing assessor must refuse, not let the image through
        raise Unparseable(f"assessor raised {type(error).__name__}") from error
    return option_probabilities(scores, options)


def assess_image(engine: Engine, image: Image) -> Assessment:
    """Ask whether people are present, then, unless "no" wins, the youngest one's age band."""
    people = _ask(engine, image, PEOPLE_QUESTION, PEOPLE_OPTIONS)
    if people["no"] > people["yes"]:
        return Assessment(people, None)
    return Assessment(people, _ask(engine, image, AGE_QUESTION, AGE_BANDS))
