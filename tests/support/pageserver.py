"""A local HTTP server for the ingest tests: papers pages served from 127.0.0.1, with
ETag and Last-Modified validators, never the internet."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    """What the server answers for one path."""

    body: bytes
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class PageServer:
    """Serves :class:`Page` values by path on 127.0.0.1 and records every request as
    ``(path, headers)`` (header names lower-cased). A GET whose ``If-None-Match`` equals
    the page's ETag, or whose ``If-Modified-Since`` equals its Last-Modified, gets a 304
    (RFC 9110 section 13.1). Unknown paths get a 404. :meth:`serve_in_turn` answers a
    path with a list of pages, one per request, the last one ever after; ``times`` holds
    when each request arrived (``time.monotonic()``)."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.queued: dict[str, list[Page]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: list[float] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def serve(self, path: str, page: Page) -> str:
        self.pages[path] = page
        return self.url(path)

    def serve_in_turn(self, path: str, pages: list[Page]) -> str:
        """Answer ``path`` with ``pages[0]``, then ``pages[1]``…, the last one for good."""
        self.queued[path] = list(pages[:-1])
        return self.serve(path, pages[-1])

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.path, headers))
                server.times.append(time.monotonic())
                queued = server.queued.get(self.path)
                if queued:
                    page = queued.pop(0)
                else:
                    page = server.pages.get(self.path, Page(b"not found", status=404))
                unchanged = (page.etag and headers.get("if-none-match") == page.etag) or (
                    page.last_modified and headers.get("if-modified-since") == page.last_modified
                )
                status = 304 if page.status == 200 and unchanged else page.status
                body = b"" if status == 304 else page.body
                self.send_response(status)
                if page.etag:
                    self.send_header("ETag", page.etag)
                if page.last_modified:
                    self.send_header("Last-Modified", page.last_modified)
                self.send_header("Content-Type", page.content_type)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
