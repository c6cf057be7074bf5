"""`Custom::DbMigration`: apply the numbered SQL migrations on every deploy that changes them.

CloudFormation invokes this function with a Create, Update or Delete request and then waits for a
JSON document PUT to the request's pre-signed `ResponseURL` (the documented custom resource
protocol; crhelper is not in the layer, so it is done here with urllib). Whatever happens, a
response is sent: SUCCESS with the migrations applied, or FAILED with the reason, and a timer sends
FAILED shortly before the Lambda timeout, so a deploy never hangs waiting for us.

- Create / Update: connect (RDS Proxy, IAM token, TLS: the `DB_*` variables), retrying the
  connection while the proxy's target is still registering, then `migrate(conn)`.
- Delete: nothing (the data outlives the stack's migration record); SUCCESS.

The template re-runs this on every deploy whose shared layer (which carries the migrations) or
`MigrationsVersion` parameter changed, because either changes the resource's properties.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from ops_pipeline.db import DatabaseConfigError, connect, wait_for_statements
from ops_pipeline.migrate import migrate
from ops_pipeline.observability import logger

SUCCESS = "SUCCESS"
FAILED = "FAILED"

# Keep retrying the connection until this much of the invocation is left for the migrations.
RESERVED_FOR_MIGRATIONS_MS = 120_000
# Send FAILED this long before the Lambda timeout if we are still busy.
TIMEOUT_GUARD_MS = 10_000
CONNECT_RETRY_FIRST_DELAY_S = 5.0
CONNECT_RETRY_MAX_DELAY_S = 30.0
RESPONSE_PUT_TIMEOUT_S = 30
RESPONSE_PUT_ATTEMPTS = 3
# CloudFormation rejects responses over 4096 bytes.
MAX_REASON_CHARS = 1000
MAX_APPLIED_CHARS = 2000


Sleep = Callable[[float], None]


class _Responder:
    """Sends the one response CloudFormation waits for, exactly once."""

    def __init__(self, event: dict[str, Any], context: Any, sleep: Sleep = time.sleep) -> None:
        self._event = event
        self._context = context
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent = False
        self._log_stream = getattr(context, "log_stream_name", "?")

    def send(
        self,
        status: str,
        reason: str,
        data: dict[str, Any] | None = None,
        physical_id: str | None = None,
    ) -> bool:
        with self._lock:
            if self._sent:
                return False
            self._sent = True
        event = self._event
        body = json.dumps(
            {
                "Status": status,
                "Reason": f"{reason} (log stream: {self._log_stream})"[:MAX_REASON_CHARS],
                "PhysicalResourceId": physical_id or _physical_id(event),
                "StackId": event.get("StackId", ""),
                "RequestId": event.get("RequestId", ""),
                "LogicalResourceId": event.get("LogicalResourceId", ""),
                "NoEcho": False,
                "Data": data or {},
            }
        ).encode("utf-8")
        # The ResponseURL is a pre-signed S3 URL: never log it.
        request = urllib.request.Request(
            event["ResponseURL"],
            data=body,
            method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(body))},
        )
        for attempt in range(1, RESPONSE_PUT_ATTEMPTS + 1):
            try:
                with urllib.request.urlopen(request, timeout=RESPONSE_PUT_TIMEOUT_S) as response:
                    logger.info(
                        "custom resource response sent",
                        extra={"status": status, "http_status": response.status},
                    )
                    return True
            except Exception as exc:
                logger.warning(
                    "could not send the custom resource response",
                    extra={"attempt": attempt, "error": f"{type(exc).__name__}: {exc}"},
                )
                self._sleep(min(2**attempt, 5))
        logger.error("gave up sending the custom resource response; the stack will time out")
        return False


def _physical_id(event: dict[str, Any]) -> str:
    # Keep the id stable across updates: a new id would make CloudFormation send a Delete for
    # the old one.
    return (
        event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'DbMigration')}-schema"
    )


def _remaining_ms(context: Any) -> int:
    getter = getattr(context, "get_remaining_time_in_millis", None)
    return int(getter()) if callable(getter) else 900_000


def _connect_with_retries(context: Any, sleep: Sleep = time.sleep):
    """Connect, retrying while the proxy target is still registering (it can take minutes).

    The waits go through `sleep` and the time left is the context's, so a test can run the loop
    on a clock of its own.
    """
    delay = CONNECT_RETRY_FIRST_DELAY_S
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect()
        except DatabaseConfigError:
            raise  # settings missing: a retry will not help
        except Exception as exc:  # network, TLS, auth while the proxy target registers
            left = _remaining_ms(context) - RESERVED_FOR_MIGRATIONS_MS
            if left <= delay * 1000:
                raise
            logger.warning(
                "database not reachable yet; retrying",
                extra={
                    "attempt": attempt,
                    "retry_in_s": delay,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            sleep(delay)
            delay = min(delay * 2, CONNECT_RETRY_MAX_DELAY_S)


def _run_migrations(context: Any, sleep: Sleep) -> list[str]:
    conn = _connect_with_retries(context, sleep)
    try:
        # A statement may take minutes (an index on a large table): wait for it until the guard
        # answers CloudFormation, not the connect timeout.
        wait_for_statements(conn, max(_remaining_ms(context) - TIMEOUT_GUARD_MS, 1_000) / 1000)
        return migrate(conn)
    finally:
        try:
            conn.close()
        except Exception as exc:
            logger.debug("closing the connection failed", extra={"error": str(exc)})


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_request(event, context)


def handle_request(
    event: dict[str, Any], context: Any, sleep: Sleep = time.sleep
) -> dict[str, Any]:
    """Answer one custom resource request; every wait goes through `sleep`."""
    request_type = event.get("RequestType", "?")
    logger.append_keys(
        request_type=request_type,
        logical_resource_id=event.get("LogicalResourceId"),
        stack_id=event.get("StackId"),
    )
    responder = _Responder(event, context, sleep)

    guard_s = max((_remaining_ms(context) - TIMEOUT_GUARD_MS) / 1000, 1)
    guard = threading.Timer(
        guard_s,
        lambda: responder.send(FAILED, "migrations did not finish before the Lambda timeout"),
    )
    guard.daemon = True
    guard.start()
    try:
        if request_type == "Delete":
            responder.send(SUCCESS, "nothing to undo: the schema stays with the database")
            return {"status": SUCCESS, "applied": []}
        if request_type not in ("Create", "Update"):
            responder.send(FAILED, f"unknown RequestType {request_type!r}")
            return {"status": FAILED, "applied": []}

        applied = _run_migrations(context, sleep)
        logger.info("migrations applied", extra={"applied": applied})
        summary = ",".join(applied) if applied else "none"
        responder.send(
            SUCCESS,
            f"applied {len(applied)} migration(s)",
            data={"Applied": summary[:MAX_APPLIED_CHARS], "AppliedCount": str(len(applied))},
        )
        return {"status": SUCCESS, "applied": applied}
    except Exception as exc:
        logger.exception("migration custom resource failed")
        responder.send(FAILED, f"{type(exc).__name__}: {exc}")
        return {"status": FAILED, "applied": [], "error": f"{type(exc).__name__}: {exc}"}
    finally:
        guard.cancel()
