"""One base for the errors a user can cause and fix: a missing file, a corrupt checkpoint, a bad option or
config value, data in the wrong format, a run already holding its folder, a diverged run.

Every such error class subclasses PixarError (some keep a second, builtin base that callers catch, e.g.
ConfigError is also a ValueError, DataNotFound a FileNotFoundError). The commands print a PixarError as
one line naming the problem (harness.cli.errors.one_line_errors); any other exception is a bug and keeps
its traceback.
"""
from __future__ import annotations


class PixarError(Exception):
    """An error caused by the user's input or environment; its message names the problem (file and line
    where there is one) and is shown as one line."""
