"""The local stand-ins' HTTP server: on 127.0.0.1's free port, served from a daemon thread, its
handler reaching the stand-in as ``self.server.app`` (the local Alpaca and the local Massive)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

HOST = "127.0.0.1"  # the address the server binds and base_url names


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets bursts of parallel connections


class LoopbackServer:
    """Start with ``_start_serving(handler, name)`` once the subclass's state is ready; a context
    manager, closed once however often ``close`` is called."""

    _server: _Server
    _thread: threading.Thread
    _closed: bool = True

    def _start_serving(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._closed = False
        self._server = _Server((HOST, 0), handler)
        self._server.app = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=name, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no API version), for the client's base URL override."""
        return f"http://{HOST}:{self._server.server_port}"

    def close(self) -> None:
        """Stop the server (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
