"""Where the library's messages go when a command runs: the ``crackkit`` logger on the console.

Library modules log through ``logging.getLogger(__name__)`` (all under ``crackkit``) and never
print. A command (``crackkit ...``, an importer's ``main_from_args``) calls :func:`configure`
once: informational messages go to standard output, warnings and errors to standard error, as
the messages alone; ``quiet`` keeps only warnings and errors. A library user who configures no
logging sees the warnings only (Python's default). A run's own log (``run.log``) is separate
(:func:`crackkit.run.run_logger`).
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure"]

_HANDLER_NAME = "crackkit-console"


class _ConsoleHandler(logging.Handler):
    """INFO and below to the current ``sys.stdout``, WARNING and above to ``sys.stderr`` (both
    looked up at each message, so redirected streams are honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                text = f"crackkit: {record.levelname.lower()}: {text}"
            stream.write(text + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


def configure(quiet: bool = False) -> logging.Logger:
    """Send the ``crackkit`` logger's messages to the console (once; again: only the level)."""
    logger = logging.getLogger("crackkit")
    handler = next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _ConsoleHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    return logger
