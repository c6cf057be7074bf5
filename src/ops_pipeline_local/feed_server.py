"""A loopback HTTP server for feed files: the local stand-in for the news sites' RSS endpoints.

It serves a folder (recursively) with an `ETag` (hash of the content) and `Last-Modified` (file
mtime), answers `If-None-Match` / `If-Modified-Since` with 304, and sends the `Header:` lines of a
feedparser test-corpus file's leading comment as HTTP headers. Tests can add in-memory documents
(`add`), slow ones included, and read what was asked (`request_counts`, `requests`).

A replay sets its clock (`now=`, `set_time`, like the local Alpaca's): each document is then served
with only the items (`<item>`, `<entry>`) published up to that moment, as the feed looked then.
An item's time is its `pubDate`/`published`/`dc:date`, else its `updated`; an undated item is
always served.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

from ops_pipeline.config import Feed

SAMPLE_FEEDS_DIR = Path(__file__).parent / "data" / "feeds"
_HOST = "127.0.0.1"  # the address the server binds and its URLs name

_CORPUS_HEADER = re.compile(rb"^\s*Header:\s+([A-Za-z0-9-]+):[ \t]*(.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Document:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    delay: float = 0.0
    mtime: float | None = None


@dataclass(frozen=True)
class ServedRequest:
    path: str
    status: int
    if_none_match: str | None
    if_modified_since: str | None


def corpus_headers(body: bytes) -> dict[str, str]:
    """The `Header: Name: value` lines of a feedparser test file's leading comment."""
    start = body.find(b"<!--")
    if start < 0 or start > 512:  # the corpus comment is at the top (after any XML declaration)
        return {}
    end = body.find(b"-->", start)
    comment = body[start : end if end > 0 else len(body)]
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in _CORPUS_HEADER.findall(comment)
    }


_ITEM = re.compile(rb"<((?:[A-Za-z0-9_]+:)?(?:item|entry))\b[^>]*?(?<!/)>.*?</\1\s*>", re.S)
_ITEM_DATE = re.compile(
    rb"<(?:[A-Za-z0-9_]+:)?(pubDate|published|issued|date|updated|modified)\b[^>]*>\s*"
    rb"(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?\s*</",
    re.S,
)
_FIRST_SEEN = (b"pubDate", b"published", b"issued", b"date")


def _parse_time(text: bytes) -> datetime | None:
    value = text.decode("utf-8", "replace").strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def item_time(item: bytes) -> datetime | None:
    """When an item appeared: published (pubDate, dc:date), else updated; None when undated."""
    dates = {name: _parse_time(value) for name, value in reversed(_ITEM_DATE.findall(item))}
    for name in _FIRST_SEEN:
        if dates.get(name) is not None:
            return dates[name]
    return next((d for d in dates.values() if d is not None), None)


def published_by(body: bytes, now: datetime) -> tuple[bytes, datetime | None]:
    """The document without the items published after `now`, and its newest served item's time."""
    newest: datetime | None = None

    def keep(match: re.Match[bytes]) -> bytes:
        nonlocal newest
        when = item_time(match.group(0))
        if when is not None and when > now:
            return b""
        if when is not None and (newest is None or when > newest):
            newest = when
        return match.group(0)

    return _ITEM.sub(keep, body), newest


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or etag in [c.removeprefix("W/") for c in candidates]


def _not_modified_since(header: str, mtime: float) -> bool:
    try:
        since = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError):
        return False
    return int(mtime) <= since


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connects under a thread pool: 1 s SYN retries


class FeedServer:
    """Serve `root` on 127.0.0.1 (a free port) from a daemon thread; use as a context manager."""

    def __init__(self, root: Path | str = SAMPLE_FEEDS_DIR, *, now: datetime | None = None) -> None:
        self.root = Path(root).resolve()
        self.now = now
        self.request_counts: Counter[str] = Counter()
        self.requests: list[ServedRequest] = []
        self._documents: dict[str, Document] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FeedServer:
        server = self

        class Handler(_FeedRequestHandler):
            feed_server = server

        self._httpd = _Server((_HOST, 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="feed-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the feed server is not running")
        return f"http://{_HOST}:{self._httpd.server_port}"

    def url_for(self, filename: str) -> str:
        """The URL of a file (a path relative to the root, `/` separated) or an added document."""
        return f"{self.base_url}/{quote(filename.lstrip('/'))}"

    def files(self, pattern: str = "**/*") -> list[str]:
        """Relative paths of the served files matching `pattern`, sorted."""
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.glob(pattern) if p.is_file()
        )

    def feeds(self, pattern: str = "**/*") -> list[Feed]:
        """One `Feed` per served file (its name is the relative path)."""
        return [Feed(name, self.url_for(name)) for name in self.files(pattern)]

    # -- test hooks ------------------------------------------------------------------------
    def add(
        self,
        path: str,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        status: int = 200,
        delay: float = 0.0,
    ) -> str:
        """Serve an in-memory document at `path` (it wins over a file); return its URL."""
        with self._lock:
            self._documents[path.lstrip("/")] = Document(
                body, dict(headers or {}), status, delay, time.time()
            )
        return self.url_for(path)

    def set_time(self, now: datetime | None) -> None:
        """The replay clock: serve only items published up to `now` (None: serve everything)."""
        with self._lock:
            self.now = now

    def requests_for(self, filename: str) -> list[ServedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == filename.lstrip("/")]

    # -- used by the handler ---------------------------------------------------------------
    def _document(self, path: str) -> Document | None:
        document = self._stored_document(path)
        with self._lock:
            now = self.now
        if document is None or now is None or document.status != 200:
            return document
        body, newest = published_by(document.body, now)
        return replace(document, body=body, mtime=newest.timestamp() if newest else None)

    def _stored_document(self, path: str) -> Document | None:
        with self._lock:
            if path in self._documents:
                return self._documents[path]
        file = (self.root / path).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            return None
        body = file.read_bytes()
        headers = corpus_headers(body)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = (
                mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            )
        return Document(body, headers, 200, 0.0, file.stat().st_mtime)

    def _record(self, request: ServedRequest) -> None:
        with self._lock:
            self.request_counts[request.path] += 1
            self.requests.append(request)


class _FeedRequestHandler(BaseHTTPRequestHandler):
    feed_server: FeedServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _respond(self, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path).lstrip("/")
        document = self.feed_server._document(path)
        if_none_match = self.headers.get("If-None-Match")
        if_modified_since = self.headers.get("If-Modified-Since")
        status = self._status(document, if_none_match, if_modified_since)
        self.feed_server._record(ServedRequest(path, status, if_none_match, if_modified_since))
        if document is not None and document.delay:
            time.sleep(document.delay)
        if document is None:
            self._send(
                404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found\n", send_body
            )
            return
        headers = {"ETag": _etag(document.body)}
        if document.mtime is not None:
            headers["Last-Modified"] = formatdate(document.mtime, usegmt=True)
        if status == 304:
            self._send(304, headers, b"", send_body=False)
            return
        self._send(status, {**document.headers, **headers}, document.body, send_body)

    @staticmethod
    def _status(
        document: Document | None, if_none_match: str | None, if_modified_since: str | None
    ) -> int:
        if document is None:
            return 404
        if document.status != 200:
            return document.status
        if if_none_match is not None:
            return 304 if _etag_matches(if_none_match, _etag(document.body)) else 200
        if if_modified_since and document.mtime is not None:
            return 304 if _not_modified_since(if_modified_since, document.mtime) else 200
        return 200

    def _send(self, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and status != 304:
            self.wfile.write(body)
