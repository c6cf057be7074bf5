"""The `Custom::DbMigration` handler against a real PostgreSQL and a loopback response endpoint.

CloudFormation waits for one JSON document PUT to the request's pre-signed `ResponseURL`; a small
stdlib HTTP server on 127.0.0.1 stands in for S3 and records every PUT. The handler module is
loaded from its file, fresh for each test, as Lambda would on a cold start.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ops_pipeline.db import connect, parse_database_url
from ops_pipeline_local.embedded_db import throwaway_database
from ops_pipeline_local.runtime import LocalContext

REPO = Path(__file__).resolve().parents[2]
HANDLER_FILE = REPO / "functions" / "db_migrate" / "app.py"
EVENT_FILE = REPO / "events" / "db_migrate.json"
MIGRATIONS_DIR = REPO / "layers" / "shared" / "ops_pipeline" / "migrations"
ALL_MIGRATIONS = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))
PASSWORD = "hunter2-S3cr3t-pw"
SIGNATURE = "X-Amz-Signature=deadbeefcafe0123456789"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ResponseEndpoint:
    url: str
    requests: list[Recorded] = field(default_factory=list)

    def only(self) -> dict[str, Any]:
        assert len(self.requests) == 1, self.requests
        request = self.requests[0]
        assert request.method == "PUT"
        return request.body


@pytest.fixture
def endpoint() -> Iterator[ResponseEndpoint]:
    recorded: list[Recorded] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            recorded.append(Recorded("PUT", self.path, dict(self.headers.items()), json.loads(raw)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield ResponseEndpoint(
            f"http://127.0.0.1:{port}/cfn-response/{uuid.uuid4().hex}?{SIGNATURE}", recorded
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def empty_database(database_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database with nothing in it (throwaway_database migrates it: undo that)."""
    with throwaway_database(database_server) as url:
        conn = connect(parse_database_url(url))
        try:
            conn.run("DROP SCHEMA public CASCADE")
            conn.run("CREATE SCHEMA public")
        finally:
            conn.close()
        for name in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_IAM_AUTH", "DB_TLS"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


def load_handler_module() -> ModuleType:
    """`functions/db_migrate/app.py` under a new name: no state carried from another test."""
    spec = importlib.util.spec_from_file_location(
        f"ops_fn_DbMigrateFunction_{uuid.uuid4().hex}", HANDLER_FILE
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def context() -> LocalContext:
    return LocalContext(
        "DbMigrateFunction",
        "arn:aws:lambda:us-east-1:123456789012:function:DbMigrateFunction",
        aws_request_id=str(uuid.uuid4()),
        log_group_name="/aws/lambda/ops-pipeline/DbMigrateFunction",
        log_stream_name="2026/01/01/[$LATEST]0123456789abcdef",
    )


def event(endpoint: ResponseEndpoint, request_type: str, **extra: Any) -> dict[str, Any]:
    loaded = json.loads(EVENT_FILE.read_text(encoding="utf-8"))
    loaded.update(RequestType=request_type, ResponseURL=endpoint.url, **extra)
    loaded["RequestId"] = str(uuid.uuid4())
    return loaded


def invoke(
    endpoint: ResponseEndpoint,
    request_type: str,
    ctx: Any = None,
    sleep: Any = None,
    **extra: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run the handler once (freshly loaded); return its result, the response PUT and the event.

    With `sleep`, the request goes through `handle_request` on that clock instead of the real one.
    """
    sent = event(endpoint, request_type, **extra)
    before = len(endpoint.requests)
    module = load_handler_module()
    if sleep is None:
        result = module.lambda_handler(copy.deepcopy(sent), ctx or context())
    else:
        result = module.handle_request(copy.deepcopy(sent), ctx or context(), sleep=sleep)
    assert len(endpoint.requests) == before + 1, "exactly one response per request"
    request = endpoint.requests[-1]
    assert request.method == "PUT"
    return result, request.body, sent


def assert_echoes(body: dict[str, Any], sent: dict[str, Any]) -> None:
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert body[key] == sent[key]
    assert set(body) >= {"Status", "Reason", "PhysicalResourceId", "Data"}
    assert len(json.dumps(body).encode()) <= 4096  # CloudFormation's limit


def tables(url: str) -> dict[str, int]:
    conn = connect(parse_database_url(url))
    try:
        names = [
            row[0]
            for row in conn.run(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' ORDER BY table_name"
            )
        ]
        return {name: conn.run(f'SELECT count(*) FROM "{name}"')[0][0] for name in names}
    finally:
        conn.close()


def recorded_migrations(url: str) -> list[str]:
    conn = connect(parse_database_url(url))
    try:
        rows = conn.run("SELECT version, name FROM schema_migrations ORDER BY version")
        return [f"{version:03d}_{name}" for version, name in rows]
    finally:
        conn.close()


def test_create_applies_every_migration(empty_database: str, endpoint: ResponseEndpoint) -> None:
    assert ALL_MIGRATIONS, "no migration files found"
    assert tables(empty_database) == {}

    result, body, sent = invoke(endpoint, "Create")

    assert_echoes(body, sent)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == "DbMigration-schema"
    assert body["Data"] == {
        "Applied": ",".join(ALL_MIGRATIONS),
        "AppliedCount": str(len(ALL_MIGRATIONS)),
    }
    assert body["Reason"].startswith(f"applied {len(ALL_MIGRATIONS)} migration(s)")
    assert result == {"status": "SUCCESS", "applied": ALL_MIGRATIONS}
    assert recorded_migrations(empty_database) == ALL_MIGRATIONS
    assert "feed_state" in tables(empty_database)
    request = endpoint.requests[0]
    assert request.path.endswith(SIGNATURE)  # PUT to the pre-signed URL as given
    assert request.headers.get("Content-Type", "") == ""  # S3 signs an empty content type


def test_update_applies_nothing_and_keeps_the_physical_id(
    empty_database: str, endpoint: ResponseEndpoint
) -> None:
    _, created, _ = invoke(endpoint, "Create")
    assert created["Status"] == "SUCCESS", created["Reason"]
    physical_id = created["PhysicalResourceId"]
    before = tables(empty_database)

    result, body, sent = invoke(
        endpoint,
        "Update",
        PhysicalResourceId=physical_id,
        OldResourceProperties={"MigrationsVersion": "previous"},
    )

    assert_echoes(body, sent)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == physical_id
    assert body["Data"] == {"Applied": "none", "AppliedCount": "0"}
    assert result == {"status": "SUCCESS", "applied": []}
    assert recorded_migrations(empty_database) == ALL_MIGRATIONS
    assert tables(empty_database) == before


def test_delete_leaves_the_schema_and_data(empty_database: str, endpoint: ResponseEndpoint) -> None:
    _, created, _ = invoke(endpoint, "Create")
    physical_id = created["PhysicalResourceId"]
    conn = connect(parse_database_url(empty_database))
    try:
        conn.run(
            "INSERT INTO feed_state (feed_url, feed_name) VALUES (:u, :n)",
            u="https://example.com/rss",
            n="example",
        )
    finally:
        conn.close()
    before = tables(empty_database)
    assert before["feed_state"] == 1

    result, body, sent = invoke(endpoint, "Delete", PhysicalResourceId=physical_id)

    assert_echoes(body, sent)
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert body["PhysicalResourceId"] == physical_id
    assert result["status"] == "SUCCESS"
    assert tables(empty_database) == before
    assert recorded_migrations(empty_database) == ALL_MIGRATIONS


def test_delete_does_not_touch_the_database(
    monkeypatch: pytest.MonkeyPatch, endpoint: ResponseEndpoint
) -> None:
    # Deleting a stack whose database is already gone must still succeed.
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/gone")
    _, body, _ = invoke(endpoint, "Delete", PhysicalResourceId="DbMigration-schema")
    assert body["Status"] == "SUCCESS", body["Reason"]


def test_unreachable_database_fails_fast_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
    endpoint: ResponseEndpoint,
    capfd: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://opsuser:{PASSWORD}@127.0.0.1:1/ops_pipeline")

    clock = FakeClock()
    result, body, sent = invoke(endpoint, "Create", sleep=clock.sleep)

    # One minute left is less than the time reserved for migrations: no wait, no second try.
    assert clock.sleeps == []
    assert_echoes(body, sent)
    assert body["Status"] == "FAILED"
    assert body["PhysicalResourceId"] == "DbMigration-schema"
    assert "ConnectionRefusedError" in body["Reason"]
    assert "log stream: 2026/01/01/[$LATEST]0123456789abcdef" in body["Reason"]
    assert result["status"] == "FAILED"
    raw = json.dumps(body)
    assert PASSWORD not in raw
    assert PASSWORD not in json.dumps(result)
    captured = capfd.readouterr()
    records = [{**vars(r), "message": r.getMessage()} for r in caplog.records]
    logs = captured.out + captured.err + json.dumps(records, default=str)
    assert "migration custom resource failed" in logs  # the logs were captured
    assert PASSWORD not in logs
    assert SIGNATURE not in logs  # the pre-signed URL is never logged


def test_missing_database_settings_fail(
    monkeypatch: pytest.MonkeyPatch, endpoint: ResponseEndpoint
) -> None:
    for name in ("DATABASE_URL", "DB_HOST", "DB_NAME", "DB_USER"):
        monkeypatch.delenv(name, raising=False)
    _, body, _ = invoke(endpoint, "Update", PhysicalResourceId="DbMigration-schema")
    assert body["Status"] == "FAILED"
    assert "DatabaseConfigError" in body["Reason"]
    assert "DB_HOST" in body["Reason"]
    assert body["PhysicalResourceId"] == "DbMigration-schema"


def test_missing_database_fails_without_password(
    database_server: str, monkeypatch: pytest.MonkeyPatch, endpoint: ResponseEndpoint
) -> None:
    # The server answers, but the database does not exist; a password in the URL stays private.
    target = parse_database_url(database_server)
    missing = f"ops_missing_{uuid.uuid4().hex[:8]}"
    if target.unix_socket_dir:
        url = f"postgresql://postgres:{PASSWORD}@/{missing}?host={target.unix_socket_dir}&port={target.port}"
    else:
        url = f"postgresql://postgres:{PASSWORD}@{target.host}:{target.port}/{missing}"
    monkeypatch.setenv("DATABASE_URL", url)

    _, body, _ = invoke(endpoint, "Create")

    assert body["Status"] == "FAILED"
    assert missing in body["Reason"]
    assert PASSWORD not in json.dumps(body)


def test_unknown_request_type_fails(endpoint: ResponseEndpoint) -> None:
    result, body, _ = invoke(endpoint, "Replace")
    assert body["Status"] == "FAILED"
    assert "Replace" in body["Reason"]
    assert result["status"] == "FAILED"


class FakeClock:
    """The handler's clock in these tests: `sleep` moves it on at once and records each wait."""

    def __init__(self, on_sleep: Any = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self._on_sleep:
            self._on_sleep(len(self.sleeps))


class DeadlineContext(LocalContext):
    """A context whose remaining time runs down with the test's clock, as Lambda's does."""

    def __init__(self, clock: FakeClock, remaining_ms: int) -> None:
        super().__init__("DbMigrateFunction", "arn:aws:lambda:::function:DbMigrateFunction")
        self._clock = clock
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._remaining_ms - int(self._clock.now * 1000), 0)


def test_connection_retries_stop_before_the_time_reserved_for_migrations(
    monkeypatch: pytest.MonkeyPatch, endpoint: ResponseEndpoint
) -> None:
    # Nothing listens on port 1: every attempt is refused by the real socket.
    monkeypatch.setenv("DATABASE_URL", f"postgresql://opsuser:{PASSWORD}@127.0.0.1:1/ops_pipeline")
    module = load_handler_module()
    clock = FakeClock()

    # 5 minutes left, 2 of them reserved for the migrations: 3 minutes of connection attempts.
    result = module.handle_request(
        event(endpoint, "Create"), DeadlineContext(clock, 300_000), sleep=clock.sleep
    )

    # 5 s, doubling up to 30 s, while a wait still ends before the reserved 120 s.
    assert clock.sleeps == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0, 30.0]
    assert clock.now <= (300_000 - module.RESERVED_FOR_MIGRATIONS_MS) / 1000
    body = endpoint.only()
    assert body["Status"] == "FAILED"
    assert "ConnectionRefusedError" in body["Reason"]
    assert result["status"] == "FAILED"
    assert PASSWORD not in json.dumps(body)


def test_connection_retry_recovers_when_the_database_comes_up(
    empty_database: str, monkeypatch: pytest.MonkeyPatch, endpoint: ResponseEndpoint
) -> None:
    # The proxy's target registers during the second wait: until then nothing answers.
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/none")

    def database_comes_up(waits: int) -> None:
        if waits == 2:
            monkeypatch.setenv("DATABASE_URL", empty_database)

    clock = FakeClock(on_sleep=database_comes_up)
    module = load_handler_module()

    result = module.handle_request(
        event(endpoint, "Create"), DeadlineContext(clock, 900_000), sleep=clock.sleep
    )

    assert clock.sleeps == [5.0, 10.0]  # two refused attempts, the third connects
    body = endpoint.only()
    assert body["Status"] == "SUCCESS", body["Reason"]
    assert result["applied"] == ALL_MIGRATIONS
    assert recorded_migrations(empty_database) == ALL_MIGRATIONS


def test_an_open_order_written_before_partial_fills_counted_starts_at_zero_filled(conn) -> None:
    """Migration 009: a `submitted` row that kept the requested quantity in `qty` (as rows did
    before open orders recorded what they had filled) moves it to `requested_qty`; final rows keep
    theirs."""
    from datetime import UTC, datetime

    from recommendations import recommend

    from ops_pipeline.migrate import available_migrations

    minute = datetime(2019, 2, 12, 15, 0, tzinfo=UTC)
    for n, (ticker, status) in enumerate((("AAPL", "submitted"), ("MSFT", "filled"))):
        conn.run(
            "INSERT INTO dispatch_executions (recommendation_id, ticker, side, qty, mode,"
            " client_order_id, status, decided_at)"
            " VALUES (:r, :t, 'buy', 5, 'paper', :coid, :s, :d)",
            r=recommend(conn, ticker, "BUY", minute),
            t=ticker,
            coid=f"ops-test-{n}",
            s=status,
            d=minute,
        )
    (step,) = [m for m in available_migrations() if m.version == 9]
    conn.run(step.sql)
    rows = conn.run("SELECT ticker, qty, requested_qty FROM dispatch_executions ORDER BY ticker")
    assert [(t, float(q), r and float(r)) for t, q, r in rows] == [
        ("AAPL", 0.0, 5.0),
        ("MSFT", 5.0, None),
    ]


def test_a_migration_statement_waits_past_the_connect_timeout(database_url: str) -> None:
    """The connect timeout bounds every wait for the server (pg8000 takes one timeout), so a
    migration lifts it: an index built on a large table answers minutes later. The deploy's
    migration waits until its guard answers CloudFormation, `ops-pipeline db migrate` without a
    bound (`db.wait_for_statements`)."""
    import pg8000.exceptions

    from ops_pipeline.db import wait_for_statements

    target = parse_database_url(database_url)
    bounded = connect(target, timeout=0.5)
    try:
        with pytest.raises((pg8000.exceptions.InterfaceError, TimeoutError)):
            bounded.run("SELECT pg_sleep(1.2)")  # a slow statement, as a large index build
    finally:
        bounded.close()
    lifted = connect(target, timeout=0.5)
    try:
        wait_for_statements(lifted, 10)
        assert lifted.run("SELECT pg_sleep(1.2), 1")[0][1] == 1
        wait_for_statements(lifted, None)
        assert lifted.run("SELECT pg_sleep(1.2), 2")[0][1] == 2
    finally:
        lifted.close()
