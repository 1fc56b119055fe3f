"""Image classifier factories the classifier plug-in tests load by import path."""

from __future__ import annotations

from PIL.Image import Image

from pictale_server.safety.classifiers import ClassifierVerdict

SEEN: list[tuple[str, tuple[int, int]]] = []


class Fixed:
    def __init__(self, name: str, refuse: bool) -> None:
        self.name = name
        self._refuse = refuse

    def classify(self, image: Image) -> ClassifierVerdict:
        SEEN.append((self.name, image.size))
        return ClassifierVerdict(refuse=self._refuse)


class Broken:
    name = "broken"

    def classify(self, image: Image) -> ClassifierVerdict:
        raise RuntimeError("classifier service unavailable")


class Vague:
    name = "vague"

    def classify(self, image: Image) -> object:
        return "looks fine"


def refusing() -> Fixed:
    return Fixed("always-refuse", refuse=True)


def allowing() -> Fixed:
    return Fixed("always-allow", refuse=False)


def broken() -> Broken:
    return Broken()


def vague() -> Vague:
    return Vague()


def not_a_classifier() -> object:
    return object()


def badly_named() -> Fixed:
    return Fixed("Bad Name!", refuse=False)
