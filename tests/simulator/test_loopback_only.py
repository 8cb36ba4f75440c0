"""The simulator's HTTP servers bind loopback addresses only, and check the host before binding."""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from typing import Any

import pytest

from vscope_pipeline.simulator import http
from vscope_pipeline.simulator.http import (
    LoopbackHTTPServer,
    NotLoopbackError,
    QuietHandler,
    ServerThread,
    loopback_address,
)


class _OkHandler(QuietHandler):
    def do_GET(self) -> None:
        self.send_body(200, b"ok", content_type="text/plain")


# Requests go straight to the server, even when the environment names an HTTP proxy.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def no_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any bind fail loudly, so a rejected host is proven to be rejected before binding."""

    def fail_on_bind(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"bind({address!r}) was called")

    monkeypatch.setattr(socket.socket, "bind", fail_on_bind)


def _fake_resolver(monkeypatch: pytest.MonkeyPatch, addresses: dict[str, list[str]]) -> None:
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0))
            for ip in addresses[host]
        ]

    monkeypatch.setattr(http.socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "172.16.0.1", "203.0.113.9", "fe80::1"],
)
@pytest.mark.usefixtures("no_bind")
def test_non_loopback_address_rejected(host: str) -> None:
    with pytest.raises(NotLoopbackError) as raised:
        LoopbackHTTPServer(host, 0, _OkHandler)

    assert str(raised.value) == (
        f"simulator host {host!r} is not a loopback address: use 127.0.0.1 or ::1, the "
        "simulator never listens on a network interface"
    )


@pytest.mark.usefixtures("no_bind")
def test_empty_host_rejected() -> None:
    with pytest.raises(NotLoopbackError) as raised:
        LoopbackHTTPServer("", 0, _OkHandler)

    assert str(raised.value) == (
        "simulator host '' is not a loopback address (an empty host binds every network "
        "interface): use 127.0.0.1"
    )


@pytest.mark.usefixtures("no_bind")
def test_name_resolving_elsewhere_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, {"sim.example": ["127.0.0.1", "192.0.2.7", "2001:db8::7"]})

    with pytest.raises(NotLoopbackError) as raised:
        LoopbackHTTPServer("sim.example", 0, _OkHandler)

    assert str(raised.value) == (
        "simulator host 'sim.example' resolves to 192.0.2.7, 2001:db8::7, which is not a "
        "loopback address: use 127.0.0.1, the simulator never listens on a network interface"
    )


@pytest.mark.usefixtures("no_bind")
def test_unresolvable_name_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, {})

    with pytest.raises(NotLoopbackError) as raised:
        LoopbackHTTPServer("no-such-host.invalid", 0, _OkHandler)

    assert str(raised.value) == (
        "simulator host 'no-such-host.invalid' could not be resolved (Name or service not "
        "known): use 127.0.0.1"
    )


def test_name_binds_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_resolver(monkeypatch, {"sim.loopback": ["127.0.0.3", "::1"]})

    assert loopback_address("sim.loopback") == (socket.AF_INET, "127.0.0.3")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", (socket.AF_INET, "127.0.0.1")),
        ("127.8.9.10", (socket.AF_INET, "127.8.9.10")),
        ("::1", (socket.AF_INET6, "::1")),
        ("0:0:0:0:0:0:0:1", (socket.AF_INET6, "::1")),
    ],
)
def test_loopback_literal_accepted(host: str, expected: tuple[socket.AddressFamily, str]) -> None:
    assert loopback_address(host) == expected


def test_localhost_server_serves() -> None:
    with ServerThread(LoopbackHTTPServer("localhost", 0, _OkHandler), "loopback-test") as thread:
        bound_host = thread.server.server_address[0]
        with _DIRECT.open(f"{thread.url}/", timeout=5) as response:
            body = response.read()

    assert ipaddress.ip_address(str(bound_host)).is_loopback
    assert body == b"ok"


def test_ipv6_loopback_url_in_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python was built without IPv6 support")
    try:
        server = LoopbackHTTPServer("::1", 0, _OkHandler)
    except OSError as error:
        pytest.skip(f"no IPv6 loopback on this machine: {error}")

    with ServerThread(server, "loopback-test-v6") as thread:
        port = thread.server.server_address[1]
        with _DIRECT.open(f"{thread.url}/", timeout=5) as response:
            body = response.read()

    assert thread.url == f"http://[::1]:{port}"
    assert body == b"ok"
