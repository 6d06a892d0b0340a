"""User-facing errors: the CLI prints these as one line and exits with code 2."""

import difflib


class UserError(Exception):
    """Bad input from the user (a name, a key, a file); never a bug in the harness."""


def closest(name: str, known, prefix: str = "") -> str:
    """' (did you mean X?)' for the nearest known name, or '' when nothing is close."""
    match = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return f" (did you mean '{prefix}{match[0]}'?)" if match else ""
