"""How every command reports errors: a PixarError (pixar.errors: bad input, missing data, corrupt checkpoint,
...) or an OSError from the environment (a full disk, a read-only folder) becomes one line (`Error: ...`, exit 1);
anything else is a bug and keeps its traceback. Click's own
errors (usage, bad option values) are click's."""
from __future__ import annotations

import functools
import logging

import click

from pixar.errors import PixarError


def one_line(e: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    msg = str(e).strip()
    return msg.splitlines()[0] if msg else type(e).__name__


def one_line_errors(what: str):
    """Decorator for click commands: a PixarError or OSError becomes a one-line click error (the traceback goes to the
    debug log: `pixar -v ...`); anything else propagates with its traceback."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (PixarError, OSError) as e:  # OSError: the environment (full disk, read-only folder), not a bug
                logging.getLogger(fn.__module__).debug("%s failed", what, exc_info=True)
                raise click.ClickException(one_line(e)) from None
        return wrapper
    return deco
