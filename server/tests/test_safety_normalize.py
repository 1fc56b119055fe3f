"""Normalization and the disguise-tolerant term patterns the text gate is built on."""

from __future__ import annotations

import re

import pytest

from pictale_server.safety.normalize import normalize_text
from pictale_server.safety.patterns import compile_terms


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("ＳＥＸ", "sex"),
        ("s\u200be\u200dx\ufeff", "sex"),
        ("𝐬𝐞𝐱", "sex"),
        ("s̷̢e̸x", "sex"),
        ("\U0001f1f8\U0001f1ea\U0001f1fd", "sex"),  # regional indicator letters
        ("Niña", "niña"),
        ("Fünfzehn", "funfzehn"),
        ("⑭", "14"),
        ("l’amour", "l'amour"),
        ("ジ", "ジ"),
    ],
)
def test_normalize_text(raw: str, normalized: str) -> None:
    assert normalize_text(raw) == normalized


@pytest.fixture(scope="module")
def pattern() -> re.Pattern[str]:
    compiled = compile_terms(["sex", "loli", "ロリ", "masturbat*", "make love"])
    assert compiled is not None
    return compiled


@pytest.mark.parametrize(
    "text",
    [
        "sex",
        "s3x",
        "$ex",
        "ѕеx",
        "s*x",
        "s e x",
        "s.e.x",
        "s-e-x",
        "seeex",
        "l0l1",
        "l-o-l-i",
        "ロリ",
        "masturbating",
        "make  love",
        "make-love",
    ],
)
def test_disguised_terms_match(pattern: re.Pattern[str], text: str) -> None:
    assert pattern.search(text)


@pytest.mark.parametrize(
    "text", ["essex", "sexton", "unisex", "lolita", "カロリー", "was extra", "lol i"]
)
def test_words_containing_terms_do_not_match(pattern: re.Pattern[str], text: str) -> None:
    assert pattern.search(text) is None
