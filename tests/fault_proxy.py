"""An HTTP proxy that injects faults where the real world puts them: between a client and the
local Alpaca server (tests import it as `fault_proxy`; pytest puts tests/ on the path)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class FaultProxy:
    """HTTP proxy in front of the local Alpaca: per request, forward it, lose it before it
    reaches the server (`drop_request`), lose the server's reply (`drop_reply`) or change the
    reply's JSON (`rewrite`, with a function); an optional hook runs when a matching request
    arrives."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rules: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                proxy.serve(self)

            do_GET = do_POST = do_DELETE = do_PATCH = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def fault(
        self,
        method: str,
        path: str,
        action: str,
        times: int = 1,
        hook: Callable[[], None] | None = None,
        rewrite: Callable[[Any], Any] | None = None,
    ) -> None:
        with self.lock:
            self.rules.append(
                {
                    "method": method,
                    "path": path,
                    "action": action,
                    "left": times,
                    "hook": hook,
                    "rewrite": rewrite,
                }
            )

    def _rule(self, method: str, path: str) -> dict[str, Any]:
        with self.lock:
            for rule in self.rules:
                if rule["left"] and rule["method"] == method and rule["path"] == path:
                    rule["left"] -= 1
                    return rule
        return {"action": "forward", "hook": None, "rewrite": None}

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        rule = self._rule(handler.command, urlsplit(handler.path).path)
        action, hook = rule["action"], rule["hook"]
        if hook is not None:
            hook()
        if action == "drop_request":
            handler.close_connection = True  # the client sees the connection close, no reply
            return
        upstream = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {
            k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")
        }
        upstream.request(handler.command, handler.path, body or None, headers)
        reply = upstream.getresponse()
        data = reply.read()
        upstream.close()
        if action == "drop_reply":
            handler.close_connection = True
            return
        if action == "rewrite":
            data = json.dumps(rule["rewrite"](json.loads(data))).encode()
        handler.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "date"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
