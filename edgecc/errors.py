"""User-facing errors: one line, exit code 2, never a traceback."""


class EdgeccError(Exception):
    """A problem with the user's input (model, options, data). Printed as one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UnsupportedError(EdgeccError):
    """The model uses an op, attribute or type edgecc cannot compile."""
