"""One logger, tracer and metrics for every function, applied in one order by `stage_handler`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from ops_pipeline.errors import DatabaseUnavailable, PipelineError, is_connection_lost

logger = Logger()
tracer = Tracer()
metrics = Metrics()

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

_connection_lost_callbacks: list[Callable[[], None]] = []


def on_connection_lost(callback: Callable[[], None]) -> None:
    """Call `callback` when a stage fails on a lost database connection (ops_pipeline.db
    registers the dropping of its cached connections)."""
    _connection_lost_callbacks.append(callback)


def stage_handler(handler: Handler) -> Handler:
    """Wrap a stage's `lambda_handler`: context and execution id in the logs, a trace, metrics flushed.

    The Step Functions execution id travels in the payload as `execution` and is the logs'
    correlation id. A lost database connection (pg8000's "network error", a terminated backend,
    a refused connect) becomes `DatabaseUnavailable`, which every Task state retries, and the
    cached connections are dropped so that the retry connects anew.
    """

    @logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    @functools.wraps(handler)
    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.append_keys(minute=event.get("time"))
        try:
            return handler(event, context)
        except PipelineError:
            raise
        except Exception as exc:
            if not is_connection_lost(exc):
                raise
            for callback in _connection_lost_callbacks:
                callback()
            logger.warning(
                "database connection lost; the state machine retries the stage",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
            raise DatabaseUnavailable(f"database connection lost: {exc}") from exc

    return wrapped
