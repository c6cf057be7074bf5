"""The local feed server with a replay clock serves a feed as it looked then (the bundled sample
feeds, read back through feedparser as the RSS ingest reads them)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime

import feedparser

from ops_pipeline_local.feed_server import SAMPLE_FEEDS_DIR, FeedServer, item_time, published_by

NOON = datetime(2019, 2, 12, 17, 35, tzinfo=UTC)


def _entries(url: str) -> list[dict]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return feedparser.parse(answer.read()).entries


def test_only_items_published_by_the_clock_are_served_and_the_rest_appear_as_it_moves():
    with FeedServer(SAMPLE_FEEDS_DIR, now=NOON) as server:
        url = server.url_for("tech_desk.xml")
        early = _entries(url)
        assert [e.title for e in early]
        for entry in early:
            when = entry.get("published_parsed") or entry.get("updated_parsed")
            assert datetime(*when[:6], tzinfo=UTC) <= NOON
        server.set_time(datetime(2019, 2, 12, 23, 0, tzinfo=UTC))
        later = _entries(url)
        assert len(later) > len(early)
        assert {e.title for e in early} < {e.title for e in later}
        server.set_time(None)  # no clock: the whole file
        assert len(_entries(url)) == len(later)


def test_an_unchanged_feed_is_not_modified_and_a_new_item_changes_its_etag():
    with FeedServer(SAMPLE_FEEDS_DIR, now=NOON) as server:
        url = server.url_for("market_wire.xml")
        with urllib.request.urlopen(url, timeout=5) as answer:
            etag = answer.headers["ETag"]
        request = urllib.request.Request(url, headers={"If-None-Match": etag})
        try:
            urllib.request.urlopen(request, timeout=5)
            status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 304
        server.set_time(datetime(2019, 2, 13, tzinfo=UTC))
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200 and answer.headers["ETag"] != etag


def test_an_item_counts_from_its_publication_else_its_update_and_undated_items_stay():
    body = (
        b"<rss><channel><title>t</title>"
        b"<item><title>a</title><pubDate>Tue, 12 Feb 2019 09:35:00 -0500</pubDate></item>"
        b"<item><title>b</title><dc:date>2019-02-12T15:00:00Z</dc:date></item>"
        b"<item><title>undated</title></item>"
        b"</channel></rss>"
    )
    served, newest = published_by(body, datetime(2019, 2, 12, 14, 40, tzinfo=UTC))
    assert b"<title>a</title>" in served and b"<title>b</title>" not in served
    assert b"undated" in served and newest == datetime(2019, 2, 12, 14, 35, tzinfo=UTC)
    entry = (
        b"<entry><published>2019-02-12T17:30:00Z</published>"
        b"<updated>2019-02-12T17:42:00Z</updated></entry>"
    )
    assert item_time(entry) == datetime(2019, 2, 12, 17, 30, tzinfo=UTC)
