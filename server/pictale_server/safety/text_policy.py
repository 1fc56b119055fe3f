"""The text rules: when minor cues and sexual cues together refuse a request.

Rule 1 (`text_minor_sexual`): in one field, a minor cue of any kind and a sexual cue with at
most WINDOW_CHARS normalized characters between them.
Rule 2 (`text_minor_sexual_spread`): anywhere in the request, across fields and any distance,
a specific minor cue (a stated age under 18, a school grade, "underage", "preteen"...) and a
sexual cue. A story that states a child's age cannot also ask for sexual content.
docs/safety.md explains the choice; fields are the request's texts keyed by their path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pictale_server.safety.normalize import normalize_text
from pictale_server.safety.text_cues import Cue, find_cues

WINDOW_CHARS = 300

NEAR = "text_minor_sexual"
SPREAD = "text_minor_sexual_spread"


@dataclass(frozen=True)
class TextDecision:
    code: str
    field: str | None  # the field where both cues were found (rule 1), else None


def _near(cues: list[Cue]) -> bool:
    """Whether a minor cue and a sexual cue lie within WINDOW_CHARS (cues sorted by start)."""
    furthest_end = {"minor": -1, "sexual": -1}
    for cue in cues:
        other = furthest_end["sexual" if cue.kind == "minor" else "minor"]
        if other >= 0 and cue.start - other <= WINDOW_CHARS:
            return True
        furthest_end[cue.kind] = max(furthest_end[cue.kind], cue.end)
    return False


def decide_text(fields: Mapping[str, str]) -> TextDecision | None:
    """The refusal the rules call for, or None when the texts pass."""
    specific_minor = sexual = False
    for name, text in fields.items():
        cues = find_cues(normalize_text(text))
        if _near(cues):
            return TextDecision(NEAR, name)
        specific_minor |= any(c.kind == "minor" and c.specific for c in cues)
        sexual |= any(c.kind == "sexual" for c in cues)
    if specific_minor and sexual:
        return TextDecision(SPREAD, None)
    return None
