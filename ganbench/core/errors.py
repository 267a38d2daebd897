"""The one exception type for errors a user can cause.

Its message says what was expected and how to fix it; the CLI prints it and exits with code 2
(no traceback). Internal invariants use ``assert`` instead.
"""


class GanbenchError(Exception):
    """A user-facing error: bad input, missing data, invalid protocol, ..."""
