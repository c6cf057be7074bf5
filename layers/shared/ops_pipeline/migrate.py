"""Numbered SQL migrations, applied once each and recorded in `schema_migrations`.

The same function runs from `ops-pipeline db migrate` and from the CloudFormation custom resource
on deploy. Each migration runs in its own transaction together with its record, under a table lock,
so two concurrent runs apply each file once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from ops_pipeline.db import Connection

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in order."""
    found = []
    for entry in resources.files("ops_pipeline.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number: {sorted(versions)}")
    return sorted(found, key=lambda m: m.version)


def applied_versions(conn: Connection) -> set[int]:
    conn.run(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return {row[0] for row in conn.run("SELECT version FROM schema_migrations")}


def migrate(conn: Connection) -> list[str]:
    """Apply every pending migration; return the names applied."""
    done = applied_versions(conn)
    applied = []
    for migration in available_migrations():
        if migration.version in done:
            continue
        conn.run("BEGIN")
        try:
            conn.run("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            already = conn.run(
                "SELECT 1 FROM schema_migrations WHERE version = :v", v=migration.version
            )
            if not already:
                conn.run(migration.sql)
                conn.run(
                    "INSERT INTO schema_migrations (version, name) VALUES (:v, :n)",
                    v=migration.version,
                    n=migration.name,
                )
                applied.append(f"{migration.version:03d}_{migration.name}")
            conn.run("COMMIT")
        except Exception:
            conn.run("ROLLBACK")
            raise
    return applied
