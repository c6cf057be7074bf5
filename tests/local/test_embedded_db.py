import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("OPS_PIPELINE_TEST_EMBEDDED") != "1",
    reason="starts a real PostgreSQL; set OPS_PIPELINE_TEST_EMBEDDED=1",
)


def test_embedded_database_starts_reuses_and_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pg8000.native

    from ops_pipeline_local.embedded_db import embedded_database_url

    monkeypatch.setenv("OPS_PIPELINE_HOME", str(tmp_path / "home"))  # a fresh machine
    url = embedded_database_url()  # starts it (tests time nothing: bench/ does)
    assert embedded_database_url() == url  # second call reuses the running server

    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.username, parts.path) == ("postgresql", "postgres", "/ops_pipeline")
    socket = Path(query["host"]) / f".s.PGSQL.{query.get('port', '5432')}"
    assert socket.is_socket()
    conn = pg8000.native.Connection(user="postgres", unix_sock=str(socket), database="ops_pipeline")
    try:
        assert conn.run("SELECT 1") == [[1]]
    finally:
        conn.close()
