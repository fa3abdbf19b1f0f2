"""User-facing errors: one line (or one line per item, as for a list of unsupported ops),
exit code 2, never a traceback."""


class EdgeccError(Exception):
    """A problem with the user's input (model, options, data). Printed as one line, or a
    line per detail."""

    exit_code = 2

    def __init__(self, message: str, details=()):
        """``details``: further one-line items (an unsupported op each), printed one per
        line under the message."""
        lines = [" ".join(str(m).split()) for m in (message, *details)]
        super().__init__("\n  ".join(lines))


class UnsupportedError(EdgeccError):
    """The model uses an op, attribute or type edgecc cannot compile."""
