"""Extra image classifiers an operator adds; each can refuse an image, none can allow one.

A classifier is any object with a `name` and `classify(image) -> ClassifierVerdict`. The
setting PICTALE_IMAGE_CLASSIFIERS lists factories as "package.module:factory" (comma
separated); each factory is called with no arguments and returns a classifier. A factory that
cannot be imported or returns something else stops the server from starting: an operator
who configured a classifier must not run without it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL.Image import Image


@dataclass(frozen=True)
class ClassifierVerdict:
    refuse: bool


@runtime_checkable
class ImageClassifier(Protocol):
    name: str

    def classify(self, image: Image) -> ClassifierVerdict: ...


class ClassifierConfigError(ValueError):
    """PICTALE_IMAGE_CLASSIFIERS names something that is not a usable classifier factory."""


_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def load_classifier(spec: str) -> ImageClassifier:
    if not _SPEC.match(spec):
        raise ClassifierConfigError(f"image classifier {spec!r} is not 'package.module:factory'")
    module_name, factory_name = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as error:
        raise ClassifierConfigError(
            f"image classifier {spec!r} cannot be loaded: {error}"
        ) from error
    classifier = factory()
    if not isinstance(classifier, ImageClassifier):
        raise ClassifierConfigError(f"image classifier {spec!r} has no name and classify(image)")
    if not isinstance(classifier.name, str) or not _NAME.match(classifier.name):
        raise ClassifierConfigError(
            f"image classifier {spec!r}: name must be 1-64 of a-z 0-9 _ . - (it goes in refusal codes)"
        )
    return classifier


def load_classifiers(specs: Sequence[str]) -> tuple[ImageClassifier, ...]:
    return tuple(load_classifier(spec) for spec in specs)


def classifier_refusal(classifier: ImageClassifier, image: Image) -> str | None:
    """The refusal code this classifier calls for, or None. A failing classifier refuses."""
    code = f"classifier:{classifier.name}"
    try:
        verdict = classifier.classify(image)
    except Exception:  # noqa: BLE001 - a failing classifier refuses, whatever it raised
        return code
    if not isinstance(verdict, ClassifierVerdict) or verdict.refuse is not False:
        return code
    return None
