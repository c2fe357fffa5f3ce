"""Errors a user can cause, reported as a clear message and a non-zero exit, not a traceback."""


class UserError(Exception):
    """A problem with the user's input (data, parameters, paths) rather than a bug."""
