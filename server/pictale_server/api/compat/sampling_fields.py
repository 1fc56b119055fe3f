"""The sampling fields every compatibility body takes, under each dialect's names.

Front ends send everything their settings panel has, in OpenAI's, vLLM's and KoboldCpp's
spellings at once (SillyTavern's KoboldCpp text completion sends `max_tokens` and
`max_new_tokens`, `stop` and `stopping_strings`, `repetition_penalty` and `rep_pen`). pictale
applies temperature, top_p, top_k, min_p, the repetition penalty, presence and frequency
penalties, logit bias, DRY, XTC, banned phrases (`banned_strings`, KoboldCpp's
`banned_tokens`), stop strings, the seed and the answer's length, and takes pictale's own
`deterministic` (docs/protocol.md, "Sampling"), which no dialect has. Fields of samplers it does
not run (top-a, typical, TFS, mirostat, ...) are accepted and, when set to anything but their
neutral value, named in the `X-Pictale-Unapplied` response header and the log, so nobody takes
them as applied. Anything else unknown is ignored.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pictale_server.api.schemas import (
    MAX_BANNED_PHRASES,
    MAX_BREAKERS,
    MAX_LOGIT_BIAS,
    BannedPhrase,
    Bias,
    Breaker,
    TokenKey,
)

logger = logging.getLogger("pictale.server")

UNAPPLIED_HEADER = "X-Pictale-Unapplied"
MAX_STOPS = 32
MAX_STOP_CHARS = 200
MAX_ANSWER_TOKENS = 1_000_000  # beyond any context: larger is a mistake, not a budget

# field -> its neutral value: unset, or set to this, it changes nothing.
UNAPPLIED_NEUTRAL: dict[str, Any] = {
    "top_a": 0,
    "typical": 1,
    "typical_p": 1,
    "tfs": 1,
    "rep_pen_slope": 1,
    "rep_pen_range": 0,
    "repetition_penalty_range": 0,
    "mirostat": 0,
    "mirostat_mode": 0,
    "smoothing_factor": 0,
    "dynatemp_range": 0,
    "nsigma": 0,
    "top_n_sigma": 0,
    "min_tokens": 0,
    "ban_eos_token": False,
    "ignore_eos": False,
    "guidance_scale": 1,
    "grammar": "",
    "trim_stop": True,
}

Stop = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
Stops = str | Annotated[list[Stop], Field(max_length=MAX_STOPS)]
Penalty = Annotated[float, Field(ge=0.5, le=2)]


class CompatSampling(BaseModel):
    # extra="allow": unapplied() reads the sampler fields pictale does not declare. strict: a
    # declared field of the wrong JSON type (`"temperature": "0.7"`, `false`) is a clear 400,
    # never a guess; ints still pass for floats.
    model_config = ConfigDict(extra="allow", strict=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=-1, le=1000)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: Penalty | None = None
    rep_pen: Penalty | None = None  # KoboldCpp
    repeat_penalty: Penalty | None = None  # llama.cpp
    stop: Stops | None = None
    stopping_strings: Stops | None = None  # text-generation-webui
    stop_sequence: Stops | None = None  # KoboldCpp
    seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)
    sampler_seed: int | None = Field(None, ge=-(2**63), le=2**64 - 1)  # KoboldCpp
    max_tokens: int | None = Field(None, ge=1, le=MAX_ANSWER_TOKENS)
    max_new_tokens: int | None = Field(None, ge=1, le=MAX_ANSWER_TOKENS)  # text-generation-webui
    max_length: int | None = Field(None, ge=1, le=MAX_ANSWER_TOKENS)  # KoboldCpp
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[TokenKey, Bias] | None = Field(None, max_length=MAX_LOGIT_BIAS)
    custom_token_bans: str | None = Field(None, pattern=r"^[0-9, ]*$", max_length=4000)  # ids, banned
    dry_multiplier: float | None = Field(None, ge=0, le=10)
    dry_base: float | None = Field(None, ge=1, le=8)
    dry_allowed_length: int | None = Field(None, ge=1, le=50)
    dry_penalty_last_n: int | None = Field(None, ge=-1, le=1_000_000)
    # A list, or a JSON list in a string (SillyTavern sends it so).
    dry_sequence_breakers: Annotated[list[Breaker], Field(max_length=MAX_BREAKERS)] | str | None = None
    xtc_threshold: float | None = Field(None, ge=0, le=1)
    xtc_probability: float | None = Field(None, ge=0, le=1)
    banned_phrases: Annotated[list[BannedPhrase], Field(max_length=MAX_BANNED_PHRASES)] | None = None
    banned_strings: Annotated[list[BannedPhrase], Field(max_length=MAX_BANNED_PHRASES)] | None = None
    banned_tokens: Annotated[list[BannedPhrase], Field(max_length=MAX_BANNED_PHRASES)] | None = None
    deterministic: bool | None = None  # pictale's own: the tokens do not depend on the batch

    def answer_tokens(self) -> int | None:
        return self.max_tokens or self.max_new_tokens or self.max_length

    def stops(self) -> list[str]:
        """Every stop string under any of its names, once each; empty ones stop nothing."""
        found: list[str] = []
        for value in (self.stop, self.stopping_strings, self.stop_sequence):
            for item in [value] if isinstance(value, str) else value or []:
                if item and item not in found:
                    found.append(item)
        return found

    @field_validator("custom_token_bans")
    @classmethod
    def _token_ids(cls, value: str | None) -> str | None:
        for item in (value or "").split(","):
            if item.strip() and not (item.strip().isdigit() and len(item.strip()) <= 9):
                raise ValueError("comma-separated token ids (up to 9 digits each)")
        return value

    @field_validator("dry_sequence_breakers")
    @classmethod
    def _breakers_as_a_list(cls, value: list[str] | str | None) -> list[str] | None:
        if not isinstance(value, str):
            return value
        text = value.strip()
        try:  # text-generation-webui also takes the list without its brackets
            parsed = json.loads(text if text.startswith("[") else f"[{text}]")
        except ValueError:
            raise ValueError("a list of strings, or one written as JSON") from None
        if not isinstance(parsed, list) or not all(isinstance(b, str) and 0 < len(b) <= 40 for b in parsed):
            raise ValueError("sequence breakers are strings of 1-40 characters")
        if len(parsed) > MAX_BREAKERS:
            raise ValueError(f"at most {MAX_BREAKERS} sequence breakers")
        return parsed

    def phrases(self) -> list[str]:
        found: list[str] = []
        for value in (self.banned_phrases, self.banned_strings, self.banned_tokens):
            for phrase in value or []:
                if phrase not in found:
                    found.append(phrase)
        return found

    def biases(self) -> dict[str, float] | None:
        biases = dict(self.logit_bias or {})
        for token in filter(None, (t.strip() for t in (self.custom_token_bans or "").split(","))):
            biases[token] = -100.0
        return biases or None

    @model_validator(mode="after")
    def _counts(self) -> CompatSampling:
        if len(self.stops()) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop strings in all")
        if len(self.phrases()) > MAX_BANNED_PHRASES:
            raise ValueError(f"at most {MAX_BANNED_PHRASES} banned phrases in all")
        if len(self.biases() or {}) > MAX_LOGIT_BIAS:
            raise ValueError(f"at most {MAX_LOGIT_BIAS} biased tokens in all")
        return self

    def sampling_overrides(self, default_max_tokens: int) -> dict[str, Any]:
        """Overrides for flows.sampling_for: what the client set, under pictale's names."""
        values: dict[str, Any] = {"fit_context": True, "stop": self.stops()}
        values["max_tokens"] = self.answer_tokens() or default_max_tokens
        if self.temperature is not None:
            values["temperature"] = self.temperature
        if self.top_p is not None:
            if self.top_p == 0:  # the smallest nucleus: the top token alone
                values["temperature"] = 0.0
            else:
                values["top_p"] = self.top_p
        if self.top_k is not None:
            values["top_k"] = max(self.top_k, 0)  # -1 and 0 both mean "off"
        if self.min_p is not None:
            values["min_p"] = self.min_p
        penalties = [p for p in (self.repetition_penalty, self.rep_pen, self.repeat_penalty) if p is not None]
        if penalties:
            values["repetition_penalty"] = max(penalties)  # as KoboldCpp merges its aliases
        seed = self.seed if self.seed is not None else self.sampler_seed
        values["seed"] = None if seed is None or seed < 0 else seed % 2**63  # -1: a random seed
        if self.deterministic is not None:
            values["deterministic"] = self.deterministic
        for name in (
            "presence_penalty", "frequency_penalty", "dry_multiplier", "dry_base", "dry_allowed_length",
            "dry_penalty_last_n", "xtc_threshold", "xtc_probability",
        ):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        values["logit_bias"] = self.biases()
        values["dry_sequence_breakers"] = self.dry_sequence_breakers
        values["banned_phrases"] = self.phrases()
        return values

    def unapplied(self) -> list[str]:
        """The sampler fields set to a value pictale does not apply."""
        extra = self.model_extra or {}
        names = []
        for name, neutral in UNAPPLIED_NEUTRAL.items():
            value = getattr(self, name, None) if name in type(self).model_fields else extra.get(name)
            if value is None or value == neutral or (value in ("", [], {}) and not neutral):
                continue
            names.append(name)
        return names


def unapplied_headers(names: list[str], route: str) -> dict[str, str]:
    if not names:
        return {}
    logger.info("%s: fields accepted but not applied: %s", route, ", ".join(names))
    return {UNAPPLIED_HEADER: ", ".join(names)}
