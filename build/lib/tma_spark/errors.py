"""User-facing errors.

Every error a user can cause (bad input, bad configuration, an existing output)
is a :class:`TmaSparkError` whose message names the input, the problem and the
fix. The CLI prints the message without a traceback and exits with status 2.
"""

__all__ = ["TmaSparkError", "InputValidationError", "ConfigError"]


class TmaSparkError(Exception):
    """Base class for errors caused by the user's input or environment."""

    exit_code = 2


class InputValidationError(TmaSparkError):
    """An input table or file does not satisfy the lake's contract."""


class ConfigError(TmaSparkError):
    """A configuration value is missing, malformed or out of range."""
