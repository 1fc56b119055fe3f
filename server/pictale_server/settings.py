"""Server settings, read from the environment (docs/server.md lists every variable).

One object, built once by the entry point (`Settings()`), passed to `create_app` and the
engine loader. Nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Profile = Literal["dev", "reference", "custom"]


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PICTALE_", extra="ignore")

    # Which models. None = "dev" on a machine without CUDA, "reference" with it.
    profile: Profile | None = None
    vision_model: str | None = None
    writer_model: str | None = None
    vision_revision: str | None = None
    writer_revision: str | None = None
    # Pre-quantized NF4 checkpoints (engine/checkpoints.py, made by engine/prepare_weights.py); None = HF cache.
    weights_dir: Path | None = None
    # Where the dev profile builds its tiny models.
    cache_dir: Path = Path.home() / ".cache" / "pictale"

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("HOST", "PICTALE_HOST"))
    port: int = Field(8000, validation_alias=AliasChoices("PORT", "PICTALE_PORT"))

    # Access and limits.
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rate_limit_per_minute: int | None = None
    queue_depth: int = Field(8, ge=1)
    # Jobs one caller may have waiting per model; None = half the depth (at least 1), so one
    # client cannot fill a queue that others share.
    queue_per_caller: int | None = Field(None, ge=1)
    ping_interval_s: float = 10.0
    # Runs: how long a dropped stream's run waits for its client to resume before it is
    # cancelled, and how long ended runs (their events and results) are kept.
    resume_grace_s: float = 10.0
    run_retention_s: float = 3600.0
    # The events kept for one caller's runs, in all; the oldest ended runs go first.
    run_log_bytes_per_caller: int = 64 * 1024 * 1024
    # Webhooks (webhooks.py): the Standard Webhooks signing secret ("whsec_" + base64); unset,
    # requests that ask for a webhook are refused. The first retry waits this long, doubling.
    webhook_secret: str | None = None
    webhook_backoff_s: float = 5.0
    max_body_bytes: int = 30 * 1024 * 1024
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    fetch_timeout_s: float = 10.0
    url_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Origins whose pages may call the API directly (CORS), comma separated, or "*". Unset:
    # none, except on the dev profile, where any origin may (api/cors.py says why).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Safety: extra image classifiers ("package.module:factory", comma separated) that can
    # only add refusals. Nothing here turns the minor-protection gate off (docs/safety.md).
    image_classifiers: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Engine.
    max_pixels: int = 1280 * 28 * 28
    # "auto": NF4 models on a CUDA GPU (compute capability 8.0+) decode on the fast path (the
    # CUDA NF4 kernel, the written-out step, the sampler kernels); anything else, or "off",
    # decodes on the reference path (transformers' forward). /health says which, and why.
    fast_path: Literal["auto", "off"] = "auto"
    max_context_tokens: int = 16384
    # Writer streams decoded together (continuous batching, engine/batch_decoder.py): a stream
    # starts once a lane and KV memory for its prompt + max_tokens are free.
    writer_streams: int = Field(8, ge=1, le=16)
    # Describes decoded together, likewise (the vision model's batch; its KV pool holds 2,048
    # tokens a stream, and at least one describe of the longest the contract allows).
    vision_streams: int = Field(4, ge=1, le=16)

    @property
    def caller_queue_share(self) -> int:
        """Waiting jobs per caller per model: the setting, never above the queue's depth."""
        share = self.queue_per_caller if self.queue_per_caller is not None else max(1, self.queue_depth // 2)
        return min(share, self.queue_depth)

    @field_validator("api_keys", "url_allowlist", "image_classifiers", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_list(value)
