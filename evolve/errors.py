"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""


class AdrsError(Exception):
    """Bad input a user can fix: a wrong name, a malformed file, an unknown key."""
