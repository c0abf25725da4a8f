"""The embedding step of the pipeline: a split's distance tiles -> `results/embedding/{split}.h5`.

Layout:
  coords (M, k)            InPCA coordinates v·sqrt|λ| of every point, rows in index.tsv order
  eigenvalues (k,)         signed, ordered by |λ| (negative = time-like axis)
  explained_stress (k,)    S(j) = 1 - sqrt(1 - sum_{i<=j} λ_i² / ‖W‖_F²), j = 1..k
  components (M, k), column_means (M,)   what out-of-sample projection needs
  progress (M,), dist_truth (M,)         λ on the P0→P* geodesic and distance to P* (from the store)
  run, kind (M,)                          labels of the rows
  coords_in_train (M, k)   test split only, when asked: the test-split points placed in the axes of
                           the train embedding by out-of-sample projection of their test distances
  landmarks (L,), landmark_weights (L,)   method landmarks only: the rows of the landmark points and
                           how many points each stands for (eigenvalues, explained_stress, components
                           and column_means are then the weighted landmark fit's)
Attributes: split, metric, solver, frobenius_norm, grand_mean, n_points, method (exact | landmarks),
n_landmarks.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time

import numpy as np
from threadpoolctl import threadpool_limits

from .embedding import InPCA
from .errors import ResultsError
from .files import open_h5, write_h5
from .landmarks import WeightedLandmarkInPCA, landmark_inpca
from .resources import IN_MEMORY_POINTS, LANDMARK_IN_MEMORY_ENTRIES
from .tiles import LandmarkColumns, open_tiles

log = logging.getLogger("inpca.embedding")


def _index_columns(index_path, split: str):
    progress, dist = [], []
    with open(index_path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            progress.append(float(row[f"progress_{split}"]))
            dist.append(float(row[f"dist_truth_{split}"]))
    return np.array(progress), np.array(dist)


def load_fitted(path):
    """A fitted InPCA restored from an embedding file: every fitted attribute is set, so transform()
    works and check_is_fitted passes. The file does not record the fit's W-product count, so
    ``n_matvec_`` is 0 (no W-product was computed for this object)."""
    with open_h5(path) as f:
        model = InPCA(n_components=f["eigenvalues"].shape[0])
        if "landmark_weights" in f:
            model = WeightedLandmarkInPCA(n_components=f["eigenvalues"].shape[0])
            model.weights_ = f["landmark_weights"][()]
        model.eigenvalues_ = f["eigenvalues"][()]
        model.components_ = f["components"][()]
        model.coords_ = f["coords"][()]
        model.column_means_ = f["column_means"][()]
        model.grand_mean_ = float(f.attrs["grand_mean"])
        model.explained_stress_ = f["explained_stress"][()]
        model.frobenius_norm_ = float(f.attrs["frobenius_norm"])
        model.solver_ = str(f.attrs["solver"])
        model.n_matvec_ = 0
        model.n_features_in_ = model.components_.shape[0]
    return model


@contextlib.contextmanager
def _distance_matrix(distances, index_path):
    """(D, run, kind, metric, name) from a split's tiles ({(a, b): path}, read in place: distance tiles,
    or landmark tiles, where D is the (M, L) matrix of distances to the landmarks, a LandmarkColumns),
    or from an assembled distance file."""
    if isinstance(distances, dict):
        with open_tiles(distances, index_path) as D:
            yield D, np.array(D.run, dtype="S"), np.array(D.kind, dtype="S"), D.metric, f"the tiles of {index_path}"
    else:
        with open_h5(distances) as f:
            yield f["D"], f["run"][()], f["kind"][()], str(f.attrs["metric"]), str(distances)


def embed(distances, index_path, out_path, *, split: str, n_components: int = 10, solver: str = "auto",
          train_embedding=None, threads: int | None = None) -> dict:
    """Embed one split's distance matrix and write `out_path` (layout: module docstring).

    ``distances``: the split's tiles, {(block_a, block_b): path} (what the pipeline passes: no
    assembled copy of the matrix is needed), or the path of an assembled distance file. Up to
    IN_MEMORY_POINTS points the matrix is read into memory; above, the eigensolver streams it from
    the tiles (solver "auto": the block solver, a few passes that read each tile once). ``threads``
    caps the BLAS threads of the eigensolver and of the projection into the train embedding (None: no
    cap). BLAS otherwise starts one thread per core of the machine, so a job given fewer cores would
    oversubscribe them beside the other jobs.

    Landmark tiles (``embedding.method: landmarks``; the tiles say so): InPCA is fitted on the landmarks'
    own L x L distances and every point is placed by out-of-sample projection from its distances to
    the landmarks (:func:`inpca.landmarks.landmark_inpca`). The file then also holds `landmarks`
    (their rows), and eigenvalues, explained stress and components are the landmark fit's.
    """
    started = time.time()
    with threadpool_limits(limits=threads, user_api="blas"), _distance_matrix(distances, index_path) as source:
        dset, runs, kinds, metric, name = source
        m, columns = dset.shape
        landmarks = dset.landmarks if isinstance(dset, LandmarkColumns) else None
        # an exact matrix is read whole up to IN_MEMORY_POINTS; landmark columns stay on disk unless
        # small (landmark_inpca reads them in two passes of row blocks, so memory stays ~ L x L)
        in_memory = m * columns <= (IN_MEMORY_POINTS ** 2 if landmarks is None else LANDMARK_IN_MEMORY_ENTRIES)
        D = dset[()] if in_memory else dset
        if landmarks is None:
            model = InPCA(n_components=min(n_components, max(m - 1, 1)), solver=solver).fit(D)
            coords = model.coords_
        else:
            fitted = landmark_inpca(D, landmarks, n_components=min(n_components, max(len(landmarks) - 1, 1)),
                                    solver=solver, weights=dset.weights)
            model, coords = fitted.model, fitted.coords
        # what the fit read of the tiles (in memory: one read of the whole matrix)
        bytes_read = getattr(dset, "bytes_read", None)
        coords_in_train = None
        if train_embedding is not None:
            train = load_fitted(train_embedding)
            if train.n_features_in_ != columns:
                raise ResultsError(f"{train_embedding}: was fitted on {train.n_features_in_} points, {name} has "
                                   f"{columns} columns")
            # row blocks: an on-disk matrix is projected without reading it whole
            step = max(1, (256 << 20) // (8 * columns))
            coords_in_train = np.vstack([train.transform(np.asarray(D[i:i + step], dtype=np.float64))
                                         for i in range(0, m, step)])
    progress, dist_truth = _index_columns(index_path, split)
    if len(progress) != m:
        raise ResultsError(f"{index_path}: {len(progress)} points, but {name} has {m}; rerun the store")

    def fill(out):
        for name, value in {"coords": coords, "eigenvalues": model.eigenvalues_,
                            "explained_stress": model.explained_stress_, "components": model.components_,
                            "column_means": model.column_means_, "progress": progress, "dist_truth": dist_truth,
                            "run": runs, "kind": kinds}.items():
            out.create_dataset(name, data=value, track_times=False)
        if coords_in_train is not None:
            out.create_dataset("coords_in_train", data=coords_in_train, track_times=False)
        if landmarks is not None:
            out.create_dataset("landmarks", data=landmarks, track_times=False)
            out.create_dataset("landmark_weights", data=model.weights_, track_times=False)
        out.attrs.update({"split": split, "metric": metric, "solver": model.solver_, "n_points": m,
                          "frobenius_norm": model.frobenius_norm_, "grand_mean": model.grand_mean_,
                          "method": "landmarks" if landmarks is not None else "exact",
                          "n_landmarks": len(landmarks) if landmarks is not None else m})

    write_h5(out_path, fill)
    passes = getattr(model, "n_passes_", None)
    stress = ", ".join(f"S({i + 1})={s:.4f}" for i, s in enumerate(model.explained_stress_[:3]))
    log.info("embedded %s: %d points (%s, %d landmarks), %s solver%s, eigenvalues %s, %s, in %.2f s", split, m,
             "landmarks" if landmarks is not None else "exact", columns, model.solver_,
             f" ({passes} passes over the matrix)" if passes else "",
             np.array2string(model.eigenvalues_[:4], precision=4), stress, time.time() - started)
    return {"eigenvalues": model.eigenvalues_, "explained_stress": model.explained_stress_, "solver": model.solver_,
            "n_passes": passes, "n_matvec": model.n_matvec_, "bytes_read": bytes_read}
