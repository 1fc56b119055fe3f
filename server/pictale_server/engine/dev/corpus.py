"""A synthetic, deterministic text corpus to train the dev tokenizers on.

Benign scene vocabulary with some accented words and symbols, so the byte-level BPE learns
merges over multi-byte characters as real tokenizers do.
"""

from __future__ import annotations

import random

_SUBJECTS = [
    "a red circle",
    "the blue square",
    "a green triangle",
    "two yellow stars",
    "the old lighthouse",
    "a quiet harbour",
    "the café on the corner",
    "a wooden bridge",
    "the narrow street",
    "a small garden",
    "the painter",
    "a traveller",
    "the children",
    "an orange cat",
    "the crème tart",
]
_VERBS = [
    "sits beside",
    "leans against",
    "looks toward",
    "rests under",
    "glows above",
    "drifts past",
    "waits near",
    "stands before",
    "circles around",
    "hides behind",
]
_OBJECTS = [
    "the morning light",
    "a stone wall",
    "the open window",
    "a tall pine",
    "the calm water",
    "a striped umbrella",
    "the evening sky",
    "a pale moon",
    "the market stalls",
    "a brass lamp",
    "the naïve sketch",
    "a Zürich tram",
    "the São Paulo skyline",
    "a piñata",
    "the déjà vu",
]
_CLOSERS = [
    "The mood is calm.",
    "Soft shadows fall across the ground.",
    "Colours are warm and muted.",
    "It feels like an old story.",
    "Rain is about to start.",
    "Everything is still — almost.",
    "Light: golden; air: cool.",
    "Numbers on the sign read 42, 7 and 1905.",
    "¿Qué pasa? «Rien».",
]


def synthetic_corpus(lines: int = 4000, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    corpus = []
    for _ in range(lines):
        sentence = (
            f"{rng.choice(_SUBJECTS).capitalize()} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."
        )
        corpus.append(f"{sentence} {rng.choice(_CLOSERS)}")
    return corpus
