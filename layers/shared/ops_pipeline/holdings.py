"""What the pipeline holds by its own fills, for the stages that decide which tickers to follow:
a held ticker stays in the book until sold, whatever the ticker list says now."""

from __future__ import annotations

from collections.abc import Sequence

from ops_pipeline.db import Connection

HELD = """
SELECT ticker FROM dispatch_executions
WHERE status = 'filled'
GROUP BY ticker, mode
HAVING sum(CASE side WHEN 'buy' THEN qty ELSE -qty END) > 0
"""


def held_tickers(conn: Connection) -> set[str]:
    """The tickers the pipeline's own fills hold (in any trading mode): they stay in the book,
    with their bars, marks and SELL signals, until sold, whatever the ticker list says now."""
    return {ticker for (ticker,) in conn.run(HELD)}


def book_tickers(conn: Connection, listed: Sequence[str]) -> tuple[tuple[str, ...], set[str]]:
    """The listed tickers and the held ones no longer listed (to be sold, never bought), and the
    latter apart."""
    unlisted = held_tickers(conn) - set(listed)
    return (*listed, *sorted(unlisted)), unlisted
