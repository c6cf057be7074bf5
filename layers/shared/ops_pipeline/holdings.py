"""What the pipeline holds by its own fills, for the stages that decide which tickers to follow:
a held ticker stays in the book until sold, whatever the ticker list says now."""

from __future__ import annotations

from collections.abc import Sequence

from ops_pipeline.config import TradingMode
from ops_pipeline.db import Connection

# Filled rows, and what an order still open has filled so far (`submitted`, qty so far).
HELD = """
SELECT ticker FROM dispatch_executions
WHERE status IN ('filled', 'submitted') AND mode = :mode
GROUP BY ticker
HAVING sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) > 0
"""


def held_tickers(conn: Connection, mode: TradingMode) -> set[str]:
    """The tickers the pipeline's own fills hold in the deployment's trading mode (a
    simulation's leftovers never keep a ticker in the paper book): they stay in the book, with
    their bars, marks and SELL signals, until sold, whatever the ticker list says now."""
    return {ticker for (ticker,) in conn.run(HELD, mode=mode.value)}


def book_tickers(
    conn: Connection, listed: Sequence[str], mode: TradingMode
) -> tuple[tuple[str, ...], set[str]]:
    """The listed tickers and the held ones no longer listed (to be sold, never bought), and the
    latter apart."""
    unlisted = held_tickers(conn, mode) - set(listed)
    return (*listed, *sorted(unlisted)), unlisted
