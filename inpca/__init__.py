"""inpca: trajectories of deep networks in prediction space, Bhattacharyya distances and InPCA.

The package by stage of the pipeline (each rule's script in ``scripts/`` calls one of these):

- the study: :mod:`.config` (the schema, checks, defaults), :mod:`.folders` (a study's folder and the
  commands that make it), :mod:`.study` (runs, ids, blocks, tiles), :mod:`.configurations` (what a
  configuration is: its fields, factors and label, for the analysis and the atlas alike),
  :mod:`.resources` (cluster estimates), :mod:`.devices` (which GPU a job takes);
- networks and data: :mod:`.data`, :mod:`.models`, :mod:`.schedule`, :mod:`.train` (the grid's
  training), :mod:`.corners` (pre-trained starting points), :mod:`.record` (one's own training;
  its checkpoints on disk: :mod:`.recording_folder`),
  :mod:`.adapters` (Lightning, Hugging Face), :mod:`.recordings` (the recordings a study imports, at
  parse time) and :mod:`.imports` (each one into the study, the job);
- files: :mod:`.files` (HDF5, TSV, atomic writes), :mod:`.runfile` (run files), :mod:`.store`
  (blocks of points, the reference points, index.tsv);
- distances: :mod:`.distances` and :mod:`.kernels` (CPU and GPU), :mod:`.tiles` (per pair of blocks);
- the map: :mod:`.embedding` (InPCA), :mod:`.landmarks` (landmark InPCA), :mod:`.distance_checks` (what
  both refuse of a distance matrix), :mod:`.row_blocks` (reading D in row blocks),
  :mod:`.block_eigen` (its eigensolver for distances on disk), :mod:`.embedding_file` (the embed step),
  :mod:`.geodesic` (P0 -> P*, progress), :mod:`.plots` and :mod:`.figures` (the figures);
- whole trajectories: :mod:`.trajectories` (reindexing at equal progress), :mod:`.trajectory_files`
  (the trajectory stage; the interpolation kernel is in :mod:`.kernels`), :mod:`.analysis` (the paper's
  claims, summary.md);
- a finished study as a reference map for new trainings: :mod:`.atlas` (place, follow, forecast; its
  command line);
- for one's own analysis: :mod:`.results` (a finished study in one line).

Errors the project refuses are :mod:`.errors`; rule scripts log through :mod:`.logs`.

Modules import each other downwards only: the base (the study's files, config and folders) below the
computations below the products (the analysis, the plots, the atlas, the recorder, ``results``); the
analysis and the atlas do not import each other; an import inside a function is there only to keep a
heavy or optional library (torch, numba, triton, scikit-learn, scipy's solvers, optuna) out of a
module that does not need it (``tests/unit/test_import_graph.py`` checks all three).

The public API is at the top::

    from inpca import InPCA, Recorder, Atlas, load

:class:`InPCA` (:mod:`.embedding`), :class:`Recorder` (:mod:`.record`), :class:`Atlas` (:mod:`.atlas`)
and :func:`load` (:func:`inpca.results.load`) are imported when first asked for.

This module is imported when Snakemake parses the workflow, so it must stay light: no torch,
h5py or numpy imports here (the names above are resolved lazily, by the module's ``__getattr__``).
Submodules import what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: The public API: name -> the submodule that defines it, imported on first access.
_PUBLIC = {"InPCA": "embedding", "Recorder": "record", "Atlas": "atlas", "load": "results"}

__all__ = ["__version__", *_PUBLIC]

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time the names resolve in __getattr__
    from .atlas import Atlas
    from .embedding import InPCA
    from .record import Recorder
    from .results import load


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted({*globals(), *_PUBLIC})
