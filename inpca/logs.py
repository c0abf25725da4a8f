"""Logging and error handling shared by the pipeline's rule scripts.

What the project refuses (an :class:`~inpca.errors.InpcaError`: a bad config, data set, run file,
store block, ...) is one line on the console and in the job's log. Anything else is a bug: its full
traceback goes into the job's log file, and the console gets a one-line summary and the log's path.
"""

from __future__ import annotations

import logging
import sys

from .errors import InpcaError

log = logging.getLogger("inpca")


class _NoTraceback(logging.Formatter):
    """The console formatter: a record's message without its traceback (that is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


def configure_logging(log_path: str | None, level=logging.INFO) -> None:
    """Everything to the rule's log file; only warnings and errors to the console, where parallel
    jobs would otherwise interleave their progress lines (a terminal gets a progress bar instead)."""
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
    console = logging.StreamHandler(sys.stderr)
    handlers = [console]
    if log_path:
        console.setLevel(logging.WARNING)
        console.setFormatter(_NoTraceback(fmt))
        file_handler = logging.FileHandler(log_path, mode="w")
        file_handler.setFormatter(logging.Formatter(fmt))
        handlers.append(file_handler)
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run_script(main, smk) -> None:
    """Run a rule script's main(smk) with the rule's log file; exit 1 with one line on failure."""
    log_path = smk.log[0] if smk.log else None
    configure_logging(log_path)
    try:
        main(smk)
    except InpcaError as exc:
        message = _first_line(exc)
        log.error("%s", message)
        sys.exit(f"error in rule {smk.rule}: {message}")
    except Exception as exc:  # a bug: keep the evidence
        summary = f"{type(exc).__name__}: {_first_line(exc)}"
        where = f"; traceback in {log_path}" if log_path else ""
        log.error("unexpected error (a bug, please report it with the log): %s", summary, exc_info=True)
        sys.exit(f"error in rule {smk.rule}: {summary}{where}")
