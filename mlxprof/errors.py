"""The one error type that the CLI turns into a one-line message and exit code 2."""


class InputError(ValueError):
    """Bad input, detected before any long measurement starts."""


class OutputError(Exception):
    """A write failed after the work was done (disk full, a read-only path):
    the CLI prints one line (saying where a copy was kept) and exits 1."""
