"""Logging and error handling shared by the pipeline's rule scripts."""

from __future__ import annotations

import logging
import sys

# Errors a user can cause (bad data, bad files, bad config): one line, no traceback on the console.
# Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError)


def configure_logging(log_path: str | None, level=logging.INFO) -> None:
    """Everything to the rule's log file; only warnings and errors to the console, where parallel
    jobs would otherwise interleave their progress lines (a terminal gets a progress bar instead)."""
    console = logging.StreamHandler(sys.stderr)
    handlers = [console]
    if log_path:
        console.setLevel(logging.WARNING)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)


def run_script(main, smk) -> None:
    """Run a rule script's main(smk): log to the rule's log file, user errors as one line, exit 1."""
    configure_logging(smk.log[0] if smk.log else None)
    try:
        main(smk)
    except USER_ERRORS as exc:
        logging.getLogger("inpca").debug("details", exc_info=True)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logging.getLogger("inpca").error("%s", message)
        sys.exit(f"error in rule {smk.rule}: {message}")
