"""The image rule: which assessments let an image be narrated.

Allowed: "no people" won the first question, or the youngest person is an adult by a clear
majority (P(adult) > ADULT_MIN) with little weight on a minor (P(teenager) + P(child) <
MINOR_MAX). Everything else is refused: `image_minor` when teenager or child is the most
likely band, `image_uncertain` otherwise (adult by too small a margin, or "unclear").
"""

from __future__ import annotations

from pictale_server.safety.image_assessment import Assessment

ADULT_MIN = 0.5
MINOR_MAX = 0.25

MINOR = "image_minor"
UNCERTAIN = "image_uncertain"
UNPARSEABLE = "image_unparseable"


def decide_image(assessment: Assessment) -> str | None:
    """The refusal code for an assessment, or None when the image may be narrated."""
    bands = assessment.band_probabilities
    if bands is None:
        return None
    if bands["adult"] > ADULT_MIN and bands["teenager"] + bands["child"] < MINOR_MAX:
        return None
    if assessment.youngest_band in ("teenager", "child"):
        return MINOR
    return UNCERTAIN
