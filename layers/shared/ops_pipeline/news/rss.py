"""RSS/Atom ingest: fetch each feed with a conditional GET, normalise its items, store each once.

Pure core: `item_key`, `normalise_entry`, `parse_feed`. I/O: `fetch_feed` (one HTTP request) and
`ingest` (all feeds of one pipeline minute, with a constant number of database round trips:
one read of `feed_state`, one multi-row insert into `inbound_events_raw`, one multi-row upsert of
`feed_state`, in one transaction).
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import feedparser
import requests
from aws_lambda_powertools.metrics import MetricUnit

from ops_pipeline.config import Feed
from ops_pipeline.db import Connection
from ops_pipeline.observability import logger, metrics

MAX_WORKERS = 8
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_FEED_BYTES = 5 * 1024 * 1024
MAX_TITLE_CHARS = 500
MAX_SUMMARY_CHARS = 2000
MAX_LINK_CHARS = 2000
MAX_KEY_CHARS = 500  # longer guids/links are hashed: a btree index entry must stay small
MAX_ERROR_CHARS = 500
READ_CHUNK_BYTES = 16 * 1024
USER_AGENT = "ops-pipeline-rss/1.0"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    ]
)
_DATE_FIELDS = ("published_parsed", "updated_parsed", "created_parsed")
# A publication time outside these years is a broken feed, not news: kept as unknown.
PLAUSIBLE_YEARS = range(1990, 2100)


@dataclass(frozen=True)
class FeedState:
    """What the last fetch of a feed left behind for the next conditional GET."""

    feed_url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class RawEvent:
    """One normalised feed item, as stored in `inbound_events_raw` (minus the fetch minute)."""

    feed_name: str
    feed_url: str
    item_key: str
    source: str | None
    title: str
    link: str | None
    summary: str | None
    published_at: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    """The items recovered from one feed document.

    `problem` describes an ill-formed or mis-encoded document (feedparser's bozo) whose items were
    kept anyway; `error` says the document is not a feed at all (then there are no events).
    """

    feed: Feed
    events: tuple[RawEvent, ...] = ()
    entry_count: int = 0
    skipped: int = 0
    problem: str | None = None
    error: str | None = None


class FetchStatus(StrEnum):
    FETCHED = "fetched"
    NOT_MODIFIED = "not_modified"
    FAILED = "failed"


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one HTTP request for a feed."""

    feed: Feed
    status: FetchStatus
    http_status: int | None = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class _FeedOutcome:
    feed: Feed
    status: FetchStatus
    http_status: int | None
    etag: str | None
    last_modified: str | None
    error: str | None
    events: tuple[RawEvent, ...] = ()


class _BodyRejectedError(Exception):
    """The body took too long or was too large."""


# ---------------------------------------------------------------------------------------------
# Pure core
# ---------------------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _clean(text: str | None) -> str:
    # Whitespace collapsed; no NUL and no lone surrogate (PostgreSQL text refuses both).
    if not text:
        return ""
    text = text.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    return " ".join(text.split())


def html_to_text(markup: str) -> str:
    """The text of an HTML fragment, entities decoded, whitespace collapsed."""
    extractor = _TextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
    except Exception:
        return _clean(markup)
    return _clean("".join(extractor.parts))


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _as_text(value: Any, content_type: Any, limit: int) -> str:
    if not isinstance(value, str):
        return ""
    is_html = str(content_type or "").lower() in _HTML_TYPES
    return _shorten(html_to_text(value) if is_html else _clean(value), limit)


def _text_field(entry: Mapping[str, Any], name: str, limit: int) -> str:
    detail = entry.get(f"{name}_detail")
    content_type = detail.get("type") if isinstance(detail, Mapping) else None
    return _as_text(entry.get(name), content_type, limit)


def _summary(entry: Mapping[str, Any]) -> str:
    # Always read as HTML: feeds often escape their markup into "plain text" descriptions, and
    # feedparser copies Atom content into `summary` without saying what type it is.
    candidates = [entry.get("summary")]
    candidates += [c.get("value") for c in entry.get("content") or () if isinstance(c, Mapping)]
    for value in candidates:
        text = _as_text(value, "text/html", MAX_SUMMARY_CHARS)
        if text:
            return text
    return ""


def _link(entry: Mapping[str, Any]) -> str:
    link = _clean(entry.get("link") if isinstance(entry.get("link"), str) else "")
    if urlsplit(link).scheme.lower() not in ("http", "https") or len(link) > MAX_LINK_CHARS:
        return ""
    return link


def published_at(entry: Mapping[str, Any]) -> datetime | None:
    """The item's time in UTC: published, else updated, else created; None when absent or bad.

    feedparser has already parsed every date form it knows into a UTC `struct_time`.
    """
    for name in _DATE_FIELDS:
        parsed = dict.get(entry, name) if isinstance(entry, dict) else entry.get(name)
        if parsed:
            try:
                return datetime(*parsed[:6]).replace(tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def item_key(
    guid: str | None,
    link: str | None,
    title: str | None,
    published: datetime | None,
    summary: str | None = None,
) -> str:
    """A stable key for an item within its feed: the guid, else the link, else a hash of title and
    time (the summary stands in for a missing title). Keys too long for an index are hashed."""
    for candidate in (guid, link):
        candidate = (candidate or "").strip()
        if candidate:
            return candidate if len(candidate) <= MAX_KEY_CHARS else _digest(candidate)
    when = published.astimezone(UTC).isoformat() if published else ""
    return _digest(f"{title or summary or ''}\x1f{when}")


def normalise_entry(
    entry: Mapping[str, Any], feed: Feed, source: str | None = None
) -> RawEvent | None:
    """One feedparser entry as a `RawEvent`; None when it has neither title nor link nor summary.

    `source` is the publisher's name (the channel title); the entry's own `<source>` wins, the
    feed's configured name is the fallback.
    """
    title = _text_field(entry, "title", MAX_TITLE_CHARS)
    link = _link(entry)
    summary = _summary(entry)
    if not (title or link or summary):
        return None
    raw_title = entry.get("title")
    if isinstance(raw_title, str) and title != _clean(raw_title):
        logger.info(
            "feed item title cleaned (markup removed or shortened)",
            extra={"feed": feed.name, "link": link, "title": title, "raw_chars": len(raw_title)},
        )
    when = published_at(entry)
    if when is not None and when.year not in PLAUSIBLE_YEARS:
        logger.warning(
            "feed item has an absurd date; kept without it",
            extra={"feed": feed.name, "link": link, "title": title, "date": when.isoformat()},
        )
        when = None
    guid = entry.get("id") if isinstance(entry.get("id"), str) else None
    entry_source = entry.get("source")
    source_title = entry_source.get("title") if isinstance(entry_source, Mapping) else None
    return RawEvent(
        feed_name=feed.name,
        feed_url=feed.url,
        item_key=item_key(_clean(guid), link, title, when, summary),
        source=_shorten(_clean(source_title or source or feed.name), MAX_TITLE_CHARS) or None,
        title=title,
        link=link or None,
        summary=summary or None,
        published_at=when,
    )


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown problem"
    return _shorten(_clean(f"{type(exc).__name__}: {exc}"), MAX_ERROR_CHARS)


def parse_feed(body: bytes, headers: Mapping[str, str], feed: Feed) -> ParsedFeed:
    """Parse one feed document with its HTTP response headers (their charset is honoured).

    Ill-formed or mis-encoded documents keep every item feedparser recovered (`problem` says
    what was wrong); a document with neither a feed version nor an item is `error`.
    """
    response_headers = {name.lower(): value for name, value in headers.items()}
    response_headers.setdefault("content-location", feed.url)
    try:
        # A BytesIO, never the bytes themselves: feedparser would try bytes as a local file name.
        parsed = feedparser.parse(io.BytesIO(body), response_headers=response_headers)
    except Exception as exc:
        return ParsedFeed(feed, error=f"parser failed: {_describe(exc)}")
    entries = list(parsed.get("entries") or [])
    problem = _describe(parsed.get("bozo_exception")) if parsed.get("bozo") else None
    if not parsed.get("version") and not entries:
        return ParsedFeed(
            feed, problem=problem, error=f"not a feed ({problem or 'no feed element'})"
        )
    channel = parsed.get("feed") or {}
    channel_title = channel.get("title") if isinstance(channel.get("title"), str) else None
    events: dict[str, RawEvent] = {}
    skipped = 0
    for entry in entries:
        event = normalise_entry(entry, feed, channel_title)
        if event is None:
            skipped += 1
        else:
            events.setdefault(event.item_key, event)
    return ParsedFeed(feed, tuple(events.values()), len(entries), skipped, problem)


# ---------------------------------------------------------------------------------------------
# I/O
# ---------------------------------------------------------------------------------------------


def _conditional_headers(state: FeedState | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if state and state.etag:
        headers["If-None-Match"] = state.etag
    if state and state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def _read_body(response: requests.Response, deadline: float, clock: Callable[[], float]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_FEED_BYTES:
            raise _BodyRejectedError(f"larger than {MAX_FEED_BYTES} bytes")
        if clock() > deadline:
            raise _BodyRejectedError("body not received within the timeout")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_feed(
    session: requests.Session,
    feed: Feed,
    state: FeedState | None,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> FetchResult:
    """GET one feed, conditionally on its stored ETag / Last-Modified.

    304 is NOT_MODIFIED; a network error, timeout or HTTP error is FAILED (and logged), with the
    HTTP status when there was one. The whole body must arrive within `timeout` by `clock`.
    """
    deadline = clock() + timeout
    try:
        with session.get(
            feed.url, headers=_conditional_headers(state), timeout=timeout, stream=True
        ) as response:
            etag = response.headers.get("ETag") or (state.etag if state else None)
            modified = response.headers.get("Last-Modified") or (
                state.last_modified if state else None
            )
            if response.status_code == 304:
                return FetchResult(
                    feed, FetchStatus.NOT_MODIFIED, 304, etag=etag, last_modified=modified
                )
            if response.status_code >= 400:
                return _failed(
                    feed,
                    f"HTTP {response.status_code} {response.reason or ''}".strip(),
                    response.status_code,
                )
            body = _read_body(response, deadline, clock)
            return FetchResult(
                feed,
                FetchStatus.FETCHED,
                response.status_code,
                body,
                dict(response.headers),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
    except (requests.RequestException, _BodyRejectedError) as exc:
        return _failed(feed, _describe(exc), None)


def _failed(feed: Feed, error: str, http_status: int | None) -> FetchResult:
    logger.warning("feed fetch failed", extra={"feed": feed.name, "url": feed.url, "error": error})
    return FetchResult(feed, FetchStatus.FAILED, http_status, error=error)


def _collect(
    session: requests.Session, feed: Feed, state: FeedState | None, timeout: float
) -> _FeedOutcome:
    fetched = fetch_feed(session, feed, state, timeout)
    if fetched.status is not FetchStatus.FETCHED:
        return _FeedOutcome(
            feed,
            fetched.status,
            fetched.http_status,
            fetched.etag,
            fetched.last_modified,
            fetched.error,
        )
    parsed = parse_feed(fetched.body, fetched.headers, feed)
    extra = {"feed": feed.name, "url": feed.url}
    if parsed.error:
        logger.warning("feed is not a feed", extra={**extra, "error": parsed.error})
        return _FeedOutcome(
            feed,
            FetchStatus.FAILED,
            fetched.http_status,
            state.etag if state else None,
            state.last_modified if state else None,
            parsed.error,
        )
    if parsed.problem:
        logger.warning(
            "feed is ill-formed or mis-encoded; kept the items recovered",
            extra={**extra, "problem": parsed.problem, "items": len(parsed.events)},
        )
    if parsed.skipped:
        logger.info(
            "skipped items with neither title, link nor summary",
            extra={**extra, "skipped": parsed.skipped},
        )
    return _FeedOutcome(
        feed,
        FetchStatus.FETCHED,
        fetched.http_status,
        fetched.etag,
        fetched.last_modified,
        None,
        parsed.events,
    )


def _collect_all(
    session: requests.Session,
    feeds: Sequence[Feed],
    states: Mapping[str, FeedState],
    timeout: float,
) -> list[_FeedOutcome]:
    if not feeds:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(feeds))) as pool:
        futures = [pool.submit(_collect, session, f, states.get(f.url), timeout) for f in feeds]
    outcomes = []
    for feed, future in zip(feeds, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:
            logger.exception("feed ingest crashed", extra={"feed": feed.name, "url": feed.url})
            state = states.get(feed.url)
            outcomes.append(
                _FeedOutcome(
                    feed,
                    FetchStatus.FAILED,
                    None,
                    state.etag if state else None,
                    state.last_modified if state else None,
                    f"crashed: {_describe(exc)}",
                )
            )
    return outcomes


def _unique_feeds(feeds: Iterable[Feed]) -> list[Feed]:
    unique: dict[str, Feed] = {}
    for feed in feeds:
        if feed.url in unique:
            logger.warning(
                "feed listed twice; fetching it once", extra={"feed": feed.name, "url": feed.url}
            )
            continue
        unique[feed.url] = feed
    return list(unique.values())


def load_states(conn: Connection, urls: Sequence[str]) -> dict[str, FeedState]:
    """The conditional-GET state of the given feeds, in one query."""
    if not urls:
        return {}
    rows = conn.run(
        "SELECT feed_url, etag, last_modified FROM feed_state"
        " WHERE feed_url = ANY(CAST(:urls AS text[]))",
        urls=list(urls),
    )
    return {url: FeedState(url, etag, modified) for url, etag, modified in rows or []}


_INSERT_EVENTS = """
INSERT INTO inbound_events_raw
    (feed_name, feed_url, item_key, source, title, link, summary, published_at, fetched_at)
SELECT i.feed_name, i.feed_url, i.item_key, i.source, i.title, i.link, i.summary, i.published_at,
       CAST(:fetched_at AS timestamptz)
FROM unnest(CAST(:feed_names AS text[]), CAST(:feed_urls AS text[]), CAST(:item_keys AS text[]),
            CAST(:sources AS text[]), CAST(:titles AS text[]), CAST(:links AS text[]),
            CAST(:summaries AS text[]), CAST(:published AS timestamptz[]))
     AS i(feed_name, feed_url, item_key, source, title, link, summary, published_at)
ON CONFLICT (feed_name, item_key) DO NOTHING
RETURNING id
"""

_UPSERT_STATES = """
INSERT INTO feed_state
    (feed_url, feed_name, etag, last_modified, last_status, last_error, last_fetched_at)
SELECT s.feed_url, s.feed_name, s.etag, s.last_modified, s.last_status, s.last_error,
       CAST(:fetched_at AS timestamptz)
FROM unnest(CAST(:feed_urls AS text[]), CAST(:feed_names AS text[]), CAST(:etags AS text[]),
            CAST(:last_modified AS text[]), CAST(:statuses AS integer[]), CAST(:errors AS text[]))
     AS s(feed_url, feed_name, etag, last_modified, last_status, last_error)
ON CONFLICT (feed_url) DO UPDATE SET
    feed_name = EXCLUDED.feed_name,
    etag = EXCLUDED.etag,
    last_modified = EXCLUDED.last_modified,
    last_status = EXCLUDED.last_status,
    last_error = EXCLUDED.last_error,
    last_fetched_at = EXCLUDED.last_fetched_at
"""


def _insert_events(conn: Connection, events: Sequence[RawEvent], minute: datetime) -> int:
    if not events:
        return 0
    rows = conn.run(
        _INSERT_EVENTS,
        fetched_at=minute,
        feed_names=[e.feed_name for e in events],
        feed_urls=[e.feed_url for e in events],
        item_keys=[e.item_key for e in events],
        sources=[e.source for e in events],
        titles=[e.title for e in events],
        links=[e.link for e in events],
        summaries=[e.summary for e in events],
        published=[e.published_at for e in events],
    )
    return len(rows or [])


def _save_states(conn: Connection, outcomes: Sequence[_FeedOutcome], minute: datetime) -> None:
    if not outcomes:
        return
    conn.run(
        _UPSERT_STATES,
        fetched_at=minute,
        feed_urls=[o.feed.url for o in outcomes],
        feed_names=[o.feed.name for o in outcomes],
        etags=[o.etag for o in outcomes],
        last_modified=[o.last_modified for o in outcomes],
        statuses=[o.http_status for o in outcomes],
        errors=[_shorten(o.error, MAX_ERROR_CHARS) if o.error else None for o in outcomes],
    )


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=MAX_WORKERS, pool_maxsize=MAX_WORKERS)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _store(conn: Connection, outcomes: Sequence[_FeedOutcome], minute: datetime) -> int:
    events: dict[tuple[str, str], RawEvent] = {}
    for outcome in outcomes:
        for event in outcome.events:
            events.setdefault((event.feed_name, event.item_key), event)
    conn.run("BEGIN")
    try:
        inserted = _insert_events(conn, list(events.values()), minute)
        _save_states(conn, outcomes, minute)
        conn.run("COMMIT")
    except Exception:
        conn.run("ROLLBACK")
        raise
    return inserted


def ingest(
    conn: Connection,
    feeds: Iterable[Feed],
    minute: datetime,
    *,
    session: requests.Session | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, int]:
    """Fetch every feed (in a small thread pool) and store its new items, stamped with `minute`.

    Returns `{"feeds", "fetched", "not_modified", "failed", "items_seen", "inserted"}`.
    A feed that fails is recorded in `feed_state` and never stops the others.
    """
    unique = _unique_feeds(feeds)
    states = load_states(conn, [feed.url for feed in unique])
    own_session = session is None
    http = _new_session() if session is None else session
    try:
        outcomes = _collect_all(http, unique, states, timeout)
    finally:
        if own_session:
            http.close()
    inserted = _store(conn, outcomes, minute)
    summary = {
        "feeds": len(unique),
        "fetched": sum(o.status is FetchStatus.FETCHED for o in outcomes),
        "not_modified": sum(o.status is FetchStatus.NOT_MODIFIED for o in outcomes),
        "failed": sum(o.status is FetchStatus.FAILED for o in outcomes),
        "items_seen": sum(len(o.events) for o in outcomes),
        "inserted": inserted,
    }
    metrics.add_metric(name="FeedItemsInserted", unit=MetricUnit.Count, value=inserted)
    metrics.add_metric(name="FeedFailures", unit=MetricUnit.Count, value=summary["failed"])
    logger.info("rss ingest done", extra=summary)
    return summary
