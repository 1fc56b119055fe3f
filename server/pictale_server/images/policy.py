"""The limits and the URL allowlist every image is checked against, built from Settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pictale_server.settings import Settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Qwen2.5-VL's processor raises on a longer side more than 200 times the shorter one.
MAX_ASPECT_RATIO = 200
MAX_REDIRECTS = 3


def normalize_hostname(host: str) -> str:
    """Lower-case, without the trailing root dot (`LOCALHOST.` and `localhost` are one name)."""
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True)
class UrlAllowlist:
    """Operator exceptions to the address policy: hostnames, or networks in CIDR form.

    An allowlisted hostname may resolve to any address; an address inside an allowlisted
    network is allowed whatever name led to it. An IP written without a prefix is a single-host
    network. The allowlist only adds exceptions: public addresses are allowed without it.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: list[str] | tuple[str, ...]) -> UrlAllowlist:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(normalize_hostname(entry))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return normalize_hostname(host) in self.hosts

    def allows_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class ImagePolicy:
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    fetch_timeout_s: float = 10.0
    allowlist: UrlAllowlist = field(default_factory=UrlAllowlist)
    max_redirects: int = MAX_REDIRECTS
    max_aspect_ratio: int = MAX_ASPECT_RATIO

    @classmethod
    def from_settings(cls, settings: Settings) -> ImagePolicy:
        return cls(
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
            fetch_timeout_s=settings.fetch_timeout_s,
            allowlist=UrlAllowlist.parse(settings.url_allowlist),
        )
