"""The one error type lntune raises for bad input or bad configuration.

The CLI prints a LntuneError as a single line (`lntune: error: ...`) and exits with status 2; any other
exception is a bug and keeps its traceback.
"""


class LntuneError(Exception):
    """A user-facing error: the message names the file, line, sample or key and what is wrong."""


def shown(value, limit: int = 60) -> str:
    """repr(value) for a message, cut to `limit` characters: a value from a file can be any size."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
