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

_SEPARATOR = r"(?:\s*[.\-_*·•/\\~+,]\s*|\s+)"
_INNER_SPACE = r"[\s\-_.]+"


def _char_classes() -> dict[str, str]:
    classes: dict[str, set[str]] = {}
    for latin, others in LOOKALIKES.items():
        group = {latin, *others}
        for member in group:
            if member.isalpha():
                classes.setdefault(member, set()).update(group)
    return {char: "[" + "".join(re.escape(c) for c in sorted(group)) + "]" for char, group in classes.items()}


_CLASSES = _char_classes()


def script_of(char: str) -> str:
    """Coarse script of a letter: its Unicode name's first word (LATIN, CYRILLIC, KATAKANA, CJK...)."""
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else ""


def _letter(char: str, inner: bool) -> str:
    base = _CLASSES.get(char, re.escape(char))
    if inner and char.isalpha() and script_of(char) == "LATIN":
        base = base[:-1] + r"*]" if base.startswith("[") else f"[{re.escape(char)}*]"
    return base + "+" if char.isalpha() and script_of(char) in ("LATIN", "CYRILLIC", "GREEK") else base


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


def _parts(term: str) -> tuple[str, str, list[str]]:
    """(left boundary, first letter's class, alternatives for the rest of the term)."""
    stem = term.endswith("*")
    word = term.rstrip("*")
    letters = [c for c in word if not c.isspace()]
    rest = []
    for index, char in enumerate(word[1:], start=1):
        if char.isspace():
            rest.append(_INNER_SPACE)
        else:
            inner = index < len(word) - 1 and not word[index - 1].isspace() and not word[index + 1].isspace()
            rest.append(_letter(char, inner))
    left, right = _boundaries(word[0])
    right = "" if stem else _boundaries(word[-1])[1]
    alternatives = ["".join(rest) + right]
    if len(letters) >= 3:
        alternatives.append("".join(_SEPARATOR + _letter(c, False) for c in letters[1:]) + right)
    return left, _letter(word[0], False), alternatives


def alternation(terms: list[str]) -> str:
    """Regex source matching any of the terms (normalized, see normalize_text).

    Terms are grouped by boundary and first letter, so the engine tries a few dozen branches
    at each position instead of every term: this keeps a 100k-character request fast.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for term in sorted(set(terms), key=len, reverse=True):
        left, first, alternatives = _parts(term)
        groups.setdefault((left, first), []).extend(alternatives)
    by_boundary: dict[str, list[str]] = {}
    for (left, first), alternatives in groups.items():
        by_boundary.setdefault(left, []).append(f"{first}(?:{'|'.join(alternatives)})")
    return "|".join(f"{left}(?:{'|'.join(branches)})" for left, branches in by_boundary.items())


def term_pattern(term: str) -> str:
    """Regex source for one lexicon term (already normalized with normalize_text)."""
    return alternation([term])


def compile_terms(terms: list[str]) -> re.Pattern[str] | None:
    """One pattern over many terms; None for an empty list."""
    return re.compile(alternation(terms)) if terms else None
