"""`post_json`: one HTTP POST under a whole-request deadline (standard library only).

`urllib` and `http.client` apply a timeout to each socket operation, so a server that
sends a byte every few seconds can hold a request forever; here connecting, sending and
reading the whole reply share one deadline. The REST side of `ServingClient`.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.parse


def http_error_message(payload: bytes, status: int) -> str:
    """The server's message in an HTTP error reply: TF Serving's `{"error": ...}`, else the
    body's start, else the status's name.

    Example:

    >>> http_error_message(b'{"error": "Servable not found"}', 404)
    'Servable not found'
    >>> http_error_message(b"", 503)
    'Service Unavailable'
    """
    try:
        return str(json.loads(payload)["error"])
    except (ValueError, KeyError, TypeError):
        text = payload.decode("utf-8", errors="replace").strip()
        return text[:500] or http.client.responses.get(status, f"HTTP {status}")


class _DeadlineSocket(socket.socket):
    """A socket whose every send and receive waits only for what is left of `deadline`
    (a `time.monotonic()` value), so a server dripping bytes cannot hold it longer."""

    deadline = 0.0

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.settimeout(left)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._arm()
        return super().sendall(*args, **kwargs)


class _DeadlineConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, deadline: float):
        super().__init__(host, port, timeout=max(deadline - time.monotonic(), 0.001))
        self.deadline = deadline

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = _DeadlineSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.sock.deadline = self.deadline
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def post_json(url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
    """(HTTP status, reply body) of a JSON POST; `TimeoutError` when connecting, sending
    and reading all of the reply take longer than `timeout` seconds together."""
    parts = urllib.parse.urlsplit(url)
    connection = _DeadlineConnection(parts.hostname, parts.port, time.monotonic() + timeout)
    try:
        connection.request(
            "POST",
            parts.path,
            body=body,
            headers={"Content-Type": "application/json", "Connection": "close"},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
