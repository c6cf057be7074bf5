"""A local stand-in for Massive's (formerly Polygon.io) aggregates API: the backup market data.

The official client talks to it unchanged::

    with LocalMassive(bars, "key") as massive:
        massive.set_time(datetime(2019, 2, 12, 15, 0, tzinfo=UTC))
        client = massive_client.RESTClient(api_key="key", base=massive.base_url)
        list(client.list_aggs("AAPL", 1, "minute", start, end))

`GET /v2/aggs/ticker/{T}/range/1/minute/{from}/{to}` answers as Massive does: `from`/`to` in Unix
milliseconds (or `YYYY-MM-DD`, a New York day), both ends inclusive, bars labelled by their start
(`t`, ms); `{"ticker", "queryCount", "resultsCount", "adjusted", "results": [{"o", "h", "l", "c",
"v", "t", "n"}], "status": "OK", "request_id", "count"}`, without `results` when there is none,
and a `next_url` to the rest beyond `limit` (default 5,000, at most 50,000). The key comes as
`Authorization: Bearer KEY` (what the client sends) or `apiKey=KEY`; a missing or wrong key is a
401 `{"status": "ERROR", "error": ...}`. Everything is relative to a simulated clock: a bar is
served once its minute has closed, and `delay` holds bars back as the delayed plans do (Stocks
Starter and Developer: 15 minutes). Only 1-minute aggregates are served.
"""

from __future__ import annotations

import bisect
import hmac
import json
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from ops_pipeline.event_time import ONE_MINUTE
from ops_pipeline_local.bars import NEW_YORK, Bar
from ops_pipeline_local.loopback import LoopbackServer

DEFAULT_LIMIT = 5_000
MAX_LIMIT = 50_000


class _Error(Exception):
    def __init__(self, status: int, message: str, kind: str = "ERROR") -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


def _millis(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _bound(name: str, text: str, end_of_day: bool) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise _Error(400, f"Could not parse the '{name}' parameter: {text!r}") from None
    at = time(23, 59) if end_of_day else time()
    return datetime.combine(day, at, NEW_YORK).astimezone(UTC)


class LocalMassive(LoopbackServer):
    """Massive's aggregates API on ``http://127.0.0.1:<free port>``, over these bars.

    ``bars``: the backup feed's 1-minute bars (another feed's volumes: a SIP feed carries the
    consolidated volume, many times IEX's). ``requests`` records ``(path, query)`` of each one.
    """

    def __init__(
        self,
        bars: Iterable[Bar],
        api_key: str,
        *,
        now: datetime | None = None,
        delay: timedelta = timedelta(0),
        page_size: int = MAX_LIMIT,
    ) -> None:
        self._api_key = api_key
        self._delay = delay
        self._page_size = page_size
        self._lock = threading.RLock()
        self._bars: dict[str, list[Bar]] = {}
        for bar in sorted(set(bars), key=lambda b: (b.symbol, b.ts)):
            self._bars.setdefault(bar.symbol, []).append(bar)
        self._starts = {s: [b.ts for b in bs] for s, bs in self._bars.items()}
        self._now = (now or datetime.now(UTC)).astimezone(UTC)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._start_serving(_Handler, "local-massive")

    def set_time(self, dt: datetime) -> None:
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("set_time needs a tz-aware datetime")
        with self._lock:
            self._now = dt.astimezone(UTC)

    # -- request handling

    def handle(self, target: str, headers: Any) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request_id = uuid.uuid4().hex
        with self._lock:
            self.requests.append((parts.path, query))
            try:
                self._authorize(headers, query)
                return 200, {**self._aggs(parts.path, query), "request_id": request_id}
            except _Error as err:
                return err.status, {
                    "status": err.kind,
                    "request_id": request_id,
                    "error": err.message,
                }

    def _authorize(self, headers: Any, query: dict[str, str]) -> None:
        auth = str(headers.get("Authorization") or "")
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else query.get("apiKey", "")
        if not key:
            raise _Error(401, "API Key was not provided")
        if not hmac.compare_digest(key.encode(), self._api_key.encode()):
            raise _Error(401, "Unknown API Key")

    def _aggs(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        seg = path.strip("/").split("/")
        if len(seg) != 9 or seg[:3] != ["v2", "aggs", "ticker"] or seg[4] != "range":
            raise _Error(404, "Not found", "NOT_FOUND")
        ticker, multiplier, timespan, raw_from, raw_to = seg[3], seg[5], seg[6], seg[7], seg[8]
        if multiplier != "1" or timespan != "minute":
            raise _Error(400, "only 1-minute aggregates are served here")
        start, end = _bound("from", raw_from, False), _bound("to", raw_to, True)
        try:
            limit = int(query.get("limit") or DEFAULT_LIMIT)
        except ValueError:
            raise _Error(400, "Could not parse the 'limit' parameter") from None
        limit = max(1, min(limit, MAX_LIMIT, self._page_size))
        descending = (query.get("sort") or "asc") == "desc"
        visible_to = min(end, self._now - self._delay - ONE_MINUTE)  # closed (and not delayed)
        starts = self._starts.get(ticker, [])
        chunk = self._bars.get(ticker, [])[
            bisect.bisect_left(starts, start) : bisect.bisect_right(starts, visible_to)
        ]
        if descending:
            chunk = chunk[::-1]
        page, rest = chunk[:limit], chunk[limit:]
        answer: dict[str, Any] = {
            "ticker": ticker,
            "queryCount": len(page),
            "resultsCount": len(page),
            "adjusted": (query.get("adjusted") or "true") == "true",
            "status": "OK",
            "count": len(page),
        }
        if page:
            answer["results"] = [
                {
                    "v": float(b.volume),
                    "o": float(b.open),
                    "c": float(b.close),
                    "h": float(b.high),
                    "l": float(b.low),
                    "t": _millis(b.ts),
                    "n": None,
                }
                for b in page
            ]
        if rest:
            nxt_from, nxt_to = (
                (_millis(rest[0].ts), raw_to) if not descending else (raw_from, _millis(rest[0].ts))
            )
            params = {k: v for k, v in query.items() if k != "apiKey"}
            answer["next_url"] = (
                f"{self.base_url}/v2/aggs/ticker/{ticker}/range/1/minute/{nxt_from}/{nxt_to}"
                f"?{urlencode(params)}"
            )
        return answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True
    server_version = "LocalMassive/1"

    def do_GET(self) -> None:
        app: LocalMassive = self.server.app  # type: ignore[attr-defined]
        status, payload = app.handle(self.path, self.headers)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass
