"""Text normalization before cue matching: one canonical form for the many ways to spell a word.

NFKC folds compatibility forms (fullwidth, mathematical alphanumerics, circled and superscript
characters, ligatures); casefold lowercases across scripts; format characters (zero-width
spaces and joiners, soft hyphens, BOM) and combining marks (accents, stacked "zalgo" marks)
are dropped, so "ｓ\u200be\u0301x" reads "sex". Two marks carry meaning and stay: the Spanish
tilde on n (niña is not Nina) and the Japanese voicing marks. Lookalike letters from other
scripts and leetspeak digits are not folded here but matched by the cue patterns
(see patterns.py), so Cyrillic and Greek words keep their own spelling.
"""

from __future__ import annotations

import unicodedata

_KEPT_MARKS = {"\u3099", "\u309a"}  # kana voicing marks
_TILDE = "\u0303"
_REGIONAL_INDICATOR_A = 0x1F1E6
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201b": "'", "\u2032": "'"})


def normalize_text(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept: list[str] = []
    for char in unicodedata.normalize("NFD", folded):
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        is_mark = category in ("Mn", "Me") and char not in _KEPT_MARKS
        if is_mark and not (char == _TILDE and kept and kept[-1] == "n"):
            continue
        code = ord(char)
        if _REGIONAL_INDICATOR_A <= code < _REGIONAL_INDICATOR_A + 26:
            char = chr(ord("a") + code - _REGIONAL_INDICATOR_A)
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept)).translate(_QUOTES)
