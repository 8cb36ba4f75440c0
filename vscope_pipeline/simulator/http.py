"""A small threaded HTTP server base shared by the simulated OVH APIv6 and OpenTSDB services."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

log = logging.getLogger(__name__)


class NotLoopbackError(ValueError):
    """A simulator host that is not, or does not resolve only to, a loopback address."""


def loopback_address(host: str) -> tuple[socket.AddressFamily, str]:
    """Return the address family and the loopback IP address to bind for `host`.

    `host` is an IP address or a name resolved through the system resolver (for example
    `localhost` from /etc/hosts). Raises NotLoopbackError, before anything is bound, for an
    empty host (which would bind every interface), an address outside 127.0.0.0/8 and ::1,
    or a name that resolves to any such address.
    """
    if not host:
        raise NotLoopbackError(
            "simulator host '' is not a loopback address (an empty host binds every network "
            "interface): use 127.0.0.1"
        )
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return _resolve_loopback(host)
    if not literal.is_loopback:
        raise NotLoopbackError(
            f"simulator host {host!r} is not a loopback address: use 127.0.0.1 or ::1, the "
            "simulator never listens on a network interface"
        )
    family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
    return family, str(literal)


def _resolve_loopback(host: str) -> tuple[socket.AddressFamily, str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise NotLoopbackError(
            f"simulator host {host!r} could not be resolved ({error.strerror}): use 127.0.0.1"
        ) from error
    addresses = [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]
    outside = sorted({text for _, text in addresses if not ipaddress.ip_address(text).is_loopback})
    if outside or not addresses:
        raise NotLoopbackError(
            f"simulator host {host!r} resolves to {', '.join(outside) or 'no address'}, which "
            "is not a loopback address: use 127.0.0.1, the simulator never listens on a "
            "network interface"
        )
    # Bind the address checked here, so that a second lookup cannot return another one.
    return addresses[0]


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server that only ever binds to a loopback address."""

    daemon_threads = True
    # Many clients connect at once during a backfill; the default backlog of 5 drops some.
    request_queue_size = 128

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        family, address = loopback_address(host)
        # TCPServer reads the family from the instance, so IPv6 ::1 works as well as 127.0.0.1.
        self.address_family = family
        super().__init__((address, port), handler)

    def get_request(self) -> tuple[socket.socket, object]:
        conn, address = super().get_request()
        # Without TCP_NODELAY every keep-alive response waits about 40 ms for the client's
        # delayed ACK (Nagle's algorithm), which makes a backfill many times slower.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else host
        if ":" in host_text:
            host_text = f"[{host_text}]"
        return f"http://{host_text}:{port}"


class ServerThread:
    """Run a server in a background thread; usable as a context manager."""

    def __init__(self, server: LoopbackHTTPServer, name: str) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> ServerThread:
        self._thread.start()
        log.info("%s listening on %s", self._thread.name, self.url)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """Base handler: HTTP/1.1 keep-alive, access lines sent to `logging` at DEBUG level."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=UTF-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
