"""Address and hostname classification for image URLs: pure functions, every spelling."""

from __future__ import annotations

import ipaddress

import pytest

from pictale_server.images.addresses import (
    address_allowed,
    address_refusal,
    embedded_ipv4,
    hostname_refusal,
    parse_ip_literal,
    parse_ipv4_loose,
)
from pictale_server.images.policy import UrlAllowlist


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
    ],
)
def test_loose_ipv4_spellings_parse_like_inet_aton(spelling: str, expected: str) -> None:
    assert parse_ipv4_loose(spelling) == ipaddress.IPv4Address(expected)


@pytest.mark.parametrize(
    "text",
    ["", "example.com", "127.0.0.1.1", "256.0.0.1", "4294967296", "08", "0x", "1.2.3.4x", "1..2"],
)
def test_non_addresses_are_not_parsed_as_ipv4(text: str) -> None:
    if text == "0x":
        # inet_aton reads a bare "0x" as zero; what matters is that it is then refused.
        assert parse_ipv4_loose(text) == ipaddress.IPv4Address("0.0.0.0")
        return
    assert parse_ipv4_loose(text) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("0x7f000001", "127.0.0.1"),
        ("images.example.com", None),
        ("[not-an-address]", None),
    ],
)
def test_ip_literals_in_url_hosts(host: str, expected: str | None) -> None:
    result = parse_ip_literal(host)
    assert result == (ipaddress.ip_address(expected) if expected else None)


REFUSED = [
    # loopback
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    # private
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    # link-local
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    # cloud metadata
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("100.100.100.200", "metadata"),
    # multicast
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    # unspecified
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    # shared address space (CGNAT)
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    # reserved and special purpose
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),
    ("198.18.0.1", "private"),
    ("0.1.2.3", "private"),
    # IPv6 forms that reach an IPv4 address
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "loopback"),
    ("::169.254.169.254", "metadata"),
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("64:ff9b:1::10.0.0.1", "private"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a9fe:a9fe::", "metadata"),
    # documentation and discard ranges are not reachable hosts either
    ("2001:db8::1", "private"),
    ("100::1", "reserved"),
]


@pytest.mark.parametrize(("address", "kind"), REFUSED)
def test_non_public_addresses_are_refused_with_their_reason(address: str, kind: str) -> None:
    reason = address_refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.1", "2606:4700::1111",
     "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_embedded_ipv4_is_found_in_every_transition_form() -> None:
    loopback = ipaddress.IPv4Address("127.0.0.1")
    for form in ("::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::"):
        assert embedded_ipv4(ipaddress.IPv6Address(form)) == loopback
    teredo = ipaddress.IPv6Address("2001:0:7f00:1::1")
    assert embedded_ipv4(teredo) == loopback
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", "localhost.", "LocalHost.", "app.localhost", "localhost.localdomain",
     "metadata.google.internal", "METADATA.GOOGLE.INTERNAL.", "metadata.goog", "metadata"],
)
def test_local_and_metadata_hostnames_are_refused_before_dns(host: str) -> None:
    assert hostname_refusal(host) is not None


@pytest.mark.parametrize("host", ["images.example.com", "localhost.example.com", "mylocalhost"])
def test_ordinary_hostnames_pass_the_name_check(host: str) -> None:
    assert hostname_refusal(host) is None


def test_allowlisted_network_admits_private_addresses_inside_it_only() -> None:
    allowlist = UrlAllowlist.parse(["10.1.0.0/16", "127.0.0.1", "[fd00::5]"])
    assert address_allowed(ipaddress.ip_address("10.1.2.3"), "x", allowlist) is None
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), "x", allowlist) is None
    assert address_allowed(ipaddress.ip_address("fd00::5"), "x", allowlist) is None
    assert address_allowed(ipaddress.ip_address("10.2.0.1"), "x", allowlist) is not None
    assert address_allowed(ipaddress.ip_address("127.0.0.2"), "x", allowlist) is not None


def test_allowlisted_hostname_admits_any_address_it_resolves_to() -> None:
    allowlist = UrlAllowlist.parse(["Images.Internal.", " "])
    assert allowlist.hosts == frozenset({"images.internal"})
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_allowed(loopback, "images.internal", allowlist) is None
    assert address_allowed(loopback, "IMAGES.internal.", allowlist) is None
    assert address_allowed(loopback, "other.internal", allowlist) is not None
