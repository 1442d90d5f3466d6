"""The one error type that the CLI turns into a one-line message and exit code 2."""


class InputError(ValueError):
    """Bad input, detected before any long measurement starts."""
