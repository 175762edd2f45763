"""A POP3 mailbox on 127.0.0.1 (RFC 1939: USER, PASS, STAT, LIST, RETR, DELE, QUIT), for
the bounce reader's tests: it holds :attr:`Pop3Mailbox.messages` and removes those
deleted when the client quits, as a real server does."""

from __future__ import annotations

import socketserver
import threading

__all__ = ["Pop3Mailbox"]


class Pop3Mailbox:
    """Serves ``messages`` (bytes, CRLF line ends) to ``user``/``password``. Use as a
    context manager; :attr:`port` is where it listens."""

    def __init__(self, messages: list[bytes], user: str = "bounces", password: str = "pw") -> None:
        self.messages = list(messages)
        self.user, self.password = user, password
        self.logins = 0
        mailbox = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                deleted: set[int] = set()
                authorised = False
                self.say("+OK POP3 ready")
                for line in self.rfile:
                    command, _, argument = line.decode().strip().partition(" ")
                    command = command.upper()
                    if command == "USER":
                        self.say("+OK")
                    elif command == "PASS":
                        authorised = argument == mailbox.password
                        mailbox.logins += authorised
                        self.say("+OK logged in" if authorised else "-ERR wrong password")
                    elif command == "QUIT":
                        mailbox.messages = [
                            m for n, m in enumerate(mailbox.messages, 1) if n not in deleted
                        ]
                        self.say("+OK bye")
                        return
                    elif not authorised:
                        self.say("-ERR log in first")
                    elif command == "STAT":
                        size = sum(len(m) for m in mailbox.messages)
                        self.say(f"+OK {len(mailbox.messages)} {size}")
                    elif command == "RETR":
                        message = mailbox.messages[int(argument) - 1]
                        self.say("+OK")
                        for raw in (
                            message.split(b"\r\n")[:-1]
                            if message.endswith(b"\r\n")
                            else message.split(b"\r\n")
                        ):
                            self.wfile.write(
                                (b"." + raw if raw.startswith(b".") else raw) + b"\r\n"
                            )
                        self.say(".")
                    elif command == "DELE":
                        deleted.add(int(argument))
                        self.say("+OK deleted")
                    else:
                        self.say("-ERR unknown command")

            def say(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Pop3Mailbox:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
