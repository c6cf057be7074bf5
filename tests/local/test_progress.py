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
    assert "2/2" in out.getvalue()
