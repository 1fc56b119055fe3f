"""Find minor cues and sexual cues in one normalized text, with their positions."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from pictale_server.safety import lexicon
from pictale_server.safety.age_cues import find_age_cues
from pictale_server.safety.normalize import normalize_text
from pictale_server.safety.patterns import compile_terms

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
    return [
        normalize_text(term.rstrip("*")) + ("*" if term.endswith("*") else "")
        for terms in table.values()
        for term in terms
    ]


def _compile(table: dict[str, tuple[str, ...]]) -> re.Pattern[str]:
    pattern = compile_terms(_all(table))
    assert pattern is not None
    return pattern


@dataclass(frozen=True)
class _Patterns:
    minor: re.Pattern[str]
    near_minor: re.Pattern[str]
    sexual: re.Pattern[str]
    minor_sexual: re.Pattern[str]
    exempt: re.Pattern[str]


@functools.cache
def compiled_patterns() -> _Patterns:
    """The lexicon's patterns, compiled once per process (about a second: SafetyGate.from_settings
    calls this at startup so no request pays for it)."""
    return _Patterns(
        minor=_compile(lexicon.MINOR_TERMS),
        near_minor=_compile(lexicon.NEAR_MINOR_TERMS),
        sexual=_compile(lexicon.SEXUAL_TERMS),
        minor_sexual=_compile(lexicon.MINOR_SEXUAL_TERMS),
        exempt=_compile({"all": lexicon.EXEMPT_PHRASES}),
    )


def find_cues(normalized: str) -> list[Cue]:
    """Cues in text already passed through normalize_text, ordered by position."""
    patterns = compiled_patterns()
    exempt = [m.span() for m in patterns.exempt.finditer(normalized)]

    def kept(start: int, end: int) -> bool:
        return not any(start < e_end and e_start < end for e_start, e_end in exempt)

    cues: list[Cue] = []
    for pattern, kind, specific in (
        (patterns.minor, "minor", True),
        (patterns.near_minor, "minor", False),
        (patterns.sexual, "sexual", True),
    ):
        cues += [
            Cue(kind, *m.span(), specific) for m in pattern.finditer(normalized) if kept(*m.span())
        ]
    for match in patterns.minor_sexual.finditer(normalized):
        cues += [Cue("minor", *match.span()), Cue("sexual", *match.span())]
    cues += [Cue("minor", age.start, age.end) for age in find_age_cues(normalized) if age.is_minor]
    return sorted(cues, key=lambda cue: (cue.start, cue.end))
