"""The replay's P&L from an earlier replay's book, and `ops-pipeline report` after a replay of real bars (2019-02-12, Alpha Vantage via
masonblier/eqker, ISC): the page, its images and its links; a headless Chromium screenshot where
Debian's `chromium` is installed."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.cli import main
from ops_pipeline_local.replay import execution_columns, replay

pytestmark = pytest.mark.statemachine

TICKERS = ("AAPL", "TSLA")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.targets.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.images.append(values["src"] or "")
            self.targets.append(values["src"] or "")


@pytest.fixture(scope="module")
def replayed(database_server, bundled_bars):
    """AAPL and TSLA, 120 minutes then the 40 after them, in a database of this module's own.

    The first replay buys TSLA at 11:21 New York and still holds it when it ends at 11:30; the
    second starts with that position and sells it at 12:06.
    """
    from ops_pipeline_local.embedded_db import throwaway_database

    first = min(b.ts for b in bundled_bars)
    split = first + timedelta(minutes=120)
    chosen = [
        b for b in bundled_bars if b.symbol in TICKERS and b.ts < first + timedelta(minutes=160)
    ]
    with throwaway_database(database_server) as url:
        before = replay([b for b in chosen if b.ts < split], database_url=url)
        after = replay([b for b in chosen if b.ts >= split], database_url=url)
        assert not before.failures and not after.failures
        yield url, chosen, before, after


def test_the_summary_pnl_starts_from_the_positions_held_when_the_window_opens(replayed):
    url, _, before, after = replayed
    conn = connect(parse_database_url(url))
    try:
        held = before.summary["simulated_pnl"]["open_positions"]
        assert held and all(q > 0 for q in held.values()), "the first replay must end holding"
        pnl = after.summary["simulated_pnl"]
        assert pnl["opening_positions"] == held

        def last_close(ticker, before_ts):
            return conn.run(
                "SELECT close FROM lane_telemetry WHERE ticker = :t AND ts < :ts"
                " ORDER BY ts DESC LIMIT 1",
                t=ticker,
                ts=before_ts,
            )[0][0]

        start, end = after.first_minute, after.last_minute + timedelta(minutes=1)
        commission = "commission" if "commission" in execution_columns(conn) else "0"
        fills = conn.run(
            f"SELECT ticker, side, qty, price, {commission} FROM dispatch_executions"
            " WHERE status = 'filled' AND decided_at >= :start AND decided_at < :end",
            start=start,
            end=end,
        )
        # By hand: the opening book at the last close before the window, the window's fills,
        # what is held at the end at the last close.
        book = dict(held)
        expected = -sum(q * last_close(t, start) for t, q in held.items())
        for ticker, side, qty, price, fee in fills:
            signed = qty if side == "buy" else -qty
            book[ticker] = book.get(ticker, Decimal(0)) + signed
            expected -= signed * price + Decimal(fee or 0)
        expected += sum(q * last_close(t, end) for t, q in book.items())
        assert pnl["realized_and_unrealized"] == expected.quantize(Decimal("0.01"))
        assert pnl["open_positions"] == {t: q for t, q in book.items() if q}
        # What the summary said before this fix: the window's fills alone, as if it started flat.
        assert fills, "the second replay must trade"
        naive = -sum(((q if s == "buy" else -q) * p for _, s, q, p, _ in fills), Decimal(0))
        assert pnl["realized_and_unrealized"] != naive.quantize(Decimal("0.01"))
    finally:
        conn.close()


def test_report_writes_a_page_whose_images_and_links_all_resolve(replayed, tmp_path, capsys):
    url, *_ = replayed
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", "--out", str(out), "--database-url", url]) == 0
    printed = capsys.readouterr().out
    index = out / "index.html"
    assert str(index.resolve()) in printed

    page = index.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    assert {"equity.png", "AAPL.png", "TSLA.png"} <= set(parser.images)
    for target in parser.targets:
        parts = urlsplit(target)
        assert not parts.scheme and not parts.netloc, f"{target} leaves the report"
        assert (out / unquote(parts.path)).is_file(), f"{target} does not resolve"
    for name in parser.images:
        with Image.open(out / name) as image:
            image.verify()  # a whole, valid image
        with Image.open(out / name) as image:
            assert image.format == "PNG"
            assert image.width >= 600 and image.height >= 400
    for label in (
        "trades (fills)",
        "win rate",
        "profit factor",
        "total return",
        "maximum drawdown",
        "maximum drawdown: peak, trough, recovery (New York)",
        "Sharpe ratio",
        "Sortino ratio",
        "Calmar ratio",
        "exposure",
        "costs: commissions (USD)",
        "costs: slippage against the bar&#x27;s open (USD)",
        "fill time after the decision",
        "buy and hold, the basket: total return",
        "Per ticker",
        "Trades (round trips)",
        "entry (New York)",
        "duration",
        "Refusals by reason",
        "so short a sample says little",
    ):
        assert label in page, label


def test_report_window_and_tickers_narrow_what_it_shows(replayed, tmp_path):
    url, bars, *_ = replayed
    first = min(b.ts for b in bars)
    out = tmp_path / "narrow"
    code = main(
        [
            "report",
            "--out",
            str(out),
            "--database-url",
            url,
            "--tickers",
            "tsla",
            "--from",
            (first + timedelta(minutes=30)).isoformat(),
            "--to",
            (first + timedelta(minutes=90)).isoformat(),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["TSLA.png", "equity.png"]
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<td>TSLA</td>" in page and "AAPL" not in page


def test_report_on_an_empty_window_is_a_clear_error(replayed, tmp_path, capsys):
    url, *_ = replayed
    code = main(
        ["report", "--out", str(tmp_path / "x"), "--database-url", url, "--tickers", "ZZZZ"]
    )
    assert code == 2
    assert "no bars" in capsys.readouterr().err


def test_the_report_renders_in_headless_chromium(replayed, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium)")
    url, *_ = replayed
    out = tmp_path / "report"
    assert main(["report", "--out", str(out), "--database-url", url]) == 0
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1280,4200",
            (out / "index.html").resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        assert image.size == (1280, 4200)
        rgb = image.convert("RGB")
        colours = dict((c, n) for n, c in rgb.getcolors(maxcolors=1 << 22) or [])
    # not a blank page: the charts put many colours on it
    assert len(colours) > 50
    # the short-sample warning is on screen (its box's fill), and so is the equity chart's
    # strategy line (matplotlib's tab:blue)
    assert colours.get((0xFF, 0xF3, 0xCD), 0) > 10_000
    blue = sum(n for (r, g, b), n in colours.items() if r < 90 and 90 < g < 150 and b > 150)
    assert blue > 200
