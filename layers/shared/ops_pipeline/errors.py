"""Domain errors. A stage raises them; the state machine routes them by class name."""

from __future__ import annotations

import socket


class PipelineError(Exception):
    """Base of the errors a stage raises on purpose."""


class TransientError(PipelineError):
    """A dependency (market data, broker, feed host) failed in a way that a retry may fix."""


class ConfigError(PipelineError):
    """A parameter or secret is missing or malformed: a retry will not fix it."""


class InvalidEventError(PipelineError):
    """The stage's input does not say which minute to act on."""


class DatabaseUnavailable(TransientError):
    """The database connection was lost or refused (an idle timeout, a failover, a restart).

    Step Functions matches the class name, not the hierarchy: every Task state's Retry lists
    `DatabaseUnavailable` beside `TransientError`.
    """


# pg8000 raises InterfaceError for a dead socket and for misuse alike: only these mean the first.
_CONNECTION_LOST_MESSAGES = (
    "network error",
    "communication error",
    "connection is closed",
    "can't create a connection",
)
# SQLSTATE class 08 (connection exception); 57P01-57P03: terminated by an administrator, a crash
# or a server that is starting up or shutting down (a failover, pg_terminate_backend).
_CONNECTION_LOST_SQLSTATES = ("57P01", "57P02", "57P03")


def _sqlstate(exc: BaseException) -> str:
    detail = exc.args[0] if exc.args else None
    return str(detail.get("C", "")) if isinstance(detail, dict) else ""


def is_connection_lost(exc: BaseException) -> bool:
    """Did this exception (or one it came from) come from losing the database connection?"""
    import pg8000.exceptions  # in the layer of every function; loaded only when a stage fails

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, pg8000.exceptions.InterfaceError):
            message = str(current).lower()
            if any(phrase in message for phrase in _CONNECTION_LOST_MESSAGES):
                return True
        elif isinstance(current, pg8000.exceptions.DatabaseError):
            code = _sqlstate(current)
            if code.startswith("08") or code in _CONNECTION_LOST_SQLSTATES:
                return True
        elif isinstance(current, (ConnectionError, socket.timeout, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    return False
