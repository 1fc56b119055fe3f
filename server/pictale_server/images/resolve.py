"""Host name -> addresses, off the event loop. Swappable so tests never need real DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from pictale_server.images.addresses import IPAddress
from pictale_server.images.policy import normalize_hostname

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, in its order of preference.

    Raises `socket.gaierror` when the name does not resolve. Names under `.invalid` fail at
    once without a query, as RFC 6761 asks of resolver libraries.
    """
    name = normalize_hostname(host)
    if name == "invalid" or name.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return addresses
