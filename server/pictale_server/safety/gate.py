"""The minor-protection gate the serving layer calls before any story token is generated.

It is always on: it is built from Settings only to add image classifiers, and nothing in a
request, header, setting or profile can turn it off or weaken it (docs/safety.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PIL.Image import Image

from pictale_server.engine.base import Engine
from pictale_server.settings import Settings
from pictale_server.safety.classifiers import ImageClassifier, classifier_refusal, load_classifiers
from pictale_server.safety.image_assessment import Unparseable, assess_image
from pictale_server.safety.image_policy import UNPARSEABLE, decide_image
from pictale_server.safety.refusal import refusal
from pictale_server.safety.text_cues import compiled_patterns
from pictale_server.safety.text_policy import decide_text


class SafetyGate:
    def __init__(self, classifiers: Sequence[ImageClassifier] = ()) -> None:
        self._classifiers = tuple(classifiers)

    @classmethod
    def from_settings(cls, settings: Settings) -> SafetyGate:
        gate = cls(load_classifiers(settings.image_classifiers))
        compiled_patterns()
        return gate

    @property
    def classifiers(self) -> tuple[ImageClassifier, ...]:
        return self._classifiers

    def check_text(
        self, fields: Mapping[str, str | None], *, request_id: str | None = None
    ) -> None:
        """Raise `content_refused` when the request's texts pair minors with sexual content.

        `fields` maps each user-supplied text to its request path ("instruction", "system",
        "history.3.content", "context", "describe.prompt"); None and "" are skipped.
        """
        texts: dict[str, str] = {}
        for name, text in fields.items():
            if text is None:
                continue
            if not isinstance(text, str):
                raise TypeError(
                    f"check_text field {name!r} must be a string, not {type(text).__name__}"
                )
            if text:
                texts[name] = text
        decision = decide_text(texts)
        if decision is not None:
            raise refusal(decision.code, request_id=request_id, param=decision.field)

    def check_image(self, image: Image, engine: Engine, *, request_id: str | None = None) -> None:
        """Raise `content_refused` unless the image shows no minor (blocking: run on the vision worker).

        The vision model's assessment decides first; every operator classifier then runs and
        may add a refusal. A refusal by the model is final.
        """
        try:
            code = decide_image(assess_image(engine, image))
        except Unparseable:
            code = UNPARSEABLE
        if code is None:
            for classifier in self._classifiers:
                code = classifier_refusal(classifier, image)
                if code is not None:
                    break
        if code is not None:
            raise refusal(code, request_id=request_id, param="image")
