"""What the project refuses, as one family of exceptions.

An :class:`InpcaError` is input the pipeline declines: a config, a data set, a run file, a store
block, a tile, a device that is not there. Its message is one line that names the file, field or
value and what was expected; rule scripts print that line and nothing else. Any other exception is
a bug: rule scripts keep its full traceback in the job's log (see :mod:`inpca.logs`).

The subclasses stay ``ValueError`` too, so code that catches ``ValueError`` around the package's
functions keeps working.
"""

from __future__ import annotations


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
