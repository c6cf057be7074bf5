"""Alpaca through alpaca-py's own clients, with an HTTP timeout, bounded retries, fresh keys.

alpaca-py sets no HTTP timeout and retries 429/504 three times, three seconds apart, before it
raises; neither is a constructor argument. Here each request has a timeout, alpaca-py's own retry
is off, and `call` retries a transient failure itself: at most `ATTEMPTS` tries, waiting for
Alpaca's `X-RateLimit-Reset` after a 429 (bounded by `MAX_RATE_LIMIT_WAIT`) and a short backoff
otherwise. What still fails surfaces as `TransientError`, which the state machine retries (each
of its attempts makes `ATTEMPTS` tries again). At a 10 % fault rate a call fails all its tries
once in 1,000 calls; a task of a few calls fails all three of its state-machine attempts about
once in 10^7 to 10^8: a session of ~400 runs, three Alpaca tasks each, does not exhaust them.

Credentials rotate: `ClientCache` keeps one client per key pair (read through Powertools
Parameters, so a rotated secret is seen within its `max_age`), and a 401 makes the client read
the secret again at once (`force_fetch`) and send the request once more with the new keys; the
next `get()` builds a client for them.

`ALPACA_DATA_URL` / `ALPACA_TRADING_URL` point the clients elsewhere (the local Alpaca server);
`ALPACA_HTTP_TIMEOUT` sets the timeout in seconds. alpaca-py is imported inside the functions:
only the stages that talk to Alpaca pay for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from ops_pipeline import config
from ops_pipeline.config import AlpacaCredentials
from ops_pipeline.errors import TransientError
from ops_pipeline.observability import logger

if TYPE_CHECKING:
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.trading.client import TradingClient

DEFAULT_HTTP_TIMEOUT_SECONDS = 8.0
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
MAX_RATE_LIMIT_WAIT = 3.0  # seconds; Alpaca's window is a minute, a stage's budget is not
UNAUTHORIZED = 401
KEY_HEADER, SECRET_HEADER = "APCA-API-KEY-ID", "APCA-API-SECRET-KEY"

T = TypeVar("T")


def http_timeout() -> float:
    """`ALPACA_HTTP_TIMEOUT` seconds as set now (the local runtime sets it after imports)."""
    return float(os.environ.get("ALPACA_HTTP_TIMEOUT") or DEFAULT_HTTP_TIMEOUT_SECONDS)


class _Session(requests.Session):
    """A timeout on every request; on a 401, fresh keys from `refresh` and one more try."""

    def __init__(
        self, timeout: float, refresh: Callable[[], AlpacaCredentials | None] | None = None
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self.refresh = refresh
        self.client: Any = None

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        response = super().request(method, url, **kwargs)
        if response.status_code != UNAUTHORIZED or self.refresh is None:
            return response
        fresh = self.refresh()
        headers = dict(kwargs.get("headers") or {})
        sent = (headers.get(KEY_HEADER), headers.get(SECRET_HEADER))
        if fresh is None or sent == (fresh.key_id, fresh.secret_key):
            return response  # the secret has not changed: the 401 stands
        logger.info("Alpaca refused the keys; retrying once with the secret read again")
        headers[KEY_HEADER], headers[SECRET_HEADER] = fresh.key_id, fresh.secret_key
        if self.client is not None:  # this client's later requests use the new keys too
            self.client._api_key, self.client._secret_key = fresh.key_id, fresh.secret_key
        return super().request(method, url, **{**kwargs, "headers": headers})


def _single_attempt(
    client: Any,
    timeout: float | None,
    refresh: Callable[[], AlpacaCredentials | None] | None = None,
) -> Any:
    # alpaca-py keeps these on its RESTClient base; there is no public setting for either.
    session = _Session(http_timeout() if timeout is None else timeout, refresh)
    session.client = client
    client._session = session
    client._retry = 0
    return client


def data_client(
    creds: AlpacaCredentials,
    timeout: float | None = None,
    *,
    refresh: Callable[[], AlpacaCredentials | None] | None = None,
) -> StockHistoricalDataClient:
    from alpaca.data.historical import StockHistoricalDataClient

    client = StockHistoricalDataClient(
        creds.key_id,
        creds.secret_key,
        raw_data=True,
        url_override=os.environ.get("ALPACA_DATA_URL") or None,
    )
    return _single_attempt(client, timeout, refresh)


def trading_client(
    creds: AlpacaCredentials,
    *,
    paper: bool = True,
    timeout: float | None = None,
    refresh: Callable[[], AlpacaCredentials | None] | None = None,
) -> TradingClient:
    from alpaca.trading.client import TradingClient

    client = TradingClient(
        creds.key_id,
        creds.secret_key,
        paper=paper,
        raw_data=True,
        url_override=os.environ.get("ALPACA_TRADING_URL") or None,
    )
    return _single_attempt(client, timeout, refresh)


class ClientCache[C]:
    """One client per key pair (and options), built by `build(creds, **options)`.

    `get()` reads the credentials (Powertools caches them for `max_age`), so rotated keys get a
    new client; a 401 inside a request reads the secret again at once (see `_Session`)."""

    def __init__(
        self,
        build: Callable[..., C],
        credentials: Callable[..., AlpacaCredentials] | None = None,
    ) -> None:
        self._build = build
        self._credentials = credentials or config.alpaca_credentials
        self._clients: dict[tuple[AlpacaCredentials, tuple[tuple[str, Any], ...]], C] = {}

    def get(self, **options: Any) -> C:
        creds = self._credentials()
        key = (creds, tuple(sorted(options.items())))
        client = self._clients.get(key)
        if client is None:
            self._clients = {k: v for k, v in self._clients.items() if k[0] == creds}
            client = self._clients[key] = self._build(creds, refresh=self._refresh, **options)
        return client

    def _refresh(self) -> AlpacaCredentials | None:
        try:
            return self._credentials(force_fetch=True)
        except Exception as exc:  # a refused key stays refused; say why the refresh failed
            logger.warning("could not read the Alpaca secret again", extra={"error": str(exc)})
            return None


def is_transient(exc: Exception) -> bool:
    """A timeout, a dropped connection, a rate limit or a server error: worth a retry."""
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return status in TRANSIENT_STATUS


def retry_wait(exc: Exception, attempt: int, now: Callable[[], float] = time.time) -> float:
    """Seconds to wait before the next try: until Alpaca's `X-RateLimit-Reset` after a 429
    (at most `MAX_RATE_LIMIT_WAIT`), else a short backoff growing with `attempt`."""
    if getattr(exc, "status_code", None) == 429:
        response = getattr(exc, "response", None)
        reset = str(getattr(response, "headers", {}).get("X-RateLimit-Reset") or "")
        try:
            wait = float(reset) - now()
        except (TypeError, ValueError):
            wait = BACKOFF_SECONDS * attempt
        return min(max(wait, BACKOFF_SECONDS), MAX_RATE_LIMIT_WAIT)
    return BACKOFF_SECONDS * attempt


def rate_limit_wait(exc: Exception, now: Callable[[], float] = time.time) -> float:
    """Seconds until the `X-RateLimit-Reset` of a 429 (at least `BACKOFF_SECONDS`, unbounded:
    the caller holds it against its own budget)."""
    response = getattr(exc, "response", None)
    reset = str(getattr(response, "headers", {}).get("X-RateLimit-Reset") or "")
    try:
        return max(float(reset) - now(), BACKOFF_SECONDS)
    except (TypeError, ValueError):
        return BACKOFF_SECONDS


def call(what: str, fn: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """Run one Alpaca call, retrying transient failures; what still fails becomes
    `TransientError`, naming what failed. `fn` must be safe to repeat (orders carry their
    `client_order_id`, so a repeat is refused as a duplicate, never placed twice)."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise TransientError(
                    f"Alpaca {what} failed {attempts} times: {type(exc).__name__}: {exc}"
                ) from exc
            wait = retry_wait(exc, attempt)
            logger.info(
                "Alpaca call failed; retrying",
                extra={
                    "call": what,
                    "attempt": attempt,
                    "wait_s": round(wait, 2),
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
            )
            time.sleep(wait)
    raise AssertionError("unreachable")
