"""Nothing in settings, environment, profile or request can switch the gate off."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path

import annotated_types
import pytest

from pictale_server.errors import ApiError
from pictale_server.safety.gate import SafetyGate
from pictale_server.settings import Settings

REFUSED_TEXT = {"instruction": "an explicit sex scene with a 14-year-old"}


def _set_value(annotation: object) -> list[object]:
    """Every non-default value worth trying for a setting of this type."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _set_value(args[0])
    if origin is typing.Literal:
        return list(args)
    if origin in (typing.Union, types.UnionType):
        return [v for a in args for v in _set_value(a)]
    if origin is list:
        return [["off"]]
    return {bool: [True, False], int: [0, 1], float: [0.0], str: ["off"], Path: [Path("off")]}.get(
        annotation, []
    )


def _allowed(value: object, constraints: list[object]) -> bool:
    """Whether a value passes a field's lower bounds (a depth of 0 is refused, not a setting)."""
    return not any(isinstance(c, annotated_types.Ge) and isinstance(value, int | float) and value < c.ge
                   for c in constraints)


def settings_with_every_field_set() -> list[Settings]:
    choices = {
        name: [value for value in _set_value(field.annotation) if _allowed(value, field.metadata)]
        for name, field in Settings.model_fields.items()
    }
    choices["image_classifiers"] = [["safety_classifier_samples:allowing"]]
    untested = [name for name, values in choices.items() if not values]
    assert not untested, f"teach this test to set {untested}"
    rounds = max(len(values) for values in choices.values())
    return [
        Settings(**{name: values[i % len(values)] for name, values in choices.items()})
        for i in range(rounds)
    ]


def test_gate_from_any_settings_still_refuses() -> None:
    for settings in settings_with_every_field_set():
        with pytest.raises(ApiError) as raised:
            SafetyGate.from_settings(settings).check_text(REFUSED_TEXT)
        assert raised.value.code == "content_refused"


@pytest.mark.parametrize(
    "variable",
    [
        "PICTALE_SAFETY",
        "PICTALE_SAFETY_GATE",
        "PICTALE_DISABLE_SAFETY",
        "PICTALE_SAFE_MODE",
        "PICTALE_NSFW_FILTER",
    ],
)
def test_environment_cannot_disable_the_gate(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "off")
    monkeypatch.setenv("PICTALE_PROFILE", "dev")
    with pytest.raises(ApiError):
        SafetyGate.from_settings(Settings()).check_text(REFUSED_TEXT)


def test_request_fields_are_text_not_switches() -> None:
    with pytest.raises(ApiError):
        SafetyGate().check_text({**REFUSED_TEXT, "safety": "off", "x-safety-gate": "disabled"})


def test_gate_api_has_no_switch() -> None:
    assert list(inspect.signature(SafetyGate).parameters) == ["classifiers"]
    assert list(inspect.signature(SafetyGate.check_text).parameters) == [
        "self",
        "fields",
        "request_id",
    ]
    assert list(inspect.signature(SafetyGate.check_image).parameters) == [
        "self",
        "image",
        "engine",
        "request_id",
    ]
