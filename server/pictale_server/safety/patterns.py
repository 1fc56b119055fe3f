"""Compile lexicon terms into patterns that tolerate the usual disguises.

A term is written plainly in the lexicon ("sex", "make love", "masturbat*"); its pattern also
matches lookalike letters from other scripts and leetspeak ("ѕ3x", "$ex"), a censoring star
inside the word ("s*x"), stretched letters ("seeex") and a word spelled out with a separator
between every letter ("s e x", "s.e.x", "l-o-l-i"). Patterns run on normalized text
(normalize.py), so case, accents, width and zero-width characters are already gone.

Boundaries: a term written in an alphabet must not touch a letter of its own script on either
side ("sex" does not match in "essex", "ロリ" not in "カロリー"); a trailing "*" drops the right
boundary (a stem). Han terms have no boundaries: Chinese and Japanese do not separate words.
"""

from __future__ import annotations

import re
import unicodedata

# Latin letter -> what else is read as that letter: digits and symbols of leetspeak, Cyrillic
# and Greek lookalikes (lowercase, and the lowercase of capital lookalikes, since text is
# casefolded first), small capitals.
LOOKALIKES: dict[str, str] = {
    "a": "4@аαᴀ",
    "b": "8вβʙ",
    "c": "(¢сϲᴄ",
    "d": "ԁᴅ",
    "e": "3€еεᴇ",
    "g": "96ɢ",
    "h": "һнηʜ",
    "i": "1!|іιɪı",
    "j": "јᴊ",
    "k": "кκᴋ",
    "l": "1|ӏʟ",
    "m": "мμᴍ",
    "n": "νɴ",
    "o": "0оοᴏ",
    "p": "рρᴘ",
    "r": "ʀ",
    "s": "5$ѕꜱ",
    "t": "7+тτᴛ",
    "u": "υᴜ",
    "v": "νᴠ",
    "w": "ԝᴡ",
    "x": "хχ×",
    "y": "уγυʏ",
    "z": "2ζᴢ",
}

# Repetitions are bounded everywhere: an unbounded "+" next to a class sharing characters
# lets a crafted run ("lo" + "1" * 20000) backtrack quadratically.
_SEPARATOR = r"[\s.\-_*·•/\\~,]{1,3}"
_INNER_SPACE = r"[\s\-_.]{1,3}"
# A stretched letter ("seeeex") matches up to this many extra repeats.
_MAX_STRETCH = 6
# Words spelled out letter by letter ("s e x") are matched up to this length; longer ones are
# rarely written so, and each form makes the compiled pattern bigger.
_MAX_SPELLED_OUT = 8


def _lookalike_groups() -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {}
    for latin, others in LOOKALIKES.items():
        group = {latin, *others}
        for member in group:
            if member.isalpha():
                groups.setdefault(member, set()).update(group)
    return groups


_GROUPS = _lookalike_groups()
_CLASSES = {
    char: "[" + "".join(re.escape(c) for c in sorted(group)) + "]"
    for char, group in _GROUPS.items()
}


def script_of(char: str) -> str:
    """Coarse script of a letter: its Unicode name's first word (LATIN, CYRILLIC, KATAKANA, CJK...)."""
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else ""


def _is_alphabetic(char: str) -> bool:
    return char.isalpha() and script_of(char) in ("LATIN", "CYRILLIC", "GREEK")


def _letter(char: str, count: int = 1, censorable: bool = False) -> str:
    """A run of `count` equal letters: lookalikes, stretching, and "*" for a censored letter."""
    base = _CLASSES.get(char, re.escape(char))
    if not _is_alphabetic(char):
        return base * count
    run = f"{base}{{{count},{count + _MAX_STRETCH}}}"
    return f"(?:{run}|\\*{{1,{count}}})" if censorable else run


def _boundaries(char: str) -> tuple[str, str]:
    script = script_of(char)
    if not char.isalpha() or script == "CJK":
        return "", ""
    if script in ("LATIN", "CYRILLIC", "GREEK"):
        # Any letter of an alphabet, or a digit, joins the word (lookalike digits included).
        return r"(?<![^\W_])", r"(?![^\W_])"
    same = {"HIRAGANA": "\u3041-\u309f", "KATAKANA": "\u30a0-\u30ff"}.get(script)
    if same is None:
        return "", ""
    return f"(?<![{same}])", f"(?![{same}])"


def _runs(text: str) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for char in text:
        if runs and runs[-1][0] == char:
            runs[-1] = (char, runs[-1][1] + 1)
        else:
            runs.append((char, 1))
    return runs


def _parts(term: str) -> tuple[str, str, list[str]]:
    """(left boundary, first letter's pattern, alternatives for the rest of the term)."""
    stem = term.endswith("*")
    word = term.rstrip("*")
    runs = _runs(word)
    # The first letter stands alone even when doubled and is never censored; a match never
    # starts inside a run of its lookalikes ("||||" is tried once, not at every "|").
    first = _letter(word[0])
    if _is_alphabetic(word[0]):
        first = f"(?<!{_CLASSES.get(word[0], re.escape(word[0]))}){first}"
    rest: list[str] = [_letter(word[0], runs[0][1] - 1)] if runs[0][1] > 1 else []
    for index, (char, count) in enumerate(runs[1:], start=1):
        if char.isspace():
            rest.append(_INNER_SPACE)
            continue
        inner = (
            index < len(runs) - 1
            and not runs[index - 1][0].isspace()
            and not runs[index + 1][0].isspace()
        )
        rest.append(_letter(char, count, censorable=inner and script_of(char) == "LATIN"))
    left, right = _boundaries(word[0])
    right = "" if stem else _boundaries(word[-1])[1]
    alternatives = ["".join(rest) + right]
    letters = [c for c in word if not c.isspace()]
    if 3 <= len(letters) <= _MAX_SPELLED_OUT and " " not in word:
        spelled = "".join(_SEPARATOR + _CLASSES.get(c, re.escape(c)) for c in letters[1:])
        alternatives.append(spelled + right)
    return left, first, alternatives


def _first_chars(term: str) -> set[str]:
    first = term[0]
    return set(_GROUPS.get(first, first))


def alternation(terms: list[str]) -> str:
    """Regex source matching any of the terms (normalized, see normalize_text).

    Terms are grouped by boundary and first letter, and each boundary group is guarded by a
    lookahead over its possible first characters, so most positions fail in one step: this
    keeps a 100k-character request fast.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    starts: dict[str, set[str]] = {}
    for term in sorted(set(terms), key=len, reverse=True):
        left, first, alternatives = _parts(term)
        groups.setdefault((left, first), []).extend(alternatives)
        starts.setdefault(left, set()).update(_first_chars(term))
    by_boundary: dict[str, list[str]] = {}
    for (left, first), alternatives in groups.items():
        by_boundary.setdefault(left, []).append(f"{first}(?:{'|'.join(alternatives)})")
    return "|".join(
        f"{left}(?=[{''.join(re.escape(c) for c in sorted(starts[left]))}])(?:{'|'.join(branches)})"
        for left, branches in by_boundary.items()
    )


def term_pattern(term: str) -> str:
    """Regex source for one lexicon term (already normalized with normalize_text)."""
    return alternation([term])


def compile_terms(terms: list[str]) -> re.Pattern[str] | None:
    """One pattern over many terms; None for an empty list."""
    return re.compile(alternation(terms)) if terms else None
