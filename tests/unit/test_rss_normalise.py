"""The pure core of RSS ingest: dates to UTC, item keys, HTML to text, skipping empty items."""

from __future__ import annotations

from datetime import UTC, datetime

import feedparser
import pytest

from ops_pipeline.config import Feed
from ops_pipeline.news import rss

FEED = Feed("Test wire", "https://feeds.example.com/wire.xml")


def rss_doc(*items: str, channel: str = "<title>Test Wire</title>") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        + channel
        + "".join(f"<item>{item}</item>" for item in items)
        + "</channel></rss>"
    ).encode()


def one_event(body: bytes, headers: dict[str, str] | None = None) -> rss.RawEvent:
    parsed = rss.parse_feed(body, headers or {"Content-Type": "application/rss+xml"}, FEED)
    assert parsed.error is None, parsed.error
    assert len(parsed.events) == 1, parsed
    return parsed.events[0]


# --- published time as UTC ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        (
            "<pubDate>Tue, 12 Feb 2019 09:35:00 -0500</pubDate>",
            datetime(2019, 2, 12, 14, 35, tzinfo=UTC),
        ),
        (
            "<pubDate>Tue, 12 Feb 2019 14:35:00 GMT</pubDate>",
            datetime(2019, 2, 12, 14, 35, tzinfo=UTC),
        ),
        (
            "<pubDate>Tue, 12 Feb 2019 09:35:00 EST</pubDate>",
            datetime(2019, 2, 12, 14, 35, tzinfo=UTC),
        ),
        ("<pubDate>12 Feb 2019 16:35 +0200</pubDate>", datetime(2019, 2, 12, 14, 35, tzinfo=UTC)),
        ("<dc:date>2019-02-12T15:35:00+01:00</dc:date>", datetime(2019, 2, 12, 14, 35, tzinfo=UTC)),
        ("<dc:date>2019-02-12T14:35:00Z</dc:date>", datetime(2019, 2, 12, 14, 35, tzinfo=UTC)),
        ("<pubDate>not a date at all</pubDate>", None),
        ("", None),
    ],
)
def test_rss_dates_become_utc(element: str, expected: datetime | None) -> None:
    event = one_event(rss_doc(f"<title>Apple rises</title>{element}"))
    assert event.published_at == expected
    if expected is not None:
        assert event.published_at.utcoffset().total_seconds() == 0


def test_atom_published_wins_over_updated_and_offsets_become_utc() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
      <entry><title>a</title><id>tag:x,2019:1</id>
        <published>2019-02-12T09:30:00-05:00</published><updated>2019-02-12T20:00:00Z</updated></entry>
      <entry><title>b</title><id>tag:x,2019:2</id><updated>2019-02-12T15:30:00+01:00</updated></entry>
    </feed>"""
    parsed = rss.parse_feed(body, {"content-type": "application/atom+xml"}, FEED)
    assert [e.published_at for e in parsed.events] == [
        datetime(2019, 2, 12, 14, 30, tzinfo=UTC),
        datetime(2019, 2, 12, 14, 30, tzinfo=UTC),
    ]


def test_published_at_ignores_impossible_struct_times() -> None:
    entry = feedparser.FeedParserDict(published_parsed=(2019, 13, 45, 0, 0, 0, 0, 0, 0))
    assert rss.published_at(entry) is None


# --- item keys --------------------------------------------------------------------------------


def test_key_is_guid_then_link_then_hash_of_title_and_time() -> None:
    when = datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
    assert rss.item_key("guid-1", "https://x/1", "t", when) == "guid-1"
    assert rss.item_key(None, "https://x/1", "t", when) == "https://x/1"
    assert rss.item_key("  ", "https://x/1", "t", when) == "https://x/1"
    hashed = rss.item_key(None, None, "Apple rises", when)
    assert hashed.startswith("sha256:") and len(hashed) == len("sha256:") + 64
    assert hashed == rss.item_key("", "", "Apple rises", when)  # stable
    assert hashed != rss.item_key(None, None, "Apple rises", None)
    assert hashed != rss.item_key(None, None, "Apple falls", when)
    # the same moment in another zone is the same key
    from datetime import timedelta, timezone

    assert hashed == rss.item_key(
        None, None, "Apple rises", when.astimezone(timezone(timedelta(hours=-5)))
    )


def test_key_falls_back_to_summary_when_there_is_no_title() -> None:
    assert rss.item_key(None, None, "", None, "one") != rss.item_key(None, None, "", None, "two")


def test_overlong_guid_is_hashed_to_fit_an_index() -> None:
    key = rss.item_key("x" * 5000, None, None, None)
    assert key.startswith("sha256:") and len(key) < 100


def test_keys_from_feed_items() -> None:
    guid = one_event(rss_doc("<title>a</title><guid>tag:x,2019:g-1</guid><link>https://x/a</link>"))
    link = one_event(rss_doc("<title>a</title><link>https://x/a</link>"))
    neither = one_event(rss_doc("<title>a</title><pubDate>Tue, 12 Feb 2019 14:30:00 GMT</pubDate>"))
    assert (guid.item_key, link.item_key) == ("tag:x,2019:g-1", "https://x/a")
    assert neither.item_key == rss.item_key(
        None, None, "a", datetime(2019, 2, 12, 14, 30, tzinfo=UTC)
    )


def test_relative_links_are_resolved_against_the_feed_url_opaque_guids_are_not() -> None:
    opaque = one_event(
        rss_doc('<title>a</title><guid isPermaLink="false">g-1</guid><link>/a</link>')
    )
    assert (opaque.item_key, opaque.link) == ("g-1", "https://feeds.example.com/a")
    permalink = one_event(
        rss_doc("<title>a</title><guid>g-1</guid>")
    )  # isPermaLink defaults to true
    assert permalink.item_key == permalink.link == "https://feeds.example.com/g-1"


def test_permalink_guid_is_both_key_and_link() -> None:
    event = one_event(rss_doc('<title>a</title><guid isPermaLink="true">https://x/p</guid>'))
    assert (event.item_key, event.link) == ("https://x/p", "https://x/p")


# --- text ----------------------------------------------------------------------------------


def test_html_summary_is_stripped_to_text() -> None:
    description = (
        "<![CDATA[<p>Apple <b>jumps</b> &amp; Tesla&nbsp;slides</p><script>alert(1)</script>"
        '<ul><li>one</li><li>two</li></ul><img src="https://x/i.png"/>]]>'
    )
    event = one_event(rss_doc(f"<title>t</title><description>{description}</description>"))
    assert event.summary == "Apple jumps & Tesla slides one two"  # nbsp collapses too


def test_escaped_html_in_a_plain_description_is_stripped_too() -> None:
    event = one_event(
        rss_doc(
            "<title>t</title>"
            "<description>&lt;p&gt;Up &lt;em&gt;3%&lt;/em&gt;&lt;/p&gt;</description>"
        )
    )
    assert event.summary == "Up 3%"


def test_html_title_is_stripped_and_plain_title_kept_verbatim() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>
      <entry><id>1</id><title type="html">&lt;b&gt;AT&amp;amp;T&lt;/b&gt; beats</title></entry>
      <entry><id>2</id><title type="text">S&amp;P 500 &lt; 2,800 again</title></entry></feed>"""
    parsed = rss.parse_feed(body, {"content-type": "application/atom+xml"}, FEED)
    assert [e.title for e in parsed.events] == ["AT&T beats", "S&P 500 < 2,800 again"]


def test_long_summary_is_cut_to_the_limit_at_a_word() -> None:
    words = " ".join(["revenue"] * 1000)
    event = one_event(rss_doc(f"<title>t</title><description>{words}</description>"))
    assert event.summary is not None
    assert len(event.summary) <= rss.MAX_SUMMARY_CHARS
    assert event.summary.endswith("revenue…")


def test_content_stands_in_for_a_missing_summary() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry><id>1</id><title>t</title>
      <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
        <p>Body <i>text</i></p></div></content>
      </entry></feed>"""
    parsed = rss.parse_feed(body, {"content-type": "application/atom+xml"}, FEED)
    assert parsed.events[0].summary == "Body text"


def test_text_that_postgres_refuses_is_cleaned() -> None:
    entry = feedparser.FeedParserDict(title="nul\x00 and lone \ud800 surrogate", link="https://x/1")
    event = rss.normalise_entry(entry, FEED)
    assert event is not None
    assert "\x00" not in event.title and "\ud800" not in event.title
    event.title.encode("utf-8")  # encodable


def test_non_web_links_are_dropped() -> None:
    event = one_event(rss_doc("<title>t</title><link>javascript:alert(1)</link>"))
    assert event.link is None


def test_source_is_the_channel_title_else_the_feed_name() -> None:
    assert one_event(rss_doc("<title>a</title>")).source == "Test Wire"
    assert one_event(rss_doc("<title>a</title>", channel="")).source == FEED.name
    with_source = rss_doc('<title>a</title><source url="https://r.example/">Reuters</source>')
    assert one_event(with_source).source == "Reuters"


# --- skipping and feed-level outcomes ----------------------------------------------------------


def test_item_with_neither_title_link_nor_summary_is_skipped() -> None:
    body = rss_doc(
        "<pubDate>Tue, 12 Feb 2019 14:30:00 GMT</pubDate>",
        "<title>  </title><description><![CDATA[<img src='https://x/i.png'/>]]></description>",
        "<link>https://x/only-link</link>",
        "<description>only a summary</description>",
    )
    parsed = rss.parse_feed(body, {"content-type": "application/rss+xml"}, FEED)
    assert (parsed.entry_count, parsed.skipped, len(parsed.events)) == (4, 2, 2)
    assert [e.title for e in parsed.events] == ["", ""]  # the table's title is NOT NULL: ''


def test_duplicate_items_in_one_document_are_kept_once() -> None:
    parsed = rss.parse_feed(
        rss_doc("<title>a</title><guid>g</guid>", "<title>b</title><guid>g</guid>"), {}, FEED
    )
    assert [e.title for e in parsed.events] == ["a"]


def test_ill_formed_feed_keeps_recovered_items_and_says_why() -> None:
    body = (
        b'<rss version="2.0"><channel><item><title>Apple &amp rises</title></item>'
        b"<item><title>Tesla dips</title></channel>"
    )
    parsed = rss.parse_feed(body, {"content-type": "text/xml"}, FEED)
    assert parsed.error is None
    assert parsed.problem and "SAXParseException" in parsed.problem
    assert [e.title for e in parsed.events] == ["Apple & rises", "Tesla dips"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<!doctype html><html><head><title>Oops</title></head><body><p>502</p></body></html>",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR garbage \xff\xfe",
        b'{"not": "a feed"}',
    ],
)
def test_something_that_is_not_a_feed_is_an_error(body: bytes) -> None:
    parsed = rss.parse_feed(body, {"content-type": "text/html"}, FEED)
    assert parsed.error and parsed.error.startswith("not a feed")
    assert parsed.events == ()


def test_http_charset_is_honoured_whatever_case_the_header_has() -> None:
    title = "Газпром растёт"
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel>'
        f"<item><title>{title}</title></item></channel></rss>"
    )
    encoded = body.encode("koi8-r")
    assert one_event(encoded, {"Content-Type": "text/xml; charset=koi8-r"}).title == title
    assert one_event(encoded, {"content-type": "text/xml; charset=koi8-r"}).title == title


def test_body_that_looks_like_a_path_is_never_read_as_a_file(tmp_path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(rss_doc("<title>local file content</title>"))
    parsed = rss.parse_feed(str(secret).encode(), {"content-type": "text/xml"}, FEED)
    assert parsed.events == ()
