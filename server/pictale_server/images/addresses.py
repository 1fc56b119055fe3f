"""Which hosts and addresses an image URL may reach: pure functions, no I/O.

The server must never be a proxy into its own network. Refused: loopback, private,
link-local, multicast, reserved, unspecified, shared (CGNAT) and cloud-metadata addresses,
including IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64, 6to4, Teredo) and the
loose IPv4 spellings that `inet_aton` accepts (`127.1`, `0x7f000001`, `2130706433`,
`017700000001`).
"""

from __future__ import annotations

import ipaddress

from pictale_server.images.policy import UrlAllowlist, normalize_hostname

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    }
)

# Names that mean "this machine" or "the cloud's metadata service" without any DNS.
FORBIDDEN_HOSTNAMES = frozenset(
    {"localhost", "localhost.localdomain", "metadata", "metadata.google.internal", "metadata.goog"}
)

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling `inet_aton` accepts, else None.

    One to four dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last part
    fills the remaining bytes. Browsers and resolvers accept these, so the policy must too.
    """
    text = text[:-1] if text.endswith(".") else text
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _parse_inet_number(part)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _parse_inet_number(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:], 16) if lowered[2:] else 0
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered[1:], 8)
        if lowered.isdigit():
            return int(lowered, 10)
    except ValueError:
        return None
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a URL host names without DNS: IPv6 (brackets optional) or loose IPv4."""
    candidate = host.strip().strip("[]")
    if ":" in candidate:
        try:
            return ipaddress.IPv6Address(candidate.split("%", 1)[0])
        except ValueError:
            return None
    return parse_ipv4_loose(candidate)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and would reach, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[0]
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _IPV4_COMPATIBLE and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why the policy refuses this address, or None if it is a public unicast address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = address_refusal(inner)
            return f"an IPv6 form of {reason}" if reason else None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a shared (CGNAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a special-purpose address"
    return None


def hostname_refusal(host: str) -> str | None:
    """Why a hostname is refused before any DNS lookup (names that always mean "here")."""
    name = normalize_hostname(host)
    if name in FORBIDDEN_HOSTNAMES or name.endswith(".localhost"):
        return f"the host {name!r} is local"
    return None


def address_allowed(address: IPAddress, host: str, allowlist: UrlAllowlist) -> str | None:
    """None when the address may be fetched for this host, else the reason it may not."""
    if allowlist.allows_host(host) or allowlist.allows_address(address):
        return None
    return address_refusal(address)
