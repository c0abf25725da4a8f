"""Logging and error handling shared by the pipeline's rule scripts.

What the project refuses (an :class:`~inpca.errors.InpcaError`: a bad config, data set, run file,
store block, ...) is one line on the console and in the job's log. So is a write that the operating
system refuses (a full disk or quota, a read-only or failing file system, a permission): that is the
machine, not a bug, and the line names the path and what to free. Anything else is a bug: its full
traceback goes into the job's log file, and the console gets a one-line summary and the log's path.

A log file that cannot be written (the disk is full) is not an error of its own: logging then goes on
to the console only, and the console says that the log is incomplete instead of pointing at it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
from pathlib import Path

from .errors import InpcaError, first_line
from .folders import study_command

log = logging.getLogger("inpca")

# The operating system's refusals to write, by errno: out of space first, then the rest.
_OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_OS_REFUSALS = {**{code: "no space left" for code in _OUT_OF_SPACE},
                errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted", errno.EIO: "input/output error"}
# h5py reports the file of a failed write inside its message: "..., filename = '/x/y.h5.tmp', ..."
_H5_FILENAME = re.compile(r"filename = '([^']+)'")


class _NoTraceback(logging.Formatter):
    """The console formatter: a record's message without its traceback (that is in the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)


class _LogFile(logging.FileHandler):
    """The job's log file; a failed write (disk full) marks it `failed` instead of printing logging's
    "--- Logging error ---" and a traceback on the console."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True

    def flush(self) -> None:
        try:
            super().flush()
        except OSError:
            self.failed = True

    def close(self) -> None:
        try:
            super().close()
        except OSError:
            self.failed = True


_log_file: _LogFile | None = None


def configure_logging(log_path: str | None, level=logging.INFO) -> None:
    """Everything to the rule's log file; only warnings and errors to the console, where parallel
    jobs would otherwise interleave their progress lines (a terminal gets a progress bar instead)."""
    global _log_file
    fmt = "%(asctime)s %(name)s %(levelname)s %(message)s"
    console = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    _log_file = None
    if log_path:
        console.setLevel(logging.WARNING)
        console.setFormatter(_NoTraceback(fmt))
        try:
            _log_file = _LogFile(log_path, mode="w")
        except OSError:  # cannot even create the log (full or read-only disk): the console only
            console.setLevel(level)
        else:
            _log_file.setFormatter(logging.Formatter(fmt))
            handlers.append(_log_file)
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)


def _log_written(log_path: str | None) -> bool:
    """Whether the job's log holds what was logged (it exists and no write to it failed)."""
    if not log_path or _log_file is None:
        return False
    _log_file.flush()
    return not _log_file.failed


def _refused_path(exc: OSError, outputs) -> tuple[str | None, str]:
    """(the file whose write failed, how to say it): the exception's own, h5py's from its message,
    else the job's first output, said as one of the job's outputs."""
    if exc.filename:
        return os.fspath(exc.filename), f" writing {os.fspath(exc.filename)}"
    match = _H5_FILENAME.search(str(exc))
    if match:
        return match.group(1), f" writing {match.group(1)}"
    if outputs:
        return str(outputs[0]), f" writing the outputs of this job ({outputs[0]}{', ...' if len(outputs) > 1 else ''})"
    return None, ""


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MB"


def _largest_folders(path: Path, top: int = 3) -> str:
    """The largest folders of the study next to `path` (its top folder, e.g. results/): what to free."""
    parts = path.parts
    root = Path(parts[0]) if parts and not path.is_absolute() else None
    if root is None or not root.is_dir():
        return ""
    sizes = []
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            total = sum(f.stat().st_size for f in child.rglob("*") if f.is_file() and not f.is_symlink())
            sizes.append((total, child))
    sizes.sort(reverse=True)
    return "; largest there: " + ", ".join(f"{folder}/ {_mb(size)}" for size, folder in sizes[:top]) if sizes else ""


def os_refusal(exc: OSError, outputs=()) -> str | None:
    """One line for a write the operating system refused (see the module docstring), or None for an
    OSError that is not such a refusal. Nothing incomplete is left: every output is written under a
    temporary name that is removed when the write fails."""
    if exc.errno not in _OS_REFUSALS:
        return None

    path, where = _refused_path(exc, outputs)
    rerun = study_command(path)
    if exc.errno in _OUT_OF_SPACE:
        folder = Path(path).parent if path else Path.cwd()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        usage = shutil.disk_usage(folder)
        return (f"no space left on the device{where} ({_mb(usage.free)} free of {_mb(usage.total)} on the file "
                f"system of {folder}{_largest_folders(Path(path)) if path else ''}); free space there (or "
                f"quota) and rerun {rerun}: nothing incomplete was kept")
    return f"{_OS_REFUSALS[exc.errno]}{where} ({first_line(exc)}); fix that and rerun {rerun}"


def run_script(main, smk) -> None:
    """Run a rule script's main(smk) with the rule's log file; exit 1 with one line on failure."""
    log_path = smk.log[0] if smk.log else None
    configure_logging(log_path)
    try:
        main(smk)
    except InpcaError as exc:
        message = first_line(exc)
        log.error("%s", message)
        sys.exit(f"error in rule {smk.rule}: {message}")
    except Exception as exc:
        refusal = os_refusal(exc, list(smk.output)) if isinstance(exc, OSError) else None
        if refusal is not None:
            log.error("%s", refusal)
            sys.exit(f"error in rule {smk.rule}: {refusal}")
        # a bug: keep the evidence
        summary = first_line(exc, typed=True)
        log.error("unexpected error (a bug, please report it with the log): %s", summary, exc_info=True)
        if _log_written(log_path):
            sys.exit(f"error in rule {smk.rule}: {summary}; traceback in {log_path}")
        if log_path:  # the log could not hold it: the evidence goes to the console instead
            import traceback

            traceback.print_exc(file=sys.stderr)
            sys.exit(f"error in rule {smk.rule}: {summary}; the log {log_path} could not be written, "
                     "the traceback is above")
        sys.exit(f"error in rule {smk.rule}: {summary}")
