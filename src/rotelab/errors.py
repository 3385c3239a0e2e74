"""The one error type users see: a single line, exit code 2, no traceback."""


class RotelabError(Exception):
    """A problem with the user's input (file, line, field, option) or environment.

    The CLI prints ``str(err)`` on one line and exits with code 2.
    """

    exit_code = 2
