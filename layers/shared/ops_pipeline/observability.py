"""One logger, tracer and metrics for every function, applied in one order by `stage_handler`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def stage_handler(handler: Handler) -> Handler:
    """Wrap a stage's `lambda_handler`: context and execution id in the logs, a trace, metrics flushed.

    The Step Functions execution id travels in the payload as `execution` and is the logs'
    correlation id.
    """

    @logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    @functools.wraps(handler)
    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.append_keys(minute=event.get("time"))
        return handler(event, context)

    return wrapped
