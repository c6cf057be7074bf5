"""Bad input to `ops-pipeline` gets one line on stderr and a non-zero exit (2 for usage, 1 for a
database that does not answer), before any work starts, and never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from paths import BUNDLED_BARS, ROOT

from ops_pipeline_local.cli import main

FUTURE = "2030-01-01T00:00:00Z"


def _refusing_url() -> str:
    """A PostgreSQL URL on a loopback port where nothing listens (the connect is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/ops"


def _one_line(capsys: pytest.CaptureFixture[str], code: int, expected: int, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("starting the embedded")]
    assert code == expected, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["explain", "AAPL", "--at", "2019-02-12T15:00:00Z"],
        ["report"],
        ["db", "migrate"],
        ["replay", "--bars", str(BUNDLED_BARS)],
    ],
    ids=["status", "explain", "report", "db migrate", "replay"],
)
def test_a_database_that_refuses_is_one_line_for_every_database_command(argv, capsys, tmp_path):
    if argv[0] == "report":
        argv = [*argv, "--out", str(tmp_path / "report")]
    code = main([*argv, "--database-url", _refusing_url()])
    _one_line(capsys, code, 1, "cannot reach the database", "connection refused", "--database-url")


def test_an_unknown_host_is_one_line(capsys):
    code = main(["status", "--database-url", "postgresql://postgres@no-such-host.invalid/ops"])
    _one_line(capsys, code, 1, "cannot reach the database", "unknown host")


def test_a_missing_database_is_one_line(database_server, capsys):
    url = database_server.rsplit("/", 1)[0] + "/ops_no_such_database"
    code = main(["status", "--database-url", url])
    _one_line(capsys, code, 1, "does not exist", "createdb")


@pytest.mark.parametrize("url", ["foo", "localhost:5432/ops", "mysql://u@h/db"])
def test_a_malformed_database_url_is_a_usage_error(url, capsys):
    code = _exit_code(["status", "--database-url", url])
    _one_line(capsys, code, 2, repr(url), "is not a PostgreSQL URL", "postgresql://")


def test_a_malformed_database_url_in_the_environment_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "localhost")
    code = main(["status"])
    _one_line(capsys, code, 2, "DATABASE_URL", "is not a PostgreSQL URL")


def test_bars_naming_a_missing_file_is_one_line(tmp_path, capsys):
    code = main(["replay", "--bars", str(tmp_path / "nope.csv"), "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "nope.csv", "no such file or folder")


def test_bars_naming_a_folder_without_csv_files_is_one_line(tmp_path, capsys):
    code = main(["replay", "--bars", str(tmp_path), "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "holds no .csv file")


def test_a_bars_file_with_bad_columns_is_one_line(tmp_path, capsys):
    path = tmp_path / "bars.csv"
    path.write_text("ticker,time,price\nAAPL,2019-02-12T14:30:00Z,170\n")
    code = main(["replay", "--bars", str(path), "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "the header lacks symbol, timestamp, open", "columns are")


def test_a_bars_file_that_is_not_text_is_one_line(tmp_path, capsys):
    path = tmp_path / "bars.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    code = main(["replay", "--bars", str(path), "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "cannot read it as UTF-8 CSV")


def test_status_at_nonsense_is_a_usage_error(capsys):
    code = _exit_code(["status", "--at", "nonsense", "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "--at", "'nonsense' is not a time")


def test_status_at_without_an_offset_is_a_usage_error(capsys):
    code = _exit_code(["status", "--at", "2019-02-12T15:00", "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "--at", "no time zone")


def test_report_on_a_window_with_no_bars_is_one_line(database_url, conn, tmp_path, capsys):
    code = main(["report", "--out", str(tmp_path / "r"), "--database-url", database_url])
    _one_line(capsys, code, 2, "no bars of any ticker in the database", "run or replay first")


def test_report_on_a_window_after_the_stored_bars_is_one_line(
    database_url, conn, bundled_bars, tmp_path, capsys
):
    from ops_pipeline import telemetry

    telemetry.upsert_bars(
        conn,
        [
            telemetry.Bar(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume)
            for b in bundled_bars[:30]
        ],
    )
    argv = ["report", "--out", str(tmp_path / "r"), "--database-url", database_url]
    code = main([*argv, "--from", FUTURE])
    _one_line(capsys, code, 2, "no bars of any ticker from 2030-01-01", "the database's run from")
    code = main([*argv, "--from", "2019-02-12T14:40:00Z", "--to", "2019-02-12T14:35:00Z"])
    _one_line(capsys, code, 2, "--to", "is before --from")


@pytest.mark.parametrize("command", ["explain", "report"])
def test_a_setting_that_is_no_setting_is_one_line(database_url, conn, tmp_path, capsys, command):
    argv = (
        ["explain", "AAPL", "--at", "2019-02-12T15:00:00Z"]
        if command == "explain"
        else ["report", "--out", str(tmp_path / "r")]
    )
    argv += ["--database-url", database_url]
    code = main([*argv, "--setting", "Bad Name; DROP SCHEMA public"])
    _one_line(capsys, code, 2, "--setting", "a setting's name must match")
    code = main([*argv, "--setting", "never_run"])
    _one_line(capsys, code, 2, "no setting 'never_run' has run in this database; settings: ")


def test_report_out_naming_an_existing_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "index.html"
    path.write_text("mine")
    code = main(["report", "--out", str(path), "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "a file is in the way")
    assert path.read_text() == "mine"


def test_report_out_naming_an_unwritable_place_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["report", "--out", str(blocker / "report"), "--database-url", _refusing_url()])
    _one_line(capsys, code, 2, "cannot write there")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["replay", "--bars", "b.csv", "--slippage-bps", "-10"], ("--slippage-bps", "0 to 1000")),
        (["run", "--slippage-bps", "lots"], ("--slippage-bps", "not a number")),
        (["replay", "--bars", "b.csv", "--commission-per-share", "-0.01"], ("0 or more",)),
        (["report", "--capital", "-1"], ("--capital", "more than 0")),
        (["report", "--capital", "0"], ("--capital", "more than 0")),
        (["replay", "--bars", "b.csv", "--step", "often"], ("--step", "whole number")),
        (["replay", "--bars", "b.csv", "--continue", "--fresh"], ("not allowed with",)),
        (["--log-level", "LOUD", "status"], ("--log-level", "invalid choice")),
    ],
    ids=[
        "negative slippage",
        "slippage text",
        "negative commission",
        "negative capital",
        "zero capital",
        "step text",
        "continue and fresh",
        "log level",
    ],
)
def test_bad_numbers_and_options_are_usage_errors_before_any_work(argv, words, capsys):
    _one_line(capsys, _exit_code(argv), 2, *words)


def _exit_code(argv: list[str]) -> int:
    """argparse's own errors leave through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_classify_into_a_closed_pipe_is_one_line(tmp_path):
    """`ops-pipeline classify | head -1`, as a shell runs it: the reader leaves after a line."""
    texts = tmp_path / "texts.txt"
    texts.write_text("Apple shares jump after record results\n" * 20000)
    command = [sys.executable, "-m", "ops_pipeline_local.cli", "classify"]
    with texts.open("rb") as stdin:
        writer = subprocess.Popen(
            command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
        )
        assert writer.stdout is not None
        first = writer.stdout.readline()
        writer.stdout.close()  # what `head -1` does after its line
        _, err = writer.communicate(timeout=120)
    assert b'"label"' in first
    lines = err.decode().splitlines()
    assert writer.returncode == 1, err
    assert len(lines) == 1 and "the output was closed" in lines[0], err
