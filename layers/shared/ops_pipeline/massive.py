"""Massive (formerly Polygon.io): the backup source of 1-minute bars, through its official client.

`massive.RESTClient` (PyPI `massive`, formerly `polygon-api-client`) asks
`GET /v2/aggs/ticker/{T}/range/1/minute/{from}/{to}` (milliseconds, both ends inclusive, bars
labelled by their start like Alpaca's) and follows `next_url` itself. Minute aggregates come one
ticker per request (sent `PARALLEL` at a time); the full-market snapshot would answer every ticker in one request, but its
`min` is the minute still forming (the snapshot "returns the current minute"), not a closed bar,
so the ingestor does not rely on it. Bars come from the consolidated (SIP) tape, extended hours
included; real-time minutes need the Stocks Advanced plan (the cheaper plans are 15 minutes
delayed: see docs/deploy.md).

The key lives in the stack's Secrets Manager secret named by `MASSIVE_SECRET_ARN` (`{"api_key": ...}`);
while it holds the template's placeholder (or the variable is unset), there is no backup and the
pipeline runs on Alpaca alone. `MASSIVE_DATA_URL` points the client elsewhere (the local
server); its requests get `ALPACA_HTTP_TIMEOUT` as their timeout and no retry of the client's
own: `call` retries like `alpaca.call`, and what still fails is `TransientError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools.utilities import parameters

from ops_pipeline import alpaca
from ops_pipeline.config import SECRET_MAX_AGE_SECONDS, is_placeholder
from ops_pipeline.errors import ConfigError, TransientError
from ops_pipeline.observability import logger

if TYPE_CHECKING:
    from massive import RESTClient

SOURCE = "massive"
KEY_ARN_ENV = "MASSIVE_SECRET_ARN"  # the variable that names the secret of the key
MASSIVE_DATA_URL = "MASSIVE_DATA_URL"
PAGE_LIMIT = 50_000  # Massive's maximum base aggregates per request
# Requests in flight at once: the client's urllib3 pool keeps 10 connections per host (`maxsize`).
PARALLEL = 10
ATTEMPTS = alpaca.ATTEMPTS
BACKOFF_SECONDS = alpaca.BACKOFF_SECONDS

T = TypeVar("T")


def api_key() -> str | None:
    """The Massive key from the stack's secret, or None when no backup is configured."""
    arn = os.environ.get(KEY_ARN_ENV, "").strip()
    if not arn:
        return None
    try:
        secret = parameters.get_secret(arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    except (
        parameters.exceptions.GetParameterError,
        parameters.exceptions.TransformParameterError,
    ) as exc:
        raise ConfigError(f"Massive secret could not be read: {exc}") from exc
    key = secret.get("api_key") if isinstance(secret, dict) else None
    return None if is_placeholder(key) else str(key)


def rest_client(key: str, timeout: float | None = None) -> RESTClient:
    from massive import RESTClient

    seconds = alpaca.http_timeout() if timeout is None else timeout
    base = os.environ.get(MASSIVE_DATA_URL) or None
    return RESTClient(
        api_key=key,
        connect_timeout=seconds,
        read_timeout=seconds,
        retries=0,
        pagination=True,
        **({"base": base.rstrip("/")} if base else {}),
    )


class ClientCache:
    """One client per key (read through Powertools, so a rotated key is seen within its max age)."""

    def __init__(self, key: Callable[[], str | None] = api_key) -> None:
        self._key = key
        self._clients: dict[str, Any] = {}

    def get(self) -> Any | None:
        key = self._key()
        if key is None:
            return None
        if key not in self._clients:
            self._clients = {key: rest_client(key)}
        return self._clients[key]


def is_transient(exc: Exception) -> bool:
    """A timeout, a dropped connection or a retryable status (urllib3 gives up at once: retries=0)."""
    import urllib3

    return isinstance(exc, urllib3.exceptions.HTTPError)


def call(what: str, fn: Callable[[], T], *, attempts: int = ATTEMPTS) -> T:
    """Run one Massive call, retrying transient failures; what still fails is `TransientError`."""
    from massive.exceptions import BadResponse

    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except BadResponse as exc:  # 401/403: the key or the plan; not worth a retry
            raise ConfigError(f"Massive refused {what}: {exc}"[:500]) from exc
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt == attempts:
                raise TransientError(
                    f"Massive {what} failed {attempts} times: {type(exc).__name__}: {exc}"[:500]
                ) from exc
            logger.info(
                "Massive call failed; retrying",
                extra={
                    "call": what,
                    "attempt": attempt,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
            )
            time.sleep(BACKOFF_SECONDS * attempt)
    raise AssertionError("unreachable")


def _bar(agg: Any) -> dict[str, Any]:
    """A Massive aggregate in Alpaca's bar shape (`t o h l c v n vw`), for `telemetry.parse_bar`."""
    t = agg.timestamp
    return {
        "t": datetime.fromtimestamp(t / 1000, UTC) if isinstance(t, int | float) else t,
        "o": agg.open,
        "h": agg.high,
        "l": agg.low,
        "c": agg.close,
        "v": int(agg.volume) if isinstance(agg.volume, int | float) else agg.volume,
        "n": agg.transactions,
        "vw": agg.vwap,
    }


def request_bars(
    client: Any, tickers: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[dict[str, Any]]]:
    """1-minute bars of each ticker from `start` to `end` (both bar starts, inclusive): one
    request per ticker (Massive's aggregates are per ticker), `PARALLEL` at a time over the
    client's connection pool, unadjusted like Alpaca's default."""

    def fetch(ticker: str) -> list[dict[str, Any]]:
        aggs = call(
            f"bars of {ticker}",
            lambda: list(
                client.list_aggs(
                    ticker, 1, "minute", start, end, adjusted=False, sort="asc", limit=PAGE_LIMIT
                )
            ),
        )
        return [_bar(a) for a in aggs]

    if len(tickers) <= 1:
        return {t: fetch(t) for t in tickers}
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(tickers))) as pool:
        return dict(zip(tickers, pool.map(fetch, tickers)))
