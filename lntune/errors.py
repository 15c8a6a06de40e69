"""The one error type lntune raises for bad input or bad configuration.

The CLI prints a LntuneError as a single line (`lntune: error: ...`) and exits with status 2; any other
exception is a bug and keeps its traceback.
"""


class LntuneError(Exception):
    """A user-facing error: the message names the file, line, sample or key and what is wrong."""
