"""The atlas: a finished study as a reference map, to place a training in while it runs and to
forecast where it will end.

An atlas is the `results/` folder of a finished study (the default one, a preset, the paper's runs on
a cluster). It keeps what placing needs and nothing else: the reference points' probabilities (every
point, or the landmarks of a landmark study), the fitted InPCA of each split, the labels and the
geodesic, the reference trajectories at equal progress (computed from the store and the trajectory
stage's plans when first asked for) and each reference run's outcome: final errors, losses and
progress, epochs and steps to the speed levels, its configuration.

::

    from inpca.atlas import Atlas
    atlas = Atlas.load("results")                     # refuses an incomplete study in one line
    placement = atlas.place(probs, split="train")     # one checkpoint: coordinates, progress, nearest points
    following = atlas.follow(run)                     # a run so far against every reference trajectory
    forecast = atlas.forecast(following, k=5)         # its end, from the k nearest reference trajectories

Placing is the out-of-sample projection of the map (:meth:`inpca.embedding.InPCA.transform`) from the
checkpoint's distances to the reference points, computed by the kernels and in the sample chunks of
the study's own tiles, so an atlas point lands on its own coordinates. Following reindexes the run on
the atlas' grid t_k (its ``analysis.index``, the rules of :mod:`inpca.trajectories`) up to the index it
has reached, and measures its distance at equal progress to every reference trajectory. The forecast
of the final test error starts from the run itself (:mod:`inpca.atlas.forecast`): its own curve so
far, where its trajectory is, and how its k nearest reference trajectories went on from the same
progress, combined by a small regressor fitted on the atlas' own reference runs, with an 80 % range
that holds at its rate (split-conformal); the other outcomes (and ``final_test_error_neighbours``) are
the distance-weighted mean of the k nearest reference trajectories', with their spread as the range.
The forecast notes when the run is farther from every reference trajectory than two seeds of one of
its configurations are from each other (its seed-to-seed spread), or has not reached the first grid
point (then it rests on the run's own curve).

A new network must be evaluated on the atlas' samples, in their order (:meth:`Atlas.dataset`,
``keep_every`` included); :meth:`inpca.record.Recorder.for_atlas` records on exactly those and, given
the atlas, places every checkpoint as it is recorded. ``python -m inpca.atlas place RUN_FILE...
--atlas RESULTS`` places finished recordings and draws them over the atlas.

With Optuna (``pip install 'inpca[optuna]'``), :class:`AtlasPruner` (:mod:`inpca.atlas.pruner`)
prunes the trials of a study whose forecast says they cannot beat the best so far; it is imported
when first asked for, so ``import inpca.atlas`` works without Optuna.
"""

from .atlas import Atlas, AtlasError, Following, Forecast, Placement

__all__ = ["Atlas", "AtlasError", "AtlasPruner", "Following", "Forecast", "Placement"]


def __getattr__(name):
    if name == "AtlasPruner":  # optuna is optional: imported on first use
        from .pruner import AtlasPruner

        return AtlasPruner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
