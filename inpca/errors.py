"""What the project refuses, as one family of exceptions.

An :class:`InpcaError` is input the pipeline declines: a config, a data set, a run file, a store
block, a tile, a device that is not there. Its message is one line that names the file, field or
value and what was expected; rule scripts print that line and nothing else. Any other exception is
a bug: rule scripts keep its full traceback in the job's log (see :mod:`inpca.logs`).

The subclasses stay ``ValueError`` too, so code that catches ``ValueError`` around the package's
functions keeps working.
"""

from __future__ import annotations

from .folders import study_command, study_folder


class InpcaError(Exception):
    """Input that the project refuses; the message is one line naming what is wrong and where."""


class ConfigError(InpcaError, ValueError):
    """A study config that does not match the schema (or a rule the schema cannot express)."""


class DatasetError(InpcaError, ValueError):
    """A data set spec that cannot be loaded, or data that are missing or unreadable."""


class RunFileError(InpcaError, ValueError):
    """A run file (or another HDF5 file of a study) that is missing, truncated or malformed."""


class StoreError(InpcaError, ValueError):
    """Input that the probability store refuses."""


class DeviceError(InpcaError, ValueError):
    """A device asked for that this machine does not have."""


class ResultsError(InpcaError, ValueError):
    """Intermediate results of a study that do not fit together (tiles, index, embedding)."""


class RecorderError(InpcaError, ValueError):
    """Input the recorder refuses, or checkpoints on disk that belong to another recording; one line
    naming the value."""


def first_line(exc: BaseException, typed: bool = False) -> str:
    """The first line of an exception's message (its type's name if it has none); `typed`: prefixed by
    the type's name ("OSError: ..."), for exceptions from other libraries quoted in a refusal."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if typed else lines[0]


def rebuild_hint(path) -> str:
    """The remedy for a damaged file. A file of a study: every file a study keeps is a target of the
    default rule (rules/common.smk), so deleting it and rerunning rebuilds it and what depends on it.
    A file outside every study's results folder (a recording given to the atlas, say) is nobody's
    target: no rerun would make it, so the remedy does not promise one."""
    if study_folder(path) is None:
        return "it is not in a study's results folder, so nothing rebuilds it: record it again or restore a good copy"
    return f"delete it and rerun Snakemake, which rebuilds it: rm {path} && {study_command(path)}"
