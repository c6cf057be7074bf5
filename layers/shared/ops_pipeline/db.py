"""PostgreSQL connections through pg8000.

In AWS a function connects to RDS Proxy with an IAM auth token over TLS (`DB_HOST`, `DB_PORT`,
`DB_NAME`, `DB_USER`, `DB_IAM_AUTH=true`); locally `DATABASE_URL` names the database, including a
unix socket directory as `?host=/path`. Statements are sent with pg8000's unnamed prepared
statements and no session `SET`, so RDS Proxy never pins a connection; the one exception is a
backtest sweep's connection, whose `SET search_path` names its setting's schema
(`ops_pipeline.sweep`): pinned for that invocation, and kept in a cache of its own.

A connection lost during a stage (an idle timeout, a failover, a terminated backend) surfaces as
`errors.DatabaseUnavailable` through `observability.stage_handler`, which also drops every
`ConnectionCache`'s connection, so the state machine's retry connects anew.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import pg8000.converters
import pg8000.native

from ops_pipeline.errors import is_connection_lost
from ops_pipeline.observability import on_connection_lost

__all__ = ["is_connection_lost"]  # re-exported: the classification lives in errors.py


class Connection(Protocol):
    """What this code uses of a `pg8000.native.Connection` (pg8000 ships no type information)."""

    @property
    def columns(self) -> list[dict[str, Any]] | None:
        """The columns of the last statement's rows (each a dict with a `name`), if it had any."""
        ...

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Run one statement and return its rows.

        pg8000 returns None instead for a statement without a result set (`BEGIN`, an `INSERT`
        without `RETURNING`); nothing here reads the result of one, so the type leaves that out.
        """
        ...

    def close(self) -> None: ...


CONNECT_TIMEOUT_SECONDS = 10


class DatabaseConfigError(ValueError):
    """The database settings are missing or malformed."""


@dataclass(frozen=True)
class DatabaseTarget:
    user: str
    database: str
    host: str | None = "127.0.0.1"
    port: int = 5432
    password: str | None = None
    unix_socket_dir: str | None = None
    iam_auth: bool = False
    tls: bool = False

    def describe(self) -> str:
        """Say where this points, without any secret."""
        where = self.unix_socket_dir or f"{self.host}:{self.port}"
        return f"postgresql://{self.user}@{where}/{self.database}"


def parse_database_url(url: str) -> DatabaseTarget:
    """Read `postgresql://user[:password]@host[:port]/dbname[?host=/socket/dir&sslmode=require]`."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DatabaseConfigError(
            f"DATABASE_URL must start with postgresql://, got {parts.scheme!r}"
        )
    query = parse_qs(parts.query)
    database = unquote(parts.path.lstrip("/")) or "postgres"
    socket_dir = query.get("host", [None])[0]
    try:
        port = parts.port or int(query.get("port", ["5432"])[0])
    except ValueError as exc:
        raise DatabaseConfigError(f"DATABASE_URL has a malformed port: {exc}") from None
    return DatabaseTarget(
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        database=database,
        host=None if socket_dir else (parts.hostname or "127.0.0.1"),
        port=port,
        unix_socket_dir=socket_dir,
        tls=query.get("sslmode", ["disable"])[0] in ("require", "verify-ca", "verify-full"),
    )


def target_from_env(env: dict[str, str] | None = None) -> DatabaseTarget:
    """`DATABASE_URL` when set, else the `DB_*` variables the template hands to each function."""
    env = dict(os.environ) if env is None else env
    if env.get("DATABASE_URL"):
        return parse_database_url(env["DATABASE_URL"])
    missing = [name for name in ("DB_HOST", "DB_NAME", "DB_USER") if not env.get(name)]
    if missing:
        raise DatabaseConfigError(f"set DATABASE_URL, or {', '.join(missing)}")
    iam = env.get("DB_IAM_AUTH", "false").lower() == "true"
    return DatabaseTarget(
        user=env["DB_USER"],
        database=env["DB_NAME"],
        host=env["DB_HOST"],
        port=int(env.get("DB_PORT", "5432")),
        iam_auth=iam,
        tls=iam or env.get("DB_TLS", "false").lower() == "true",
    )


def _iam_token(target: DatabaseTarget) -> str:
    import boto3  # only the AWS path needs it

    return boto3.client("rds").generate_db_auth_token(
        DBHostname=target.host, Port=target.port, DBUsername=target.user
    )


def _tcp_socket(target: DatabaseTarget, timeout: float) -> socket.socket:
    # pg8000 leaves Nagle's algorithm on; with PostgreSQL's delayed ACK a statement with a large
    # parameter list (a multi-row upsert) then stalls ~40 ms. Keepalive as pg8000 sets it.
    sock = socket.create_connection((target.host, target.port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


TIMESTAMPTZ_OID = 1184


def connect(
    target: DatabaseTarget | None = None, timeout: float = CONNECT_TIMEOUT_SECONDS
) -> Connection:
    """Open a connection; IAM token and TLS when the target asks for them. `timeout` bounds the
    connect and every wait for the server (a statement included)."""
    target = target or target_from_env()
    kwargs: dict[str, Any] = {
        "user": target.user,
        "database": target.database,
        "timeout": timeout,
        "application_name": "ops-pipeline",
    }
    if target.unix_socket_dir:
        kwargs["unix_sock"] = f"{target.unix_socket_dir}/.s.PGSQL.{target.port}"
    else:
        kwargs["host"] = target.host
        kwargs["port"] = target.port
        kwargs["sock"] = _tcp_socket(target, timeout)
    if target.iam_auth:
        kwargs["password"] = _iam_token(target)
    elif target.password:
        kwargs["password"] = target.password
    if target.tls:
        kwargs["ssl_context"] = ssl.create_default_context()
    conn = pg8000.native.Connection(**kwargs)
    conn.register_in_adapter(TIMESTAMPTZ_OID, timestamptz_in)
    return conn


def wait_for_statements(conn: Connection, seconds: float | None) -> None:
    """Let `conn` wait `seconds` (None: without a bound) for the server's answer to a statement,
    instead of the connect timeout: a migration that builds an index on a large table answers
    only when it is done, minutes later. pg8000 takes one timeout for both; its socket (the TLS
    one when TLS is on) is `_usock` (pg8000 1.31)."""
    sock = getattr(conn, "_usock", None)
    if sock is None:
        raise RuntimeError("pg8000's connection has no socket to set a timeout on (`_usock`)")
    sock.settimeout(seconds)


def _json_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)  # exact: PostgreSQL reads it back as the same numeric
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")


def json_records(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as one JSON document for `json_to_recordset(CAST(:rows AS json)) AS r(col type, ...)`:
    one parameter for a whole batch, encoded in C, where typed arrays (one per column) are
    escaped element by element in Python. Decimals travel as text, so nothing is rounded."""
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def text_array(values: Iterable[str]) -> str:
    """Strings as one PostgreSQL array literal, for `CAST(:param AS text[])`: every element quoted,
    backslash and double quote escaped (so 'NULL' stays a string). pg8000 escapes a list element
    by element in Python; 5,000 tickers cost more than their statement's round trip."""
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


def timestamptz_in(text: str) -> Any:
    """PostgreSQL's timestamptz text as a datetime: `fromisoformat` reads it (Python 3.11+) at a
    tenth of the cost of pg8000's `strptime`, which was a tenth of a replay's time; anything it
    cannot read (infinity, years past 9999) goes to pg8000's own converter."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return pg8000.converters.timestamptz_in(text)


def drop_cached_connections() -> None:
    """Forget every cached connection, so that the next `get()` (the retry) connects anew."""
    for cache in list(_CACHES):
        cache.close()


_CACHES: weakref.WeakSet[ConnectionCache] = weakref.WeakSet()
on_connection_lost(drop_cached_connections)


class ConnectionCache:
    """One connection per Lambda container, reopened when it has gone bad."""

    def __init__(self, target: DatabaseTarget | None = None) -> None:
        self._target = target
        self._conn: Connection | None = None
        _CACHES.add(self)

    def get(self) -> Connection:
        if self._conn is not None:
            try:
                self._conn.run("SELECT 1")
                return self._conn
            except Exception:
                self.close()
        self._conn = connect(self._target)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def rows_as_dicts(conn: Connection, rows: list[list[Any]]) -> list[dict[str, Any]]:
    """Name the columns of the rows that `conn.run` just returned."""
    names = [column["name"] for column in conn.columns or []]
    return [dict(zip(names, row)) for row in rows]


def query(conn: Connection, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Run one statement and return its rows as dicts."""
    rows = conn.run(sql, **params)
    return rows_as_dicts(conn, rows or [])
