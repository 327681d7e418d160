"""Console logging that never shares a line with a tqdm progress bar.

Log records go through tqdm.write (as tqdm.contrib.logging.logging_redirect_tqdm does), so a bar is cleared, the line printed and the
bar redrawn; metrics are logged as `key=value` pairs with sensible precision (`format_metrics`), never raw dicts.
"""
from __future__ import annotations

import logging
import sys

FORMAT = "%(levelname)s %(name)s: %(message)s"


class TqdmHandler(logging.StreamHandler):
    """Writes each record with tqdm.write: an active bar is cleared first and redrawn after."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Route the root logger through tqdm so progress bars and log lines never interleave on one line."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    handler = TqdmHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
