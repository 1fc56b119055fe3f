"""A throwaway HTTP server on 127.0.0.1 for the image fetcher's tests: no network needed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from image_samples import png_bytes

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'


@dataclass
class Seen:
    path: str
    host: str | None
    user_agent: str | None


@dataclass
class LocalImageServer:
    server: ThreadingHTTPServer
    thread: threading.Thread
    stop: threading.Event
    requests: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_image_server(body_cap_hint: int = 1 << 20) -> LocalImageServer:
    """Routes: /red.png, /svg, /redirect?to=URL, /loop, /chain/N, /slow, /drip,
    /big-declared, /big-streamed, /missing (404), /broken (500)."""
    stop = threading.Event()
    seen: list[Seen] = []
    png = png_bytes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            return

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append(Seen(self.path, self.headers.get("Host"), self.headers.get("User-Agent")))
            route = urlsplit(self.path)
            if route.path == "/red.png":
                self._send(200, png, "image/png")
            elif route.path == "/svg":
                self._send(200, SVG, "image/png")  # lies about its type
            elif route.path == "/redirect":
                self._redirect(parse_qs(route.query)["to"][0])
            elif route.path == "/loop":
                self._redirect("/loop")
            elif route.path.startswith("/chain/"):
                hops = int(route.path.rsplit("/", 1)[1])
                if hops == 0:
                    self._send(200, png, "image/png")
                else:
                    self._redirect(f"/chain/{hops - 1}")
            elif route.path == "/slow":
                stop.wait(10)
                self._send(200, png, "image/png")
            elif route.path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                for byte in png:
                    if stop.wait(0.05):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            elif route.path == "/big-declared":
                self.send_response(200)
                self.send_header("Content-Length", str(body_cap_hint * 4))
                self.end_headers()
                self.wfile.write(png)
            elif route.path == "/big-streamed":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\x00" * 65536
                try:
                    for _ in range(4 * body_cap_hint // len(chunk) + 1):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    return
            elif route.path == "/missing":
                self._send(404, b"not here", "text/plain")
            else:
                self._send(500, b"broken", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return LocalImageServer(server, thread, stop, seen)
