"""Errors that are the user's to fix: the CLI prints them as one clear line, no traceback."""


class UserError(ValueError):
    pass


class ConfigError(UserError):
    """A config mistake; the message names the key."""


class DataError(UserError):
    """A data mistake; the message names the file and line."""
