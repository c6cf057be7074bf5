"""RSS ingest against a real PostgreSQL and a loopback feed server.

The feed corpus is feedparser's own test suite (github.com/kurtmckee/feedparser, `tests/`,
BSD-2-Clause), kept in tests/data/feeds/feedparser_testcorpus/: ill-formed feeds, encoding
edge cases and date baselines. Every file in it is served and ingested in one run.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pg8000.native
import pytest
from paths import TEST_DATA

from ops_pipeline.config import Feed
from ops_pipeline.db import connect, parse_database_url, query
from ops_pipeline.news import rss
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.feed_server import SAMPLE_FEEDS_DIR, FeedServer, corpus_headers

CORPUS = TEST_DATA / "feeds" / "feedparser_testcorpus"
REPO = Path(__file__).resolve().parents[2]
MINUTE_1 = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
MINUTE_2 = datetime(2019, 2, 12, 15, 5, tzinfo=UTC)
MINUTE_3 = datetime(2019, 2, 12, 15, 10, tzinfo=UTC)

HTML_PAGE = (
    b"<!doctype html><html><head><title>Sign in</title></head><body><p>Log in</p></body></html>"
)
GARBAGE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\xff\xfe not xml at all"


@dataclass
class ThrowawayDatabase:
    url: str
    conn: pg8000.native.Connection


@pytest.fixture(scope="module")
def db(database_server: str) -> Iterator[ThrowawayDatabase]:
    """The module's own migrated database: the corpus runs' rows stay across its tests."""
    with throwaway_database(database_server) as url:
        conn = connect(parse_database_url(url))
        try:
            yield ThrowawayDatabase(url, conn)
        finally:
            conn.close()


# --- the whole corpus, three runs -------------------------------------------------------------


@dataclass
class CorpusRuns:
    server: FeedServer
    feeds: list[Feed]
    planted: dict[str, Feed]  # the feeds that must fail: 404, HTML, garbage
    summaries: list[dict[str, int]]
    requests_before_run_2: int
    requests_before_run_3: int


@pytest.fixture(scope="module")
def corpus_runs(db: ThrowawayDatabase) -> Iterator[CorpusRuns]:
    with FeedServer(CORPUS) as server:
        planted = {
            "missing": Feed("planted/missing", server.url_for("planted/missing.xml")),
            "html": Feed(
                "planted/html",
                server.add(
                    "planted/login.html",
                    HTML_PAGE,
                    headers={"Content-Type": "text/html; charset=utf-8"},
                ),
            ),
            "garbage": Feed(
                "planted/garbage",
                server.add(
                    "planted/garbage.bin",
                    GARBAGE,
                    headers={"Content-Type": "application/octet-stream"},
                ),
            ),
        }
        feeds = server.feeds() + list(planted.values())
        summaries, marks = [], []
        for minute in (MINUTE_1, MINUTE_2):
            marks.append(len(server.requests))
            summaries.append(rss.ingest(db.conn, feeds, minute))
        # Third run: forget the validators, so every feed answers 200 and ON CONFLICT must hold.
        db.conn.run("UPDATE feed_state SET etag = NULL, last_modified = NULL")
        marks.append(len(server.requests))
        summaries.append(rss.ingest(db.conn, feeds, MINUTE_3))
        yield CorpusRuns(server, feeds, planted, summaries, marks[1], marks[2])


def expected_events(relative: str, feed: Feed) -> rss.ParsedFeed:
    """What the file holds when parsed straight from disk with the headers the server sends."""
    body = (CORPUS / relative).read_bytes()
    headers = corpus_headers(body) or {"Content-Type": "application/xml"}
    return rss.parse_feed(body, headers, feed)


def test_every_corpus_file_is_fetched_and_none_crashes_the_run(corpus_runs: CorpusRuns) -> None:
    first = corpus_runs.summaries[0]
    corpus_files = [p for p in CORPUS.rglob("*") if p.is_file()]
    assert len(corpus_files) > 100
    assert first["feeds"] == len(corpus_files) + 3
    assert first["fetched"] + first["not_modified"] + first["failed"] == first["feeds"]
    assert first["items_seen"] == first["inserted"] > 0


def test_each_recoverable_item_is_stored_exactly_once(
    corpus_runs: CorpusRuns, db: ThrowawayDatabase
) -> None:
    stored: dict[str, set[str]] = {}
    for row in query(db.conn, "SELECT feed_url, item_key FROM inbound_events_raw"):
        stored.setdefault(row["feed_url"], set()).add(row["item_key"])
    total = db.conn.run(
        "SELECT count(*) FROM inbound_events_raw WHERE feed_url LIKE :u",
        u=corpus_runs.server.base_url + "/%",
    )[0][0]
    expected_total = 0
    for feed in corpus_runs.feeds:
        if feed.name.startswith("planted/"):
            continue
        expected = {e.item_key for e in expected_events(feed.name, feed).events}
        assert stored.get(feed.url, set()) == expected, feed.name
        expected_total += len(expected)
    assert total == expected_total == corpus_runs.summaries[0]["inserted"]


def test_bad_feeds_are_errors_for_those_feeds_only(
    corpus_runs: CorpusRuns, db: ThrowawayDatabase
) -> None:
    states = {r["feed_url"]: r for r in query(db.conn, "SELECT * FROM feed_state")}
    assert set(states) == {f.url for f in corpus_runs.feeds}
    missing, html, garbage = (
        states[corpus_runs.planted[k].url] for k in ("missing", "html", "garbage")
    )
    assert (missing["last_status"], missing["last_error"]) == (404, "HTTP 404 Not Found")
    assert html["last_status"] == 200 and html["last_error"].startswith("not a feed")
    assert garbage["last_status"] == 200 and garbage["last_error"].startswith("not a feed")

    failed = {s["feed_name"] for s in states.values() if s["last_error"]}
    # In the corpus itself only the licence text and the empty document are not feeds at all.
    assert failed == {
        "planted/missing",
        "planted/html",
        "planted/garbage",
        "LICENSE.feedparser.txt",
        "illformed/rss_empty_document.xml",
    }
    assert corpus_runs.summaries[0]["failed"] == len(failed)
    for state in states.values():
        assert state["last_fetched_at"] == MINUTE_3
        if not state["last_error"]:
            assert state["etag"] and state["last_modified"]  # run 3 fetched them afresh
            assert state["last_status"] == 200


def test_second_run_is_conditional_and_stores_nothing_new(corpus_runs: CorpusRuns) -> None:
    first, second, _ = corpus_runs.summaries
    assert second["inserted"] == 0 and second["items_seen"] == 0
    assert second["not_modified"] == first["fetched"]
    assert second["failed"] == first["failed"]  # failures keep no validators: retried in full

    run_2 = corpus_runs.server.requests[
        corpus_runs.requests_before_run_2 : corpus_runs.requests_before_run_3
    ]
    assert len(run_2) == first["feeds"]
    conditional = [r for r in run_2 if r.status == 304]
    assert len(conditional) == first["fetched"]
    assert all(r.if_none_match and r.if_modified_since for r in conditional)
    retried = [r for r in run_2 if r.status != 304]
    assert len(retried) == first["failed"] and not any(r.if_none_match for r in retried)
    counts = corpus_runs.server.request_counts
    assert len(counts) == len(corpus_runs.feeds) and set(counts.values()) == {3}  # one GET per run


def test_third_run_without_validators_relies_on_the_unique_key(corpus_runs: CorpusRuns) -> None:
    first, _, third = corpus_runs.summaries
    assert third["fetched"] == first["fetched"] and third["not_modified"] == 0
    assert third["items_seen"] == first["items_seen"]
    assert third["inserted"] == 0


def test_rows_carry_the_fetch_minute_and_normalised_text(
    corpus_runs: CorpusRuns, db: ThrowawayDatabase
) -> None:
    def by_name(name: str) -> list[dict[str, Any]]:
        return query(
            db.conn, "SELECT * FROM inbound_events_raw WHERE feed_name = :n ORDER BY id", n=name
        )

    assert {r[0] for r in db.conn.run("SELECT DISTINCT fetched_at FROM inbound_events_raw")} == {
        MINUTE_1
    }
    # HTTP charset honoured end to end (the file declares another encoding, the header wins)
    assert by_name("encoding/http_text_xml_charset_2.xml")[0]["summary"] == "This is a £“test.”"
    assert by_name("encoding/euc-kr-item.xml")[0]["summary"] == "년"
    # ill-formed but recoverable: items kept
    assert (
        by_name("illformed/rss_item_link_corrupted_ampersands.xml")[0]["link"]
        == "http://link/get?a=1&b=2"
    )
    assert by_name("illformed/rdf_channel_empty_textinput.xml")[0]["title"] == "crashes here"
    assert by_name(
        "encoding/bozo_linenoise.xml"
    )  # undecodable bytes: the item is kept all the same
    # items with nothing to show are skipped, not stored empty
    assert by_name("wellformed/rss/item_pubDate.xml") == []


# --- timeouts, round trips, the sample feeds, the handler ----------------------------------------


def forget(db: ThrowawayDatabase, server: FeedServer) -> None:
    """Remove what an earlier server (same port, or same feed names) may have left."""
    prefix = server.base_url + "/%"
    db.conn.run(
        "DELETE FROM inbound_events_raw"
        " WHERE feed_url LIKE :p OR feed_name = ANY(CAST(:names AS text[]))",
        p=prefix,
        names=list(server.files()),
    )
    db.conn.run("DELETE FROM feed_state WHERE feed_url LIKE :p", p=prefix)


def test_slow_feed_times_out_without_holding_up_the_others(db: ThrowawayDatabase) -> None:
    with FeedServer(SAMPLE_FEEDS_DIR) as server:
        forget(db, server)
        slow = Feed(
            "slow",
            server.add("slow.xml", (SAMPLE_FEEDS_DIR / "market_wire.xml").read_bytes(), delay=3.0),
        )
        # The server holds the slow feed for 3 s: only a timeout that works makes it fail.
        summary = rss.ingest(
            db.conn, [slow, *server.feeds("market_wire.xml")], MINUTE_1, timeout=0.5
        )
    assert (summary["fetched"], summary["failed"]) == (1, 1)
    error = db.conn.run("SELECT last_error FROM feed_state WHERE feed_url = :u", u=slow.url)[0][0]
    assert "timed out" in error.lower()


class SteppingClock:
    """A clock that moves on by `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def test_a_body_that_takes_longer_than_the_timeout_is_refused() -> None:
    """The body deadline, on a clock of the test's own: each chunk read costs one second."""
    body = (SAMPLE_FEEDS_DIR / "market_wire.xml").read_bytes()
    body += b"<!-- padding -->" * (8 * rss.READ_CHUNK_BYTES // 16)  # several chunks
    chunks = -(-len(body) // rss.READ_CHUNK_BYTES)
    assert chunks >= 5
    with FeedServer(SAMPLE_FEEDS_DIR) as server, rss._new_session() as session:
        feed = Feed("trickle", server.add("trickle.xml", body))

        in_time = rss.fetch_feed(session, feed, None, timeout=3, clock=SteppingClock(0.0))
        assert in_time.status is rss.FetchStatus.FETCHED and in_time.body == body

        slow_clock = SteppingClock(1.0)
        late = rss.fetch_feed(session, feed, None, timeout=3, clock=slow_clock)
    assert late.status is rss.FetchStatus.FAILED
    assert "not received within the timeout" in (late.error or "")
    # The deadline is read once, then once per chunk: refused at the fourth chunk, not the end.
    assert slow_clock.reads == 1 + 4 < 1 + chunks


def test_feeds_are_fetched_concurrently(db: ThrowawayDatabase) -> None:
    """Each feed's reply waits until four requests are in flight at once: serial GETs never get
    there (the barrier breaks after its timeout and every feed fails)."""
    in_flight = threading.Barrier(4, timeout=20)
    body = (SAMPLE_FEEDS_DIR / "market_wire.xml").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                in_flight.wait()
            except threading.BrokenBarrierError:
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        token = uuid.uuid4().hex[:8]
        base = f"http://127.0.0.1:{server.server_address[1]}/{token}"
        feeds = [Feed(f"concurrent-{token}-{i}", f"{base}/feed-{i}.xml") for i in range(4)]
        summary = rss.ingest(db.conn, feeds, MINUTE_1, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert not in_flight.broken
    assert (summary["fetched"], summary["failed"]) == (4, 0)


class CountingConnection:
    def __init__(self, conn: pg8000.native.Connection) -> None:
        self.conn = conn
        self.calls = 0

    def run(self, sql: str, **params: Any) -> Any:
        self.calls += 1
        return self.conn.run(sql, **params)

    @property
    def columns(self) -> Any:
        return self.conn.columns


def test_database_round_trips_do_not_grow_with_feeds_or_items(db: ThrowawayDatabase) -> None:
    calls = []
    with FeedServer(SAMPLE_FEEDS_DIR) as small, FeedServer(CORPUS) as large:
        forget(db, small)
        forget(db, large)
        for feeds in (small.feeds("tech_desk.xml"), small.feeds() + large.feeds()):
            counting = CountingConnection(db.conn)
            summary = rss.ingest(counting, feeds, MINUTE_1)  # type: ignore[arg-type]
            assert summary["inserted"] > 0
            calls.append(counting.calls)
    assert calls[0] == calls[1] == 5  # read states, BEGIN, insert items, upsert states, COMMIT


def test_sample_feeds_give_the_demo_its_trading_day_headlines(db: ThrowawayDatabase) -> None:
    with FeedServer(SAMPLE_FEEDS_DIR) as server:
        forget(db, server)
        feeds = server.feeds("*.xml")
        summary = rss.ingest(db.conn, feeds, MINUTE_1)
    assert summary == {
        "feeds": 3,
        "fetched": 3,
        "not_modified": 0,
        "failed": 0,
        "items_seen": 15,
        "inserted": 15,
    }
    stored = query(
        db.conn,
        "SELECT * FROM inbound_events_raw WHERE feed_url = ANY(CAST(:u AS text[]))",
        u=[f.url for f in feeds],
    )
    assert len(stored) == 15
    assert all(
        datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
        <= r["published_at"]
        <= datetime(2019, 2, 12, 21, 0, tzinfo=UTC)
        for r in stored
    )
    assert all(
        r["title"] and r["link"] and r["summary"] and "<" not in r["summary"] for r in stored
    )
    text = " ".join(f"{r['title']} {r['summary']}" for r in stored)
    for name in ("Apple", "Amazon", "Microsoft", "Tesla", "SPY", "$AAPL", "$MSFT", "$AMZN", "$SPY"):
        assert name in text
    assert {r["source"] for r in stored} == {
        "Example Market Wire (fictional sample feed)",
        "Example Tech Desk (fictional sample feed)",
        "Example Cashtag Briefs (fictional sample feed)",
    }


@dataclass
class FakeContext:
    function_name: str = "rss_ingest"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:rss_ingest"
    aws_request_id: str = "test-request"


def test_handler_reads_feeds_from_ssm_and_ingests_the_event_minute(
    db: ThrowawayDatabase, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    from aws_lambda_powertools.utilities.parameters import base as parameters_base

    from ops_pipeline.observability import metrics

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FEEDS_PARAM": "/ops-pipeline/test/feeds",
        "DATABASE_URL": db.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(parameters_base, "DEFAULT_PROVIDERS", {})
    monkeypatch.setattr(metrics, "namespace", "OpsPipelineTest")
    event = json.loads((REPO / "events" / "rss_ingest.json").read_text())

    spec = importlib.util.spec_from_file_location(
        "rss_ingest_app", REPO / "functions/rss_ingest/app.py"
    )
    assert spec and spec.loader
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    try:
        with moto.mock_aws(), FeedServer(SAMPLE_FEEDS_DIR) as server:
            forget(db, server)
            feeds = [{"name": f.name, "url": f.url} for f in server.feeds("*.xml")]
            boto3.client("ssm").put_parameter(
                Name="/ops-pipeline/test/feeds", Type="String", Value=json.dumps(feeds)
            )
            base_url = server.base_url
            metrics.clear_metrics()  # the direct rss.ingest calls above added some, never flushed
            capsys.readouterr()
            result = app.lambda_handler(event, FakeContext())
    finally:
        app.DB.close()
    assert result["feeds"] == 3 and result["fetched"] == 3 and result["inserted"] == 15
    fetched_at = db.conn.run(
        "SELECT DISTINCT fetched_at FROM inbound_events_raw WHERE feed_url LIKE :u",
        u=base_url + "/%",
    )
    assert fetched_at == [[datetime(2019, 2, 12, 15, 0, tzinfo=UTC)]]
    emitted = capsys.readouterr().out
    assert '"FeedItemsInserted":[15.0]' in emitted and '"FeedFailures":[0.0]' in emitted
