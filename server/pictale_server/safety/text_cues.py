"""Find minor cues and sexual cues in one normalized text, with their positions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from . import lexicon
from .age_cues import find_age_cues
from .normalize import normalize_text
from .patterns import compile_terms

CueKind = Literal["minor", "sexual"]


@dataclass(frozen=True)
class Cue:
    kind: CueKind
    start: int
    end: int
    # A specific minor cue (a stated age, a grade, "underage") counts anywhere in a request;
    # an ambiguous one ("kid", "child") only near a sexual cue. Sexual cues are all specific.
    specific: bool = True


def _all(table: dict[str, tuple[str, ...]]) -> list[str]:
    return [normalize_text(term.rstrip("*")) + ("*" if term.endswith("*") else "")
            for terms in table.values() for term in terms]


def _compile(table: dict[str, tuple[str, ...]]) -> re.Pattern[str]:
    pattern = compile_terms(_all(table))
    assert pattern is not None
    return pattern


_MINOR = _compile(lexicon.MINOR_TERMS)
_NEAR_MINOR = _compile(lexicon.NEAR_MINOR_TERMS)
_SEXUAL = _compile(lexicon.SEXUAL_TERMS)
_MINOR_SEXUAL = _compile(lexicon.MINOR_SEXUAL_TERMS)
_EXEMPT = _compile({"all": lexicon.EXEMPT_PHRASES})


def find_cues(normalized: str) -> list[Cue]:
    """Cues in text already passed through normalize_text, ordered by position."""
    exempt = [m.span() for m in _EXEMPT.finditer(normalized)]

    def kept(start: int, end: int) -> bool:
        return not any(start < e_end and e_start < end for e_start, e_end in exempt)

    cues: list[Cue] = []
    for pattern, kind, specific in (
        (_MINOR, "minor", True),
        (_NEAR_MINOR, "minor", False),
        (_SEXUAL, "sexual", True),
    ):
        cues += [Cue(kind, *m.span(), specific) for m in pattern.finditer(normalized) if kept(*m.span())]
    for match in _MINOR_SEXUAL.finditer(normalized):
        cues += [Cue("minor", *match.span()), Cue("sexual", *match.span())]
    cues += [Cue("minor", age.start, age.end) for age in find_age_cues(normalized) if age.is_minor]
    return sorted(cues, key=lambda cue: (cue.start, cue.end))
