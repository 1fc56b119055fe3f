"""Deploy-time settings of the Modal deployment, from the environment of `modal deploy`.

    PICTALE_GPU=A10G,L4 PICTALE_MAX_CONTAINERS=2 modal deploy server/modal_app.py

modal_app.py reads them when it is imported, and it is imported twice: by `modal deploy` on
your machine, and again in every container. `as_env()` hands the values to the containers so
both imports agree. A value that cannot work is refused with `DeploySettingError`, before
anything is deployed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Both NF4 models (~16 GB) resident with room for the KV cache and activations.
MIN_MEMORY_GB = 24
# bf16 (fp16 overflows Qwen2.5-VL) and the fast path's kernels need compute capability 8.0.
MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class GpuCard:
    capability: tuple[int, int]
    memory_gb: int


# Modal's GPU names (case-insensitive, as Modal takes them) and what the engine needs to know.
CARDS: dict[str, GpuCard] = {
    "T4": GpuCard((7, 5), 16),
    "L4": GpuCard((8, 9), 24),
    "A10": GpuCard((8, 6), 24),
    "A10G": GpuCard((8, 6), 24),
    "L40S": GpuCard((8, 9), 48),
    "A100": GpuCard((8, 0), 40),
    "A100-40GB": GpuCard((8, 0), 40),
    "A100-80GB": GpuCard((8, 0), 80),
    "RTX-PRO-6000": GpuCard((12, 0), 96),
    "H100": GpuCard((9, 0), 80),
    "H100!": GpuCard((9, 0), 80),
    "H200": GpuCard((9, 0), 141),
    "B200": GpuCard((10, 0), 180),
    "B200+": GpuCard((10, 0), 180),
}

DEFAULT_GPUS = ("A10G",)
DEFAULT_MAX_CONTAINERS = 1
DEFAULT_WRITER_STREAMS = 8  # as the server's PICTALE_WRITER_STREAMS
DEFAULT_VISION_STREAMS = 4  # as the server's PICTALE_VISION_STREAMS
MAX_STREAMS = 16  # a batch's most lanes, for either model


class DeploySettingError(ValueError):
    """A deploy-time setting that cannot work; the message names the variable and the fix."""


@dataclass(frozen=True)
class DeploySettings:
    # Modal tries the cards in this order and takes the first it can place.
    gpus: tuple[str, ...] = DEFAULT_GPUS
    max_containers: int = DEFAULT_MAX_CONTAINERS
    # Modal's proxy auth in front of the API (docs/deploy.md, "Proxy auth").
    proxy_auth: bool = True
    # Load the models before Modal's memory snapshot, GPU memory included (alpha; docs/deploy.md).
    gpu_snapshot: bool = False
    # Writer requests one container decodes together: its containers' PICTALE_WRITER_STREAMS,
    # and what Modal's concurrency limits are sized from.
    writer_streams: int = DEFAULT_WRITER_STREAMS
    # Describes one container decodes together (PICTALE_VISION_STREAMS), likewise.
    vision_streams: int = DEFAULT_VISION_STREAMS

    @property
    def gpu(self) -> str | list[str]:
        """The value for Modal's `gpu=`: one name, or the list of fallbacks."""
        return self.gpus[0] if len(self.gpus) == 1 else list(self.gpus)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DeploySettings:
        return cls(
            gpus=parse_gpus(env.get("PICTALE_GPU", "")),
            max_containers=parse_max_containers(env.get("PICTALE_MAX_CONTAINERS", "")),
            proxy_auth=parse_switch("PICTALE_PROXY_AUTH", env.get("PICTALE_PROXY_AUTH", ""), default=True),
            gpu_snapshot=parse_switch("PICTALE_GPU_SNAPSHOT", env.get("PICTALE_GPU_SNAPSHOT", ""), default=False),
            writer_streams=parse_streams("PICTALE_WRITER_STREAMS", env.get("PICTALE_WRITER_STREAMS", ""), DEFAULT_WRITER_STREAMS),
            vision_streams=parse_streams("PICTALE_VISION_STREAMS", env.get("PICTALE_VISION_STREAMS", ""), DEFAULT_VISION_STREAMS),
        )

    def as_env(self) -> dict[str, str]:
        """These settings as the variables `from_env` reads back."""
        return {
            "PICTALE_GPU": ",".join(self.gpus),
            "PICTALE_MAX_CONTAINERS": str(self.max_containers),
            "PICTALE_PROXY_AUTH": "on" if self.proxy_auth else "off",
            "PICTALE_GPU_SNAPSHOT": "on" if self.gpu_snapshot else "off",
            "PICTALE_WRITER_STREAMS": str(self.writer_streams),
            "PICTALE_VISION_STREAMS": str(self.vision_streams),
        }


def parse_gpus(value: str) -> tuple[str, ...]:
    """`A10G` or `A10G,L4` (fallbacks in order of preference); each one card with bf16 and 24 GB."""
    names = [name.strip() for name in value.split(",")] if value.strip() else list(DEFAULT_GPUS)
    gpus: list[str] = []
    for raw in names:
        name, _, count = raw.upper().partition(":")
        if not name:
            raise DeploySettingError(f"PICTALE_GPU={value!r} has an empty entry; separate GPU names with commas")
        if count and count != "1":
            raise DeploySettingError(
                f"PICTALE_GPU: {raw!r} asks for {count} GPUs; the server runs both models on one, so name the card alone"
            )
        card = CARDS.get(name)
        if card is None:
            raise DeploySettingError(f"PICTALE_GPU: {raw!r} is not a GPU this deployment knows; use one of {', '.join(usable_cards())}")
        if card.capability < MIN_CAPABILITY:
            raise DeploySettingError(
                f"PICTALE_GPU: {name} has no bf16 (compute capability {card.capability[0]}.{card.capability[1]}, "
                "8.0 needed; fp16 overflows Qwen2.5-VL)"
            )
        if card.memory_gb < MIN_MEMORY_GB:
            raise DeploySettingError(f"PICTALE_GPU: {name} has {card.memory_gb} GB; both models need {MIN_MEMORY_GB} GB")
        if name in gpus:
            raise DeploySettingError(f"PICTALE_GPU: {name} is listed twice")
        gpus.append(name)
    return tuple(gpus)


def usable_cards() -> list[str]:
    return [name for name, card in CARDS.items() if card.capability >= MIN_CAPABILITY and card.memory_gb >= MIN_MEMORY_GB]


def parse_max_containers(value: str) -> int:
    count = _whole_number("PICTALE_MAX_CONTAINERS", value, DEFAULT_MAX_CONTAINERS)
    if count < 1:
        raise DeploySettingError(f"PICTALE_MAX_CONTAINERS={count}: at least 1 (min_containers=0 already scales to zero)")
    return count


def parse_streams(name: str, value: str, default: int) -> int:
    count = _whole_number(name, value, default)
    if not 1 <= count <= MAX_STREAMS:
        raise DeploySettingError(f"{name}={count}: 1 to {MAX_STREAMS} streams a container")
    return count


def _whole_number(name: str, value: str, default: int) -> int:
    if not value.strip():
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise DeploySettingError(f"{name}={value!r} is not a whole number") from None


def parse_switch(name: str, value: str, *, default: bool) -> bool:
    word = value.strip().lower()
    if not word:
        return default
    if word in ("on", "off"):
        return word == "on"
    raise DeploySettingError(f"{name}={value!r}: use on or off")
