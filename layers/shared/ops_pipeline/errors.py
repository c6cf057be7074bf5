"""Domain errors. A stage raises them; the state machine routes them by class name."""


class PipelineError(Exception):
    """Base of the errors a stage raises on purpose."""


class TransientError(PipelineError):
    """A dependency (market data, broker, feed host) failed in a way that a retry may fix."""


class ConfigError(PipelineError):
    """A parameter or secret is missing or malformed: a retry will not fix it."""


class InvalidEventError(PipelineError):
    """The stage's input does not say which minute to act on."""
