"""The image fetcher end to end against local servers: redirects, caps, timeouts, pinning.

Nothing leaves the machine: servers listen on 127.0.0.1, names resolve through a scripted
resolver (or, for `.invalid`, fail without a query), and refused destinations are refused
before any connection is attempted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest
from image_samples import RED, png_bytes
from local_image_server import LocalImageServer, start_image_server

from pictale_server.errors import ApiError
from pictale_server.images import ImagePolicy, UrlAllowlist, load_image
from pictale_server.images.fetch import USER_AGENT, PinnedAddressTransport, fetch_image_bytes
from pictale_server.images.resolve import Resolver, system_resolver

IMAGES_HOST = "images.test"


@pytest.fixture
def server() -> Iterator[LocalImageServer]:
    running = start_image_server()
    yield running
    running.close()


@pytest.fixture
def other_server() -> Iterator[LocalImageServer]:
    running = start_image_server()
    yield running
    running.close()


def scripted_resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Resolver:
    async def resolve(host: str, port: int) -> list:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(address) for address in table[host]]

    return resolve


LOCAL_NAMES = scripted_resolver({IMAGES_HOST: ["127.0.0.1"]})


def policy(*allowlist: str, **limits: object) -> ImagePolicy:
    return ImagePolicy(allowlist=UrlAllowlist.parse(list(allowlist)), **limits)


def fetch(url: str, image_policy: ImagePolicy, resolver: Resolver = LOCAL_NAMES) -> bytes:
    return asyncio.run(fetch_image_bytes(url, image_policy, "image", resolver=resolver))


def fetch_refusal(
    url: str, image_policy: ImagePolicy, resolver: Resolver = LOCAL_NAMES
) -> ApiError:
    with pytest.raises(ApiError) as caught:
        fetch(url, image_policy, resolver)
    assert caught.value.param == "image"
    return caught.value


def test_allowlisted_network_fetches_and_decodes(server: LocalImageServer) -> None:
    image = asyncio.run(load_image(server.url("/red.png"), policy("127.0.0.1/32")))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == RED
    assert [seen.path for seen in server.requests] == ["/red.png"]
    assert server.requests[0].user_agent == USER_AGENT


def test_loopback_is_refused_without_a_connection_when_not_allowlisted(
    server: LocalImageServer,
) -> None:
    for host in ("127.0.0.1", "127.1", "0x7f000001", "2130706433", "017700000001",
                 "[::ffff:127.0.0.1]", "localhost", "LOCALHOST.", "evil@127.0.0.1"):
        error = fetch_refusal(server.url("/red.png", host), policy())
        assert error.code == "url_not_allowed", host
    assert server.requests == []


def test_connection_goes_to_the_checked_address_with_the_original_host_header(
    server: LocalImageServer,
) -> None:
    calls: list[str] = []
    resolver = scripted_resolver({IMAGES_HOST: ["127.0.0.1"]}, calls)
    data = fetch(server.url("/red.png", IMAGES_HOST), policy(IMAGES_HOST), resolver)
    assert data == png_bytes()
    assert calls == [IMAGES_HOST]
    assert server.requests[0].host == f"{IMAGES_HOST}:{server.port}"


def test_every_resolved_address_must_be_allowed(server: LocalImageServer) -> None:
    resolver = scripted_resolver({"mixed.test": ["93.184.215.14", "127.0.0.1"]})
    error = fetch_refusal(server.url("/red.png", "mixed.test"), policy(), resolver)
    assert error.code == "url_not_allowed"
    assert "loopback" in error.message
    assert server.requests == []


def test_allowlisted_network_does_not_cover_a_neighbour(server: LocalImageServer) -> None:
    error = fetch_refusal(server.url("/red.png", "127.0.0.2"), policy("127.0.0.1/32"))
    assert error.code == "url_not_allowed"


def test_redirects_within_the_allowlist_are_followed(server: LocalImageServer) -> None:
    assert fetch(server.url("/chain/3", IMAGES_HOST), policy(IMAGES_HOST)) == png_bytes()
    paths = [seen.path for seen in server.requests]
    assert paths == ["/chain/3", "/chain/2", "/chain/1", "/chain/0"]


def test_more_than_three_redirects_fail(server: LocalImageServer) -> None:
    error = fetch_refusal(server.url("/chain/4", IMAGES_HOST), policy(IMAGES_HOST))
    assert error.code == "image_fetch_failed"
    assert "redirect" in error.message


def test_redirect_loop_fails(server: LocalImageServer) -> None:
    error = fetch_refusal(server.url("/loop", IMAGES_HOST), policy(IMAGES_HOST))
    assert error.code == "image_fetch_failed"
    assert len(server.requests) == 4


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://0xa9fea9fe/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ],
)
def test_redirect_to_a_forbidden_target_is_refused(server: LocalImageServer, target: str) -> None:
    start = server.url(f"/redirect?to={target}", IMAGES_HOST)
    assert fetch_refusal(start, policy(IMAGES_HOST)).code == "url_not_allowed"


def test_redirect_to_a_live_local_server_outside_the_allowlist_is_refused(
    server: LocalImageServer, other_server: LocalImageServer
) -> None:
    for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0x7f000001"):
        target = other_server.url("/red.png", host)
        start = server.url(f"/redirect?to={target}", IMAGES_HOST)
        error = fetch_refusal(start, policy(IMAGES_HOST))
        assert error.code == "url_not_allowed", host
    # The target was up the whole time: it was the policy, not a failed connection.
    assert other_server.requests == []
    assert fetch(other_server.url("/red.png"), policy("127.0.0.1")) == png_bytes()


def test_non_2xx_answers_fail(server: LocalImageServer) -> None:
    for path, status in (("/missing", "404"), ("/broken", "500")):
        error = fetch_refusal(server.url(path, IMAGES_HOST), policy(IMAGES_HOST))
        assert error.code == "image_fetch_failed"
        assert status in error.message


def test_slow_server_times_out(server: LocalImageServer) -> None:
    impatient = policy(IMAGES_HOST, fetch_timeout_s=0.3)
    error = fetch_refusal(server.url("/slow", IMAGES_HOST), impatient)
    assert error.code == "image_fetch_failed"
    assert "timed out" in error.message


def test_slow_body_hits_the_overall_deadline(server: LocalImageServer) -> None:
    impatient = policy(IMAGES_HOST, fetch_timeout_s=0.3)
    error = fetch_refusal(server.url("/drip", IMAGES_HOST), impatient)
    assert error.code == "image_fetch_failed"
    assert "timed out" in error.message


def test_slow_dns_counts_against_the_deadline() -> None:
    async def never_answers(host: str, port: int) -> list:
        await asyncio.sleep(3600)
        return []

    error = fetch_refusal("http://stuck.test/a.png", policy(fetch_timeout_s=0.2), never_answers)
    assert error.code == "image_fetch_failed"
    assert "timed out" in error.message


def test_declared_oversized_body_is_refused_before_reading(server: LocalImageServer) -> None:
    capped = policy(IMAGES_HOST, max_image_bytes=1 << 20)
    error = fetch_refusal(server.url("/big-declared", IMAGES_HOST), capped)
    assert error.code == "image_too_large"


def test_streamed_oversized_body_is_cut_off_at_the_cap(server: LocalImageServer) -> None:
    capped = policy(IMAGES_HOST, max_image_bytes=1 << 20)
    error = fetch_refusal(server.url("/big-streamed", IMAGES_HOST), capped)
    assert error.code == "image_too_large"
    assert error.status == 413


def test_served_svg_is_refused_whatever_its_content_type(server: LocalImageServer) -> None:
    with pytest.raises(ApiError) as caught:
        asyncio.run(load_image(server.url("/svg"), policy("127.0.0.1")))
    assert caught.value.code == "unsupported_media_type"


def test_unresolvable_name_fails_to_fetch() -> None:
    error = fetch_refusal("http://nowhere.test/a.png", policy())
    assert error.code == "image_fetch_failed"
    assert "resolve" in error.message


def test_invalid_tld_fails_offline_with_the_system_resolver() -> None:
    for url in ("http://images.invalid/a.png", "https://a.b.INVALID./x.png"):
        error = fetch_refusal(url, policy(), system_resolver)
        assert error.code == "image_fetch_failed"


def test_system_resolver_returns_addresses_the_policy_then_checks() -> None:
    addresses = asyncio.run(system_resolver("127.0.0.1", 80))
    assert addresses == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(socket.gaierror):
        asyncio.run(system_resolver("x.invalid", 80))


@pytest.mark.parametrize(
    "url", ["http://[::1/a.png", "http://127.000.000.001/", "http://\uff11\uff12\uff17.0.0.1/"]
)
def test_urls_that_do_not_parse_are_not_allowed(url: str) -> None:
    assert fetch_refusal(url, policy()).code == "url_not_allowed"


@pytest.mark.parametrize("target", ["http://127.000.000.001/", "http://[::1/x"])
def test_redirect_to_a_url_that_does_not_parse_is_a_failed_fetch(
    server: LocalImageServer, target: str
) -> None:
    # The remote broke the protocol; nothing was fetched from the target.
    start = server.url(f"/redirect?to={target}", IMAGES_HOST)
    error = fetch_refusal(start, policy(IMAGES_HOST))
    assert error.code == "image_fetch_failed"
    assert [seen.path for seen in server.requests] == [f"/redirect?to={target}"]


def test_https_keeps_the_hostname_for_sni_and_connects_to_the_checked_ip() -> None:
    recorded: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        return httpx.Response(200, content=b"ok")

    async def go(host: str, address: str) -> None:
        transport = PinnedAddressTransport(
            policy(), scripted_resolver({host: [address]}), inner=httpx.MockTransport(answer)
        )
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(f"https://{host}/cat.png")

    asyncio.run(go("images.example.com", "93.184.215.14"))
    asyncio.run(go("v6.example.com", "2606:4700::1111"))
    first, second = recorded
    assert first.url.host == "93.184.215.14"
    assert first.headers["host"] == "images.example.com"
    assert first.extensions["sni_hostname"] == "images.example.com"
    assert str(second.url) == "https://[2606:4700::1111]/cat.png"
    assert second.headers["host"] == "v6.example.com"
