"""KoboldCpp's generate body, as pictale accepts it (KoboldCpp's own field names).

`memory` goes in front of `prompt`, as KoboldCpp does; `singleline` stops at the first line
break; `images` (base64, up to four) are described by the vision model first and put in front
of the prompt as scene context, where KoboldCpp's multimodal mode puts the images.
`max_context_length` is accepted and not used: the context is the server's, and a prompt is
never cut (one too long is refused). Sampler fields are sampling_fields.py's.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pictale_server.api.compat.sampling_fields import CompatSampling

MAX_PROMPT_CHARS = 400_000
MAX_IMAGES = 4
# KoboldCpp's default answer length depends on its launch flags; this is pictale's narrate
# default.
DEFAULT_MAX_LENGTH = 512


class KoboldGenerateRequest(CompatSampling):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    memory: str = Field("", max_length=MAX_PROMPT_CHARS)
    max_context_length: int | None = Field(None, ge=1)
    genkey: str | None = Field(None, max_length=128)
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES)
    singleline: bool = False
    trim_stop: bool = True

    @property
    def full_prompt(self) -> str:
        return self.memory + self.prompt

    def stops(self) -> list[str]:
        found = super().stops()
        if self.singleline and "\n" not in found:
            found.append("\n")
        return found


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class KoboldGenkey(_Body):
    genkey: str | None = Field(None, max_length=128)


class KoboldTokenCount(_Body):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    special: bool = True  # False: control-token text counts as the plain text it is
