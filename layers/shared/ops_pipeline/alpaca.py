"""Alpaca through alpaca-py's own clients, with an HTTP timeout and without its 3 x 3 s retry.

alpaca-py sets no HTTP timeout and retries 429/504 three times, three seconds apart, before it
raises; neither is a constructor argument. A stage has a budget of seconds, and Step Functions
already retries a failed task with backoff, so each client here makes one attempt with a timeout,
and the failure surfaces as `TransientError` for the state machine to retry.

`ALPACA_DATA_URL` / `ALPACA_TRADING_URL` point the clients elsewhere (the local Alpaca server).
alpaca-py is imported inside the functions: only the stages that talk to Alpaca pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from ops_pipeline.config import AlpacaCredentials
from ops_pipeline.errors import TransientError

if TYPE_CHECKING:
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.trading.client import TradingClient

HTTP_TIMEOUT_SECONDS = float(os.environ.get("ALPACA_HTTP_TIMEOUT", "8"))
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}

T = TypeVar("T")


class _TimeoutSession(requests.Session):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, **kwargs)


def _single_attempt(client: Any, timeout: float) -> Any:
    # alpaca-py keeps these on its RESTClient base; there is no public setting for either.
    client._session = _TimeoutSession(timeout)
    client._retry = 0
    return client


def data_client(
    creds: AlpacaCredentials, timeout: float = HTTP_TIMEOUT_SECONDS
) -> StockHistoricalDataClient:
    from alpaca.data.historical import StockHistoricalDataClient

    client = StockHistoricalDataClient(
        creds.key_id,
        creds.secret_key,
        raw_data=True,
        url_override=os.environ.get("ALPACA_DATA_URL") or None,
    )
    return _single_attempt(client, timeout)


def trading_client(
    creds: AlpacaCredentials, *, paper: bool = True, timeout: float = HTTP_TIMEOUT_SECONDS
) -> TradingClient:
    from alpaca.trading.client import TradingClient

    client = TradingClient(
        creds.key_id,
        creds.secret_key,
        paper=paper,
        raw_data=True,
        url_override=os.environ.get("ALPACA_TRADING_URL") or None,
    )
    return _single_attempt(client, timeout)


def is_transient(exc: Exception) -> bool:
    """A timeout, a dropped connection, a rate limit or a server error: worth a retry."""
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return status in TRANSIENT_STATUS


def call(what: str, fn: Callable[[], T]) -> T:
    """Run one Alpaca call; a transient failure becomes `TransientError`, naming what failed."""
    try:
        return fn()
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"Alpaca {what} failed: {type(exc).__name__}: {exc}") from exc
        raise
