"""A local stand-in for Alpaca's market-data and paper-trading HTTP APIs, as strict as Alpaca.

Real alpaca-py clients talk to it unchanged::

    with LocalAlpaca(bars, "key", "secret") as alpaca:
        alpaca.set_time(datetime(2019, 2, 12, 15, 0, tzinfo=UTC))
        data = StockHistoricalDataClient("key", "secret", url_override=alpaca.base_url)
        trading = TradingClient("key", "secret", paper=True, url_override=alpaca.base_url)

Everything is relative to a simulated clock: a bar is visible once its minute has closed
(start + 1 min <= now). Refusals are answered as Alpaca answers them: the HTTP status and a
``{"code", "message"}`` body (422 40010001 for validation, 403 40310000 for buying power and
quantity, and for a potential wash trade: an order while one of the other side for its symbol is
open, where Alpaca documents the 403 and its users report the code and the message "potential
wash trade detected. use complex orders"; 404 40410000 for an unknown order, 429 past 200
requests per key per simulated minute, with ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` on
every reply; the reset is in wall-clock epoch seconds, as Alpaca's, as far away as the simulated
minute's end).

Market orders (``fill_market_orders``):

- ``"next_open"`` (the default, as Alpaca): the order is ``accepted``; it becomes ``new`` once
  the session is open (an order sent outside the session waits for the next open) and fills at
  the OPEN of the first bar that starts at or after that moment (an order sent within a bar's
  minute: at that bar's CLOSE, once it has closed; never at a price or a time before it was
  sent), in parts when it is larger than ``participation`` x the bar's volume
  (``partially_filled``, then ``filled`` over the next bars).
  A DAY order still open at the close is ``expired``.
- ``"on_submit"``: fills at once at the close of the latest closed bar when the session is open,
  as a paper account fills a market order in a liquid session within a second (for tests about
  replies rather than prices); outside the session it is queued as above.
- ``"next_minute"``: as ``next_open`` but at the CLOSE of each bar, once that bar has closed.

An open order can be canceled (``DELETE /v2/orders/{id}``, 204): one still queued for the open
at once; one working in the session is ``pending_cancel`` (still open: it holds its shares and
buying power) until the next minute, when it is ``canceled``, and it may still fill meanwhile on
the bar that had begun when the cancel was asked, as the venue may fill it before the cancel
lands. A `FaultPlan` makes the server fail as the real one does now and then (see faults.py): its
``late`` runs the clock that many seconds ahead of ``set_time`` (a late run), its ``unfilled``
leaves orders open, unfilled, until they expire. ``holdings``: shares the account holds from the start, bought by someone else (a manual
position, another deployment's). As a paper account by default, the account may sell short: a
sell when flat opens a short position (a sell beyond a long position is refused); with
``no_shorting`` (``PATCH /v2/account/configurations``, Alpaca's long-only mode) every sell beyond
the long position is refused.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hmac
import json
import math
import threading
import time as wall_time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ops_pipeline.event_time import ONE_MINUTE
from ops_pipeline_local.bars import NEW_YORK, Bar
from ops_pipeline_local.calendar import nyse_calendar
from ops_pipeline_local.faults import Fault, FaultInjector, FaultPlan
from ops_pipeline_local.loopback import LoopbackServer

MAX_DATA_LIMIT = 10_000
DEFAULT_DATA_LIMIT = 1_000
STARTING_CASH = Decimal("100000")
_PRICE_QUANTUM = Decimal("0.000000001")
_NAMESPACE = uuid.UUID("6f1d4c1e-8f57-4e55-9a7e-3f4f0d6c2a10")
_EXCHANGES = {"SPY": "ARCA"}
FILL_MODES = ("on_submit", "next_minute", "next_open")
OPEN_STATUSES = frozenset({"new", "accepted", "partially_filled", "pending_new", "pending_cancel"})
# Alpaca: "cannot be replaced when the status is accepted, pending_new, pending_cancel or
# pending_replace" (Replace Order by ID).
NOT_REPLACEABLE = frozenset({"accepted", "pending_new", "pending_cancel", "pending_replace"})
TIMES_IN_FORCE = frozenset({"day", "gtc"})
# A market order takes at most this fraction of a bar's volume; the rest fills on later bars.
DEFAULT_PARTICIPATION = Decimal("0.1")
RATE_LIMIT_PER_MINUTE = 200  # per key, for data and for trading, as Alpaca's free plan
VALIDATION = 40010001  # Alpaca's generic validation code (422)
FORBIDDEN = 40310000  # buying power, quantity (403)

Query = dict[str, str]
Json = dict[str, Any] | list[Any]


@dataclass(frozen=True)
class _Encoded:
    """A reply body already encoded, exactly as ``json.dumps`` encodes the same object (the bars
    endpoint assembles it from each bar's cached text: 10,000 bars a page)."""

    text: str


class _ApiError(Exception):
    """An error answered as Alpaca does: HTTP status plus ``{"code", "message"}`` (and extras)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {**self.extra, "code": self.code, "message": self.message}


@dataclass
class _Reply:
    status: int
    payload: Json | _Encoded | None
    headers: dict[str, str]
    fault: Fault | None = None  # STALLED: answer too late; REPLY_LOST: drop the connection


def _unprocessable(message: str, code: int = 42210000) -> _ApiError:
    return _ApiError(422, code, message)


def _not_found(message: str) -> _ApiError:
    return _ApiError(404, 40410000, message)


# ---------------------------------------------------------------- formatting / parsing


def _iso_z(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _parse_rfc3339(name: str, text: str) -> datetime:
    text = text.strip().replace(" ", "+")  # an unencoded '+' arrives as a space
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _unprocessable(f"invalid {name}: {text!r} is not RFC-3339") from None
    if dt.tzinfo is None:
        raise _unprocessable(f"invalid {name}: {text!r} has no time zone offset")
    return dt.astimezone(UTC)


def _parse_int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _unprocessable(f"invalid {name}: {text!r}") from None
    if not low <= value <= high:
        raise _unprocessable(f"invalid {name}: must be between {low} and {high}")
    return value


def _parse_qty(raw: Any) -> Decimal:
    try:
        qty = Decimal(str(raw))
    except InvalidOperation:
        raise _unprocessable(f"invalid qty: {raw!r}", VALIDATION) from None
    if not qty.is_finite() or qty <= 0:
        raise _unprocessable("qty must be > 0", VALIDATION)
    if qty != qty.to_integral_value():
        # Fractional orders exist at Alpaca, but only for fractionable assets; none here.
        raise _unprocessable(f"fractional orders are not supported for qty {raw!r}", VALIDATION)
    return qty


@functools.lru_cache(maxsize=8192)
def _bar_start_z(ts: datetime) -> str:
    """`_iso_z` of a bar start: thousands of symbols share each minute."""
    return _iso_z(ts)


def _bar_json(bar: Bar) -> dict[str, Any]:
    # n (trade count) and vw (VWAP) are not in our data; alpaca-py requires the keys, accepts null.
    return {
        "t": _bar_start_z(bar.ts),
        "o": float(bar.open),
        "h": float(bar.high),
        "l": float(bar.low),
        "c": float(bar.close),
        "v": bar.volume,
        "n": None,
        "vw": None,
    }


def _encode_token(bar: Bar) -> str:
    raw = f"{bar.symbol}|{bar.ts.isoformat()}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str) -> tuple[str, datetime]:
    try:
        symbol, ts = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        return symbol, datetime.fromisoformat(ts)
    except (ValueError, UnicodeDecodeError):
        raise _unprocessable("invalid page_token") from None


# ---------------------------------------------------------------- trading state


@dataclass
class _Position:
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    time_in_force: str
    extended_hours: bool
    submitted_at: datetime
    filled_avg_price: Decimal | None
    status: str
    updated_at: datetime | None = None
    filled_qty: Decimal = Decimal(0)
    fill_from: datetime | None = None  # the session moment from which it may fill
    expires_at: datetime | None = None  # the close of that session, for a DAY order
    last_fill_bar: datetime | None = None  # the start of the last bar it filled on
    unfillable: bool = False  # a fault plan's `unfilled`: it waits, then expires
    replaced_by: str | None = None  # the order that replaced it (PATCH /v2/orders/{id})
    replaces: str | None = None
    cancel_asked: datetime | None = None  # when a cancel was asked of it while it worked

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    def add_fill(self, qty: Decimal, price: Decimal, at: datetime) -> None:
        done = self.filled_qty + qty
        paid = (self.filled_avg_price or Decimal(0)) * self.filled_qty + price * qty
        self.filled_avg_price = (paid / done).quantize(_PRICE_QUANTUM)
        self.filled_qty = done
        if done == self.qty:
            self.status = "filled"
        elif self.status != "pending_cancel":
            self.status = "partially_filled"
        self.updated_at = at

    def to_json(self) -> dict[str, Any]:
        stamp = _iso_z(self.submitted_at)
        updated = _iso_z(self.updated_at) if self.updated_at else stamp
        filled = self.status == "filled"
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": stamp,
            "updated_at": updated,
            "submitted_at": stamp,
            "filled_at": updated if filled else None,
            "expired_at": updated if self.status == "expired" else None,
            "canceled_at": updated if self.status == "canceled" else None,
            "failed_at": None,
            "replaced_at": updated if self.status == "replaced" else None,
            "replaced_by": self.replaced_by,
            "replaces": self.replaces,
            "asset_id": str(_asset_id(self.symbol)),
            "symbol": self.symbol,
            "asset_class": "us_equity",
            "notional": None,
            "qty": _num(self.qty),
            "filled_qty": _num(self.filled_qty),
            "filled_avg_price": _num(self.filled_avg_price)
            if self.filled_qty and self.filled_avg_price is not None
            else None,
            "order_class": "simple",
            "order_type": "market",
            "type": "market",
            "side": self.side,
            "time_in_force": self.time_in_force,
            "limit_price": None,
            "stop_price": None,
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
        }


def _asset_id(symbol: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, symbol)


# ---------------------------------------------------------------- the server


class LocalAlpaca(LoopbackServer):
    """Local Alpaca data + paper-trading API on ``http://127.0.0.1:<free port>``.

    ``bars``: the market data (1-minute bars, extended hours included when the data has them:
    every bar is served as it is); the calendar and clock are the NYSE's (exchange_calendars XNYS:
    holidays, 13:00 early closes, unscheduled closures). ``now``: initial simulated time (default: wall clock).
    ``page_size``: server-side cap on bars per data page (Alpaca's is 10,000); lower it to
    force paging. ``fill_market_orders``: see the module docstring. ``participation``: the
    largest fraction of a bar's volume one order takes. ``rate_limit``: requests per key per
    simulated minute, counted apart for data and trading. ``faults``: a `FaultPlan` to inject.
    Requests without the right ``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY`` headers get 401
    (`set_keys` rotates them). ``requests`` records every request as ``(method, path, query)``.
    """

    def __init__(
        self,
        bars: Iterable[Bar],
        key_id: str,
        secret_key: str,
        *,
        now: datetime | None = None,
        cash: Decimal = STARTING_CASH,
        page_size: int = MAX_DATA_LIMIT,
        fill_market_orders: str = "next_open",
        participation: Decimal = DEFAULT_PARTICIPATION,
        rate_limit: int = RATE_LIMIT_PER_MINUTE,
        faults: FaultPlan | None = None,
        holdings: dict[str, Decimal] | None = None,
        no_shorting: bool = False,
    ) -> None:
        if fill_market_orders not in FILL_MODES:
            raise ValueError(f"fill_market_orders must be one of {FILL_MODES}")
        if not Decimal(0) < participation <= Decimal(1):
            raise ValueError("participation must be in (0, 1]")
        self._fill_mode = fill_market_orders
        self._no_shorting = no_shorting
        self._participation = Decimal(participation)
        self._rate_limit = rate_limit
        self._usage: dict[tuple[str, str, datetime], int] = {}
        self.faults: FaultInjector | None = faults.injector() if faults else None
        self._key_id = key_id
        self._secret_key = secret_key
        self._page_size = page_size
        self._lock = threading.RLock()
        self._bars: dict[str, list[Bar]] = {}
        for bar in sorted(set(bars), key=lambda b: (b.symbol, b.ts)):
            self._bars.setdefault(bar.symbol, []).append(bar)
        self._starts = {s: [b.ts for b in bs] for s, bs in self._bars.items()}
        self._bar_texts: dict[int, str] = {}  # id of a bar in self._bars -> its JSON text
        self._symbol_texts = {s: json.dumps(s) for s in self._bars}  # as JSON object keys
        self._calendar = nyse_calendar()
        self._cash = Decimal(cash)
        self._initial_equity = Decimal(cash)
        self._positions: dict[str, _Position] = {}
        self._orders: list[_Order] = []
        self._orders_by_id: dict[str, _Order] = {}
        self._orders_by_client_id: dict[str, _Order] = {}
        self._late = timedelta(seconds=faults.late) if faults else timedelta(0)
        for symbol, qty in sorted((holdings or {}).items()):
            if symbol not in self._bars or Decimal(qty) <= 0:
                raise ValueError(f"holdings: no bars for {symbol} or qty {qty} not positive")
            price = self._bars[symbol][0].open
            self._positions[symbol] = _Position(symbol, Decimal(qty), price)
        self._now = datetime.now(UTC)
        if now is not None:
            self.set_time(now)
        self._failures: list[int] = []
        self.requests: list[tuple[str, str, Query]] = []
        self._start_serving(_Handler, "local-alpaca")

    # -- public API

    @property
    def now(self) -> datetime:
        """The simulated time (tz-aware UTC)."""
        with self._lock:
            return self._now

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order the server holds, oldest first, as the API shows it."""
        with self._lock:
            self._settle()
            return [o.to_json() for o in self._orders]

    @property
    def positions(self) -> dict[str, Decimal]:
        """The account's holdings by symbol, as the clock has settled them."""
        with self._lock:
            self._settle()
            return {symbol: p.qty for symbol, p in sorted(self._positions.items())}

    def set_time(self, dt: datetime) -> None:
        """Set the simulated clock (plus the fault plan's ``late``); ``dt`` must be tz-aware."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("set_time needs a tz-aware datetime")
        with self._lock:
            self._now = dt.astimezone(UTC) + self._late
            self._settle()

    def advance(self, delta: timedelta) -> datetime:
        """Move the simulated clock forward by ``delta``; returns the new time."""
        with self._lock:
            self._now += delta
            self._settle()
            return self._now

    def set_keys(self, key_id: str, secret_key: str) -> None:
        """Rotate the accepted key pair: the old one gets 401 from now on."""
        with self._lock:
            self._key_id, self._secret_key = key_id, secret_key

    def fail_next(self, n: int, status: int = 500) -> None:
        """Make the next ``n`` requests fail with HTTP ``status``.

        alpaca-py retries 429 and 504 itself (3 times, 3 s apart) before raising.
        """
        with self._lock:
            self._failures.extend([status] * n)

    # -- request handling (called by the handler thread)

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> _Reply:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        is_data = parts.path.startswith("/v2/stocks/")
        with self._lock:
            self.requests.append((method, parts.path, query))
            limits: dict[str, str] = {}
            try:
                if self._failures:
                    status = self._failures.pop(0)
                    headers = {}
                    if status == 429:  # as Alpaca: when the window resets, in real time
                        headers = {
                            "X-RateLimit-Limit": str(self._rate_limit),
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": str(int(wall_time.time()) + 1),
                        }
                    raise _ApiError(status, status * 100000, "injected failure", headers=headers)
                self._authorize(headers)
                limits = self._count_request(str(headers.get("APCA-API-KEY-ID")), is_data)
                fault = self._data_fault(parts.path) if is_data else None
                if fault is Fault.STALLED:
                    return _Reply(504, {"code": 50400000, "message": "timeout"}, limits, fault)
                lose_reply = None
                if method == "POST" and parts.path == "/v2/orders" and self.faults:
                    lose_reply = self.faults.for_order(parts.path)
                self._settle()
                payload = self._route(method, parts.path, query, body)
                if lose_reply is not None and self.faults:
                    self.faults.record(parts.path, lose_reply)  # the order is in; its reply is not
                status = 204 if payload is None else 200
                return _Reply(status, payload, limits, lose_reply)
            except _ApiError as err:
                return _Reply(err.status, err.body(), {**limits, **err.headers})

    def _count_request(self, key: str, is_data: bool) -> dict[str, str]:
        """Count this request against the key's per-minute budget; 429 once it is spent."""
        window = self._now.replace(second=0, microsecond=0)
        slot = (key, "data" if is_data else "trading", window)
        used = self._usage.get(slot, 0) + 1
        if len(self._usage) > 10_000:
            self._usage = {k: v for k, v in self._usage.items() if k[2] == window}
        self._usage[slot] = used
        # As Alpaca, the reset in wall-clock epoch seconds (clients wait until then): as far
        # away as the simulated minute's end, whose requests are counted together.
        left = (window + ONE_MINUTE - self._now).total_seconds()
        reset = math.ceil(wall_time.time() + left)
        headers = {
            "X-RateLimit-Limit": str(self._rate_limit),
            "X-RateLimit-Remaining": str(max(0, self._rate_limit - used)),
            "X-RateLimit-Reset": str(reset),
        }
        if used > self._rate_limit:
            raise _ApiError(429, 42910000, "rate limit exceeded", headers=headers)
        return headers

    def _data_fault(self, path: str) -> Fault | None:
        if self.faults and self.faults.plan.data_outage_at(self._now):
            self.faults.record(path, Fault.OUTAGE)
            raise _ApiError(500, 50010000, "internal server error")
        if self.faults and self.faults.plan.data_frozen_at(self._now):
            self.faults.record(path, Fault.STALE)  # answered, without the bars after the freeze
        fault = self.faults.for_data(path) if self.faults else None
        if fault is Fault.RATE_LIMITED:
            assert self.faults is not None
            reset = int(wall_time.time()) + self.faults.plan.reset_seconds
            headers = {
                "X-RateLimit-Limit": str(self._rate_limit),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
            }
            raise _ApiError(429, 42910000, "rate limit exceeded", headers=headers)
        if fault is Fault.SERVER_ERROR:
            raise _ApiError(500, 50010000, "internal server error")
        return fault

    def _authorize(self, headers: Any) -> None:
        key = headers.get("APCA-API-KEY-ID") or ""
        secret = headers.get("APCA-API-SECRET-KEY") or ""
        ok_key = hmac.compare_digest(key.encode(), self._key_id.encode())
        ok_secret = hmac.compare_digest(secret.encode(), self._secret_key.encode())
        if not (ok_key and ok_secret):
            raise _ApiError(401, 40110000, "request is not authorized")

    def _route(self, method: str, path: str, query: Query, body: bytes) -> Json | _Encoded | None:
        segments = path.strip("/").split("/")
        if len(segments) < 2 or segments[0] != "v2":
            raise _not_found("endpoint not found")
        handler = self._find_handler(method, segments[1:])
        if handler is None:
            raise _not_found("endpoint not found")
        return handler(query, body)

    def _find_handler(
        self, method: str, seg: list[str]
    ) -> Callable[[Query, bytes], Json | _Encoded | None] | None:
        if method == "GET":
            if seg == ["stocks", "bars"]:
                return self._get_bars
            if len(seg) == 3 and seg[0] == "stocks" and seg[2] == "bars":
                return lambda q, b: self._get_symbol_bars(seg[1], q)
            simple: dict[tuple[str, ...], Callable[[Query, bytes], Json | _Encoded | None]] = {
                ("clock",): self._get_clock,
                ("calendar",): self._get_calendar,
                ("account",): self._get_account,
                ("account", "configurations"): self._get_configurations,
                ("positions",): self._get_positions,
                ("orders",): self._get_orders,
                ("orders:by_client_order_id",): self._get_order_by_client_id,
            }
            if tuple(seg) in simple:
                return simple[tuple(seg)]
            if len(seg) == 2 and seg[0] == "orders":
                return lambda q, b: self._get_order(seg[1])
            if len(seg) == 2 and seg[0] == "positions":
                return lambda q, b: self._get_position(seg[1])
        if method == "POST" and seg == ["orders"]:
            return self._post_order
        if method == "PATCH" and seg == ["account", "configurations"]:
            return self._patch_configurations
        if method == "PATCH" and len(seg) == 2 and seg[0] == "orders":
            return lambda q, b: self._replace_order(seg[1], b)
        if method == "DELETE" and len(seg) == 2 and seg[0] == "orders":
            return lambda q, b: self._cancel_order(seg[1])
        return None

    # -- market data

    def _last_visible(self) -> datetime:
        """The start of the newest bar a data request may see: the last closed one (a stale feed
        sees none after its freeze)."""
        frozen = self.faults.plan.data_frozen_at(self._now) if self.faults else None
        return min(self._now, frozen or self._now) - ONE_MINUTE

    def _visible_bars(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        starts = self._starts.get(symbol, [])
        lo = bisect.bisect_left(starts, start)
        hi = bisect.bisect_right(starts, end)
        return self._bars.get(symbol, [])[lo:hi]

    def _bars_query(self, symbols: list[str], query: Query) -> tuple[list[Bar], str | None]:
        timeframe = query.get("timeframe", "")
        if timeframe not in ("1Min", "1T"):
            raise _unprocessable(f"invalid timeframe {timeframe!r}: only 1Min bars are served")
        day_start = datetime.combine(self._now.astimezone(NEW_YORK).date(), time(), NEW_YORK)
        start = _parse_rfc3339("start", query["start"]) if query.get("start") else day_start
        end = _parse_rfc3339("end", query["end"]) if query.get("end") else self._now
        end = min(end, self._last_visible())
        raw_limit = query.get("limit") or str(DEFAULT_DATA_LIMIT)
        limit = _parse_int("limit", raw_limit, 1, MAX_DATA_LIMIT)
        sort = query.get("sort") or "asc"
        if sort not in ("asc", "desc"):
            raise _unprocessable(f"invalid sort {sort!r}")
        descending = sort == "desc"
        matches: list[Bar] = []
        for symbol in sorted(set(symbols)):
            chunk = self._visible_bars(symbol, start, end)
            matches.extend(reversed(chunk) if descending else chunk)
        token = query.get("page_token") or None
        return self._page(matches, token, min(limit, self._page_size), descending)

    def _page(
        self, matches: list[Bar], token: str | None, size: int, descending: bool
    ) -> tuple[list[Bar], str | None]:
        def key(symbol: str, ts: datetime) -> tuple[str, float]:
            stamp = ts.timestamp()
            return symbol, -stamp if descending else stamp

        first = 0
        if token is not None:
            cursor = key(*_decode_token(token))
            first = bisect.bisect_left(matches, cursor, key=lambda b: key(b.symbol, b.ts))
        page = matches[first : first + size]
        rest = matches[first + size : first + size + 1]
        return page, (_encode_token(rest[0]) if rest else None)

    def _bar_text(self, bar: Bar) -> str:
        """`_bar_json` of a stored bar as JSON text, encoded once (a bar never changes; a minute
        asks again for the last few)."""
        text = self._bar_texts.get(id(bar))
        if text is None:
            text = self._bar_texts[id(bar)] = json.dumps(_bar_json(bar))
        return text

    def _get_bars(self, query: Query, body: bytes) -> _Encoded:
        symbols = [s.strip() for s in query.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise _unprocessable("missing symbols")
        page, token = self._bars_query(symbols, query)
        grouped: dict[str, list[str]] = {}
        for bar in page:
            grouped.setdefault(bar.symbol, []).append(self._bar_text(bar))
        # json.dumps({"bars": {symbol: [bar, ...]}, "next_page_token": token}), assembled
        names = self._symbol_texts
        bars = ", ".join(f"{names[s]}: [{', '.join(texts)}]" for s, texts in grouped.items())
        return _Encoded(f'{{"bars": {{{bars}}}, "next_page_token": {json.dumps(token)}}}')

    def _get_symbol_bars(self, symbol: str, query: Query) -> Json:
        page, token = self._bars_query([symbol], query)
        return {"bars": [_bar_json(b) for b in page], "symbol": symbol, "next_page_token": token}

    def _last_price(self, symbol: str) -> Decimal | None:
        starts = self._starts.get(symbol, [])
        i = bisect.bisect_right(starts, self._now - ONE_MINUTE)
        return self._bars[symbol][i - 1].close if i else None

    # -- calendar and clock

    def _is_session(self, day: date) -> bool:
        """Does the NYSE trade on this New York date (exchange_calendars XNYS)?"""
        return self._calendar.session(day) is not None

    def _session_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The day's regular open and close, New York time (13:00 closes included)."""
        session = self._calendar.session(day)
        if session is None:
            raise ValueError(f"{day} is not a trading day")
        return session.opens, session.closes

    def _get_clock(self, query: Query, body: bytes) -> Json:
        now_ny = self._now.astimezone(NEW_YORK)
        today = now_ny.date()
        is_open = False
        if self._is_session(today):
            open_, close = self._session_bounds(today)
            is_open = open_ <= now_ny < close
        upcoming = self._calendar.between(today, today + timedelta(days=15))
        next_close = next(s.closes for s in upcoming if s.closes > now_ny)
        next_open = next(s.opens for s in upcoming if s.opens > now_ny)
        return {
            "timestamp": now_ny.isoformat(),
            "is_open": is_open,
            "next_open": next_open.isoformat(),
            "next_close": next_close.isoformat(),
        }

    def _get_calendar(self, query: Query, body: bytes) -> Json:
        try:
            start = date.fromisoformat(query["start"][:10]) if query.get("start") else date.min
            end = date.fromisoformat(query["end"][:10]) if query.get("end") else date.max
        except ValueError:
            raise _unprocessable("invalid start or end date") from None
        return [session.calendar_entry() for session in self._calendar.between(start, end)]

    # -- account and positions

    def _market_value(self, position: _Position) -> tuple[Decimal, Decimal]:
        price = self._last_price(position.symbol) or position.avg_entry_price
        return price, price * position.qty

    def _get_configurations(self, query: Query, body: bytes) -> Json:
        return {
            "dtbp_check": "entry",
            "trade_confirm_email": "all",
            "suspend_trade": False,
            "no_shorting": self._no_shorting,
            "fractional_trading": True,
            "max_margin_multiplier": "4",
            "pdt_check": "entry",
            "ptp_no_exception_entry": False,
        }

    def _patch_configurations(self, query: Query, body: bytes) -> Json:
        data = _json_object(body)
        if "no_shorting" in data:
            if not isinstance(data["no_shorting"], bool):
                raise _unprocessable("no_shorting must be a boolean", VALIDATION)
            self._no_shorting = data["no_shorting"]
        return self._get_configurations(query, b"")

    def _get_account(self, query: Query, body: bytes) -> Json:
        values = [self._market_value(p)[1] for p in self._positions.values()]
        long_value = sum((v for v in values if v > 0), Decimal(0))
        short_value = sum((v for v in values if v < 0), Decimal(0))
        equity = self._cash + long_value + short_value
        zero = "0"
        return {
            "id": str(uuid.uuid5(_NAMESPACE, "account")),
            "account_number": "PA0LOCAL0001",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": _num(self._cash),
            "buying_power": _num(self._buying_power()),
            "regt_buying_power": _num(self._buying_power()),
            "daytrading_buying_power": zero,
            "non_marginable_buying_power": _num(self._cash),
            "accrued_fees": zero,
            "pending_transfer_in": zero,
            "pending_transfer_out": zero,
            "portfolio_value": _num(equity),
            "equity": _num(equity),
            "last_equity": _num(self._initial_equity),
            "long_market_value": _num(long_value),
            "short_market_value": _num(short_value),
            "initial_margin": zero,
            "maintenance_margin": zero,
            "last_maintenance_margin": zero,
            "sma": zero,
            "multiplier": "1",
            "daytrade_count": 0,
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "trade_suspended_by_user": False,
            "shorting_enabled": not self._no_shorting,
            "created_at": "2019-01-01T00:00:00Z",
        }

    def _position_json(self, position: _Position) -> dict[str, Any]:
        price, value = self._market_value(position)
        cost = position.avg_entry_price * position.qty
        pl = value - cost
        return {
            "asset_id": str(_asset_id(position.symbol)),
            "symbol": position.symbol,
            "exchange": _EXCHANGES.get(position.symbol, "NASDAQ"),
            "asset_class": "us_equity",
            "asset_marginable": True,
            "avg_entry_price": _num(position.avg_entry_price),
            "qty": _num(position.qty),
            # As Alpaca: what a sell may take, less the shares held for open sell orders.
            "qty_available": _num(
                max(position.qty - self._open_remaining(position.symbol, "sell"), Decimal(0))
            ),
            "side": "long" if position.qty > 0 else "short",
            "market_value": _num(value),
            "cost_basis": _num(cost),
            "unrealized_pl": _num(pl),
            "unrealized_plpc": _num(pl / cost) if cost else "0",
            "current_price": _num(price),
        }

    def _get_positions(self, query: Query, body: bytes) -> Json:
        return [self._position_json(p) for _, p in sorted(self._positions.items())]

    def _get_position(self, symbol: str) -> Json:
        position = self._positions.get(symbol)
        if position is None:
            raise _not_found("position does not exist")
        return self._position_json(position)

    # -- orders

    def _get_orders(self, query: Query, body: bytes) -> Json:
        status = query.get("status") or "open"
        if status not in ("open", "closed", "all"):
            raise _unprocessable(f"invalid status {status!r}", VALIDATION)
        orders = [o for o in self._orders if status == "all" or o.is_open == (status == "open")]
        if query.get("symbols"):
            wanted = set(query["symbols"].split(","))
            orders = [o for o in orders if o.symbol in wanted]
        if query.get("side"):
            orders = [o for o in orders if o.side == query["side"]]
        if query.get("after"):
            after = _parse_rfc3339("after", query["after"])
            orders = [o for o in orders if o.submitted_at > after]
        if query.get("until"):
            until = _parse_rfc3339("until", query["until"])
            orders = [o for o in orders if o.submitted_at < until]
        if (query.get("direction") or "desc") == "desc":
            orders.reverse()
        limit = _parse_int("limit", query.get("limit") or "50", 1, 500)
        return [o.to_json() for o in orders[:limit]]

    def _get_order(self, order_id: str) -> Json:
        order = self._orders_by_id.get(order_id)
        if order is None:
            raise _not_found("order not found")
        return order.to_json()

    def _get_order_by_client_id(self, query: Query, body: bytes) -> Json:
        order = self._orders_by_client_id.get(query.get("client_order_id", ""))
        if order is None:
            raise _not_found("order not found")
        return order.to_json()

    def _post_order(self, query: Query, body: bytes) -> Json:
        data = _json_object(body)
        client_id = str(data.get("client_order_id") or uuid.uuid4())
        if len(client_id) > 128:
            raise _unprocessable("client_order_id must be no more than 128 characters", VALIDATION)
        if client_id in self._orders_by_client_id:
            raise _unprocessable("client_order_id must be unique", VALIDATION)
        symbol, side, qty, time_in_force = self._validate_order(data)
        self._refuse_wash_trade(symbol, side)
        order = _Order(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            qty=qty,
            time_in_force=time_in_force,
            extended_hours=False,
            submitted_at=self._now,
            filled_avg_price=None,
            status="accepted",
        )
        order.fill_from, close = self._trading_window(self._now)
        order.expires_at = close if time_in_force == "day" else None
        self._register(order)
        if self.faults is not None and self.faults.leave_unfilled("/v2/orders"):
            order.unfillable = True
        if (
            self._fill_mode == "on_submit"
            and order.fill_from == self._minute(self._now)
            and not order.unfillable
        ):
            price = self._last_price(symbol)
            assert price is not None  # _validate_order checked it
            self._fill(order, order.qty, price, self._now)
        reply = order.to_json()
        if self._fill_mode == "next_open":
            self._settle()  # a later request sees the fill the open of this minute's bar made
        return reply

    def _replace_order(self, order_id: str, body: bytes) -> Json:
        """As Alpaca: an open order is `replaced` by a new one (a new id, `replaces` it; the old
        one's `replaced_by` names it) with the quantity asked for; not while it is still queued
        (`accepted`) or a cancel is pending (`NOT_REPLACEABLE`), and here only while nothing of
        it has filled."""
        order = self._orders_by_id.get(order_id)
        if order is None:
            raise _not_found("order not found")
        if not order.is_open or order.filled_qty or order.status in NOT_REPLACEABLE:
            raise _unprocessable(f'order is not replaceable in "{order.status}" state')
        data = _json_object(body)
        client_id = str(data.get("client_order_id") or uuid.uuid4())
        if client_id in self._orders_by_client_id:
            raise _unprocessable("client_order_id must be unique", VALIDATION)
        qty = _parse_qty(data["qty"]) if data.get("qty") is not None else order.qty
        new = _Order(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            time_in_force=str(data.get("time_in_force") or order.time_in_force),
            extended_hours=False,
            submitted_at=self._now,
            filled_avg_price=None,
            status="accepted",
            replaces=order.id,
        )
        new.fill_from, close = self._trading_window(self._now)
        new.expires_at = close if new.time_in_force == "day" else None
        order.status, order.updated_at, order.replaced_by = "replaced", self._now, new.id
        self._register(new)
        return new.to_json()

    def _cancel_order(self, order_id: str) -> None:
        order = self._orders_by_id.get(order_id)
        if order is None:
            raise _not_found("order not found")
        if not order.is_open or order.status == "pending_cancel":
            raise _unprocessable(f'order is already in "{order.status}" state')
        if order.status == "accepted":  # still queued for the open: it never reached the market
            order.status, order.updated_at = "canceled", self._now
        else:  # working in the session: the venue confirms the cancel at the next minute
            order.status, order.updated_at, order.cancel_asked = (
                "pending_cancel",
                self._now,
                self._now,
            )

    # -- order lifecycle

    @staticmethod
    def _minute(dt: datetime) -> datetime:
        return dt.replace(second=0, microsecond=0)

    def _trading_window(self, at: datetime) -> tuple[datetime, datetime]:
        """From when an order sent at `at` may fill (its minute, or the next open), and the close
        of that session."""
        local = at.astimezone(NEW_YORK)
        for offset in range(0, 15):
            day = local.date() + timedelta(days=offset)
            if not self._is_session(day):
                continue
            open_, close = self._session_bounds(day)
            if at < close:
                return max(self._minute(at), open_.astimezone(UTC)), close.astimezone(UTC)
        raise _unprocessable("no trading session in the next two weeks")

    def _fill_bars(self, order: _Order) -> list[Bar]:
        """The bars the order may fill on by now: from its window, after its last fill."""
        assert order.fill_from is not None
        lag = ONE_MINUTE if self._fill_mode == "next_minute" else timedelta(0)
        start = order.fill_from
        if order.last_fill_bar is not None:
            start = max(start, order.last_fill_bar + ONE_MINUTE)
        end = self._now - lag  # a bar counts once its price is known
        if order.expires_at is not None:
            end = min(end, order.expires_at - timedelta(microseconds=1))
        if order.cancel_asked is not None:  # only the bar that had begun may still fill it
            end = min(end, order.cancel_asked)
        starts = self._starts[order.symbol]
        lo = bisect.bisect_left(starts, start)
        hi = bisect.bisect_right(starts, end)
        return self._bars[order.symbol][lo:hi]

    def _settle(self) -> None:
        """Move the open orders along the clock: accepted -> new at the open, (partial) fills on
        each bar, expired at the close."""
        for order in self._orders:
            if not order.is_open:
                continue
            assert order.fill_from is not None
            if order.status == "accepted" and self._now >= order.fill_from:
                order.status = "new"
            for bar in [] if order.unfillable else self._fill_bars(order):
                size = (Decimal(bar.volume) * self._participation).to_integral_value(ROUND_FLOOR)
                qty = min(order.remaining, max(size, Decimal(1)))
                # Never a price from before the order was sent: one sent within a bar's minute
                # fills at that bar's close, once it has closed (the first price after it).
                at_close = self._fill_mode == "next_minute" or bar.ts < order.submitted_at
                price = bar.close if at_close else bar.open
                at = bar.ts + ONE_MINUTE if at_close else bar.ts
                if at > self._now:
                    break
                self._fill(order, qty, price, at)
                order.last_fill_bar = bar.ts
                if not order.is_open:
                    break
            if order.is_open and order.expires_at is not None and self._now >= order.expires_at:
                order.status, order.updated_at = "expired", order.expires_at
            if order.is_open and order.cancel_asked is not None:
                confirmed = self._minute(order.cancel_asked) + ONE_MINUTE
                if self._now >= confirmed:
                    order.status, order.updated_at = "canceled", confirmed

    def _validate_order(self, data: dict[str, Any]) -> tuple[str, str, Decimal, str]:
        symbol = str(data.get("symbol") or "")
        if symbol not in self._bars:
            raise _unprocessable(f"asset not found: {symbol}", VALIDATION)
        if (data.get("type") or "market") != "market":
            raise _unprocessable("the local server supports market orders only", VALIDATION)
        side = data.get("side")
        if side not in ("buy", "sell"):
            raise _unprocessable(f"invalid side: {side}", VALIDATION)
        time_in_force = str(data.get("time_in_force") or "")
        if time_in_force not in TIMES_IN_FORCE:
            raise _unprocessable(f"invalid time_in_force: {time_in_force}", VALIDATION)
        if data.get("extended_hours"):
            raise _unprocessable("extended hours order must be DAY limit orders", VALIDATION)
        if data.get("qty") is None:
            raise _unprocessable("qty is required (no notional orders locally)", VALIDATION)
        qty = _parse_qty(data["qty"])
        price = self._last_price(symbol)
        if price is None:
            raise _unprocessable(f"no price for {symbol} at {_iso_z(self._now)}", VALIDATION)
        held = self._positions[symbol].qty if symbol in self._positions else Decimal(0)
        if side == "sell" and (held > 0 or self._no_shorting):
            # A sell of a long position takes at most what is not held for open sells; a
            # long-only account (no_shorting) refuses any sell beyond it, as Alpaca does.
            pending = self._open_remaining(symbol, "sell")
            available = max(held, Decimal(0)) - pending
            if qty > available:
                raise _ApiError(
                    403,
                    FORBIDDEN,
                    f"insufficient qty available for order (requested: {_num(qty)},"
                    f" available: {_num(available)})",
                    available=_num(available),
                    existing_qty=_num(held),
                    held_for_orders=_num(pending),
                    symbol=symbol,
                )
        elif side == "sell":
            # Flat (or short) on an account that may short, as a paper account may by default:
            # the sell opens (or adds to) a short position, against buying power.
            self._check_buying_power(qty * price)
        if side == "buy":
            self._check_buying_power(qty * price)
        return symbol, side, qty, time_in_force

    def _refuse_wash_trade(self, symbol: str, side: str) -> None:
        """Alpaca's wash-trade protection ("Preventing Wash Trades", User Protection): a new
        market order is refused while a simple order of the other side for its symbol is open
        in the account, whoever sent it (the operator, another deployment). This server has
        simple market orders only (Alpaca exempts bracket, OCO and trailing-stop legs). Every
        open status counts here, `accepted` and `pending_cancel` included: Alpaca's page shows
        a queued order counting and does not list the statuses."""
        if self._open_remaining(symbol, "sell" if side == "buy" else "buy"):
            raise _ApiError(403, FORBIDDEN, "potential wash trade detected. use complex orders")

    def _check_buying_power(self, cost_basis: Decimal) -> None:
        buying_power = self._buying_power()
        if cost_basis > buying_power:
            raise _ApiError(
                403,
                FORBIDDEN,
                "insufficient buying power",
                buying_power=_num(buying_power),
                cost_basis=_num(cost_basis),
            )

    def _open_remaining(self, symbol: str, side: str) -> Decimal:
        return sum(
            (
                o.remaining
                for o in self._orders
                if o.is_open and o.symbol == symbol and o.side == side
            ),
            Decimal(0),
        )

    def _buying_power(self) -> Decimal:
        """Cash less what the open buy orders will cost at the last price."""
        held = Decimal(0)
        for order in self._orders:
            if order.is_open and order.side == "buy":
                held += order.remaining * (self._last_price(order.symbol) or Decimal(0))
        return self._cash - held

    def _register(self, order: _Order) -> None:
        self._orders.append(order)
        self._orders_by_id[order.id] = order
        self._orders_by_client_id[order.client_order_id] = order

    def _fill(self, order: _Order, qty: Decimal, price: Decimal, at: datetime) -> None:
        order.add_fill(qty, price, at)
        value = qty * price
        position = self._positions.get(order.symbol)
        signed = qty if order.side == "buy" else -qty
        self._cash -= signed * price
        if position is None:
            self._positions[order.symbol] = _Position(order.symbol, signed, price)
            return
        total = position.qty + signed
        if total == 0:
            del self._positions[order.symbol]
        elif (position.qty > 0) != (total > 0):
            position.qty, position.avg_entry_price = total, price  # turned from short to long
        elif abs(total) > abs(position.qty):  # added to the position: a new average
            average = (position.avg_entry_price * abs(position.qty) + value) / abs(total)
            position.avg_entry_price = average.quantize(_PRICE_QUANTUM)
            position.qty = total
        else:
            position.qty = total


def _json_object(body: bytes) -> dict[str, Any]:
    """A request's JSON body, which must be an object, as Alpaca answers when it is not."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise _ApiError(400, 40010000, "request body format is invalid") from None
    if not isinstance(data, dict):
        raise _ApiError(400, 40010000, "request body format is invalid")
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server_version = "LocalAlpaca/1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        app: LocalAlpaca = self.server.app  # type: ignore[attr-defined]
        reply = app.handle(self.command, self.path, self.headers, body)
        if reply.fault is Fault.REPLY_LOST:
            # The order is recorded; the client sees the connection close without an answer.
            self.close_connection = True
            return
        if reply.fault is Fault.STALLED:
            assert app.faults is not None
            wall_time.sleep(app.faults.plan.stall_seconds)  # outside the lock: others go on
            self.close_connection = True
        payload = reply.payload
        if payload is None:
            data = b""
        elif isinstance(payload, _Encoded):
            data = payload.text.encode()
        else:
            data = json.dumps(payload).encode()
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a stalled reply)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
