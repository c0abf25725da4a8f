"""The paper's claims, measured on one study: numbers behind `results/analysis/{split}/`.

Mao et al. (PNAS 2024) make four claims about the training trajectories of many networks; each
function here measures one of them on the trajectories of a study, reindexed to T equal values
t_k of progress (t = 0 ignorance, t = 1 truth):

1. Architectures, not optimizers or other hyper-parameters, separate the trajectories:
   :func:`configuration_distances` (distances between configurations, for a dendrogram) and
   :func:`factor_effects` (which factor makes two runs' trajectories differ).
2. Trajectories go the same way at different speeds: :func:`speed` (epochs and steps to reach a
   level of progress; are larger networks faster?).
3. Trajectories stay near the P0 -> P* geodesic in narrow tubes: :func:`distance_to_geodesic` and
   :func:`tube_widths` (distance of each seed from its configuration's seed-mean trajectory).
4. The manifold is low-dimensional: the explained stress of the embedding, reported by
   :func:`summary_markdown`.
5. Networks started far from ignorance (pre-trained "corners": random labels, a small subset,
   perturbed weights) converge to the solution along a similar manifold: :func:`corner_distances`
   (distance of corner-started runs from the same training started at the default initialisation,
   against the distance between two seeds of that default training).

Inputs (per data split), assembled by the caller:

* ``dists`` (T, R, R) float: ``dists[k, i, j]`` = Bhattacharyya distance between trajectories i and j
  at the same t_k (symmetric, zero diagonal).
* ``trajectories``: a DataFrame with one row per trajectory in the order of ``dists``: ``run``,
  ``kind`` ("run" or "geodesic"), ``arch``, ``optimizer`` (label), ``parameters``,
  ``final_train_error``, ``final_test_error``, ``diverged``, ``diverged_at_step`` and every config
  field flattened with dots (``arch.name``, ``optimizer.lr``, ``batch_size``, ``seed``, ...), empty
  on the geodesic row.
* ``keep``: a bool array over those rows (from :func:`select_runs`).

A *configuration* is every config field except the seed; runs that differ only in their seed are
seeds of one configuration, and the geodesic is a configuration of its own.

Initialisations ("corners"): a run of grid key ``init`` has config fields ``init.name``
("random_labels", "subsample", "perturbed"), ``init.epochs``, ``init.seed``, ``init.samples``,
``init.scale``, ``init.optimizer.*``, ... A run at the default initialisation has no ``init.*``
values; when a table has any ``init.*`` column, such a run counts as ``init.name = "default"``, so
a corner-started run and the same training from the default start are different configurations
(labels such as ``"fc · random_labels"`` and ``"fc · default init"``). The label columns ``init``
and ``corner`` of the trajectory table are not used (older tables lack them).

Config values are compared after normalisation (see :func:`normalised`): ``0.0`` and ``0``, ``True``
and ``"true"``, ``"[64, 64]"`` and ``"[64,64]"`` are equal, and an empty cell equals NaN, so a
table read back from TSV groups as the in-memory one does.

Bad input raises :class:`inpca.errors.ResultsError` (a ``ValueError``) with one line naming the
argument. Only numpy, pandas, scipy and scikit-learn are used.

The package, by job:

* :mod:`.selection`: input checks, which runs count (:func:`select_runs`) and what a configuration
  is (:func:`configuration_labels`, :func:`configuration_archs`);
* :mod:`.claims`: the measurements, one function per claim (:func:`configuration_distances` …
  :func:`corner_distances`), and the map of whole trajectories (:func:`trajectory_map`);
* :mod:`.summary`: ``summary.md`` from their tables (:func:`summary_markdown`);
* :mod:`.plots`: one figure per table;
* :mod:`.steps`: the pipeline's analysis rules, files in and files out.
"""

from ..configurations import FACTORS, configuration_archs, configuration_labels
from .claims import (
    DEFAULT_LEVELS,
    FACTOR_COLUMNS,
    configuration_distances,
    corner_distances,
    distance_to_geodesic,
    factor_effects,
    run_pairs,
    speed,
    trajectory_map,
    tube_widths,
)
from .selection import select_runs
from .summary import summary_html, summary_markdown

__all__ = [
    "FACTORS",
    "DEFAULT_LEVELS",
    "FACTOR_COLUMNS",
    "select_runs",
    "configuration_labels",
    "configuration_archs",
    "configuration_distances",
    "run_pairs",
    "factor_effects",
    "distance_to_geodesic",
    "tube_widths",
    "speed",
    "corner_distances",
    "trajectory_map",
    "summary_markdown",
    "summary_html",
]
