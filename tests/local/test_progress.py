"""The replay's progress: rich's bar on a terminal, plain lines without terminal codes elsewhere."""

import io
from datetime import UTC, datetime, timedelta

from ops_pipeline_local.replay import Progress

COUNTS = {"bars": 8, "recommendations": 1, "fills": 1, "news": 0, "failed": 0}


def test_off_a_terminal_it_writes_a_plain_line_every_30_minutes_and_at_the_end():
    out = io.StringIO()
    progress = Progress(45, stream=out)
    start = datetime(2019, 2, 11, 14, 30, tzinfo=UTC)  # 09:30 New York
    for done in range(1, 46):
        progress(done, start + timedelta(minutes=done - 1), COUNTS)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "[   1/45] 2019-02-11 09:30 New York  new: bars     8  recs   1  fills   1  news   0"
        "  failed runs 0",
        "[  31/45] 2019-02-11 10:00 New York  new: bars     8  recs   1  fills   1  news   0"
        "  failed runs 0",
        "[  45/45] 2019-02-11 10:14 New York  new: bars     8  recs   1  fills   1  news   0"
        "  failed runs 0",
    ]
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_it_draws_rich_s_bar_and_ends_it():
    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    progress = Progress(2, stream=out)
    assert progress.bar is not None
    progress(1, datetime(2019, 2, 11, 14, 30, tzinfo=UTC), COUNTS)
    progress(2, datetime(2019, 2, 11, 14, 31, tzinfo=UTC), COUNTS)
    assert progress.bar is None  # stopped at the total
    assert "100%" in out.getvalue() and "New York" in out.getvalue()


def test_on_an_80_column_terminal_the_bar_and_its_counts_fit():
    import re

    out = io.StringIO()
    out.isatty = lambda: True  # type: ignore[method-assign]
    progress = Progress(1955, stream=out)
    progress.console.width = 80
    counts = {"bars": 9736, "recommendations": 489, "fills": 65, "news": 15, "failed": 0}
    progress(900, datetime(2019, 2, 13, 15, 30, tzinfo=UTC), counts)
    progress.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).split("\r")[-1]
    assert "02-13 10:30 New York" in text and "fills 65" in text  # nothing cut
    assert max(len(line) for line in text.splitlines()) <= 80


def test_off_a_terminal_windows_longer_than_30_minutes_each_get_their_line():
    """The default step runs long windows: each one's end is printed, not only :00 and :30."""
    out = io.StringIO()
    progress = Progress(1170, stream=out)
    start = datetime(2019, 2, 11, 14, 30, tzinfo=UTC)
    for done in (47, 391, 782, 1170):
        progress(done, start + timedelta(minutes=done + 7), COUNTS)
    assert len(out.getvalue().splitlines()) == 4
