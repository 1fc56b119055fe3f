"""docs/server.md documents every setting as the environment variable that sets it."""

from __future__ import annotations

from pathlib import Path

from pictale_server.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def env_names(name: str) -> list[str]:
    alias = Settings.model_fields[name].validation_alias
    choices = getattr(alias, "choices", None)
    return [str(choice) for choice in choices] if choices else [f"PICTALE_{name.upper()}"]


def test_every_setting_is_in_the_configuration_table():
    text = DOCS.read_text(encoding="utf-8")
    missing = [
        env for name in Settings.model_fields for env in env_names(name) if f"`{env}`" not in text
    ]
    assert missing == []
