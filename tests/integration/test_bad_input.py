"""Bad input is refused clearly (issue 7, promise 7): each case is rejected or cleaned with a log
line that names it, and the rest of the batch goes on.

Bars go through `telemetry.closed_bars` (what the ingestor stores) and into PostgreSQL; feed items
through feedparser and `rss.parse_feed`; tickers through `config.parse_tickers`. The log records
(Powertools' logger, with their `extra` fields) are captured with caplog.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from ops_pipeline import telemetry
from ops_pipeline.config import Feed, parse_tickers
from ops_pipeline.news import rss

MINUTE = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
GOOD = {"o": 170, "h": 171, "l": 169, "c": 170.5, "v": 1000}


def good(t: str, **changes) -> dict:
    return {"t": t, **GOOD, **changes}


# (case, raw bar, outcome, what the log line says)
BAR_CASES = [
    ("NaN price", good("2019-02-12T14:40:00Z", c="NaN"), "rejected", "c=NaN is not a positive"),
    ("zero price", good("2019-02-12T14:41:00Z", o=0), "rejected", "o=0 is not a positive"),
    ("negative price", good("2019-02-12T14:42:00Z", l=-1), "rejected", "l=-1 is not a positive"),
    ("high below low", good("2019-02-12T14:43:00Z", h=168), "rejected", "do not contain"),
    ("negative volume", good("2019-02-12T14:44:00Z", v=-5), "rejected", "v=-5 is negative"),
    ("timestamp in the future", good("2019-02-12T15:30:00Z"), "rejected", "from the future"),
    ("not on a minute", good("2019-02-12T14:45:30Z"), "rejected", "is not on a minute"),
    ("not a time", good("yesterday"), "rejected", "t='yesterday'"),
    ("duplicate", good("2019-02-12T14:46:00Z", c=170.7), "cleaned", "duplicate bar"),
]


def log_lines(caplog) -> list[dict]:
    lines = [{**vars(r), "level": r.levelname, "message": r.getMessage()} for r in caplog.records]
    caplog.clear()
    return json.loads(json.dumps(lines, default=str))


def test_bad_bars_are_each_named_in_a_log_line_and_the_good_ones_stored(conn, caplog):
    batch = [good("2019-02-12T14:30:00Z"), good("2019-02-12T14:46:00Z")]
    batch += [raw for _, raw, _, _ in BAR_CASES]
    batch.append(good("2019-02-12T14:59:00Z"))
    caplog.clear()
    bars = telemetry.closed_bars({"AAPL": batch}, ["AAPL"], MINUTE)
    logs = log_lines(caplog)
    stored = {f"{b.ts:%Y-%m-%dT%H:%M:%S}Z": b for b in bars}
    for case, raw, outcome, says in BAR_CASES:
        named = [line for line in logs if says in json.dumps(line)]
        assert named, f"{case}: no log line says {says!r}"
        assert all(line["level"] == "WARNING" for line in named), case
        if outcome == "rejected":
            assert raw["t"] not in stored, case
        else:  # cleaned: one bar kept for the minute
            assert stored[raw["t"]].close == Decimal(str(raw["c"])), case
    assert [b.ts.minute for b in bars] == [30, 46, 59]  # the rest of the batch goes on
    assert bars[1].close == Decimal("170.7")  # the duplicate: the last one wins
    assert telemetry.upsert_bars(conn, bars) == (3, 0)


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Test wire</title>
<item><title>Apple beats estimates</title><link>https://example.com/a</link>
  <pubDate>Tue, 12 Feb 2019 14:50:00 GMT</pubDate></item>
<item><link>https://example.com/no-title</link><description>Only a summary</description>
  <pubDate>Tue, 12 Feb 2019 14:51:00 GMT</pubDate></item>
<item><description></description></item>
<item><title>Year one story</title><link>https://example.com/old</link>
  <pubDate>Mon, 01 Jan 0001 00:00:00 GMT</pubDate></item>
<item><title>Far future story</title><link>https://example.com/future</link>
  <pubDate>Fri, 31 Dec 9999 23:59:00 GMT</pubDate></item>
<item><title>{huge}</title><link>https://example.com/huge</link></item>
<item><title type="html">&lt;b&gt;Tesla&lt;/b&gt; recalls &lt;script&gt;alert(1)&lt;/script&gt;cars</title>
  <link>https://example.com/script</link></item>
<item><title>Microsoft wins contract</title><link>https://example.com/b</link></item>
</channel></rss>
"""


def test_bad_feed_items_are_cleaned_or_skipped_with_a_log_line_and_the_rest_kept(caplog):
    body = FEED.replace("{huge}", "x" * 1_000_000).encode()
    feed = Feed("Test wire", "https://example.com/rss")
    caplog.clear()
    parsed = rss.parse_feed(body, {"content-type": "application/rss+xml"}, feed)
    logs = json.dumps(log_lines(caplog))
    by_link = {e.link: e for e in parsed.events}
    # (case, outcome)
    assert by_link["https://example.com/a"].title == "Apple beats estimates"
    assert by_link["https://example.com/b"].title == "Microsoft wins contract"
    # no title: kept on its link and summary, with an empty title
    assert by_link["https://example.com/no-title"].title == ""
    # neither title, link nor summary: skipped and counted (logged by the ingest per feed)
    assert parsed.skipped == 1
    # absurd dates: kept without the date, named in a warning
    future = by_link["https://example.com/future"]
    assert future.published_at is None and "Far future story" in logs
    assert "absurd date" in logs
    old = by_link.get("https://example.com/old")
    assert old is None or old.published_at is None
    # a 1 MB title: shortened, named in the log
    huge = by_link["https://example.com/huge"]
    assert len(huge.title) <= rss.MAX_TITLE_CHARS and "https://example.com/huge" in logs
    # HTML and script in the title: the text only
    script = by_link["https://example.com/script"]
    assert "<" not in script.title and "alert" not in script.title
    assert script.title == "Tesla recalls cars"
    assert "https://example.com/script" in logs


def test_tickers_that_are_not_ticker_shaped_are_skipped_with_a_log_line(caplog):
    caplog.clear()
    raw = "AAPL, msft,BRK.B,  ,DROP TABLE;--,TOOLONGX,12AB,<script>,AAPL"
    assert parse_tickers(raw) == ("AAPL", "MSFT", "BRK.B")
    logs = log_lines(caplog)
    named = {line.get("ticker") for line in logs if "malformed ticker" in line["message"]}
    assert named == {"DROP TABLE;--", "TOOLONGX", "12AB", "<script>"}
