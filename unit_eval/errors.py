"""The one error type the CLI turns into a one-line message and exit code 1."""


class UnitEvalError(Exception):
    """A user-facing error: bad input, missing weights, wrong checkpoint format.

    The message must fit on one line and say what to do about it.
    """

