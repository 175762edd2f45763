"""A stand-in for an ESP's sending API on 127.0.0.1, for the delivery tests.

:class:`FakeEspApi` records each POST (path, headers, body) and answers as the real API
does on success — Postmark's ``POST /email`` (https://postmarkapp.com/developer/api/email-api)
and Mailgun's ``POST /v3/<domain>/messages`` (https://documentation.mailgun.com/docs/mailgun/api-reference/)
— so django-anymail's real backends can send through it.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeEspApi"]


class FakeEspApi:
    """Records every POST as ``(path, headers, body bytes)`` in :attr:`posts`. Use as a
    context manager; :meth:`url` is the API root to give anymail."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str = "/") -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> FakeEspApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.path.endswith("/messages"):  # Mailgun
                    answer = {"id": f"<{uuid.uuid4()}@mg.example.org>", "message": "Queued."}
                else:  # Postmark
                    to = json.loads(body).get("To", "")
                    answer = {
                        "To": to,
                        "SubmittedAt": "2026-11-30T08:00:00Z",
                        "MessageID": str(uuid.uuid4()),
                        "ErrorCode": 0,
                        "Message": "OK",
                    }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
