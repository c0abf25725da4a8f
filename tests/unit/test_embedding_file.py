"""The embedding step, inpca.embedding_file: BLAS threads capped at the job's `threads`, refusals of
mismatched inputs as ResultsError, and a restored model that counts as fitted."""

import h5py
import numpy as np
import pytest
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_info

import inpca.embedding
from inpca.embedding_file import embed, load_fitted
from inpca.errors import ResultsError

N_POINTS = 40


def blas_thread_counts():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def write_distance_files(directory, n_points):
    """A distance file as the assembly step writes it (symmetric D, run and kind labels, metric) and
    the store's index.tsv with the train split's columns, for n_points points."""
    directory.mkdir(exist_ok=True)
    points = np.random.default_rng(0).standard_normal((n_points, 3))
    D = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    distances = directory / "train.h5"
    with h5py.File(distances, "w") as f:
        f.create_dataset("D", data=D)
        f.create_dataset("run", data=np.array([f"run{i // 10}".encode() for i in range(n_points)]))
        f.create_dataset("kind", data=np.array([b"checkpoint"] * n_points))
        f.attrs["metric"] = "bhattacharyya"
    index = directory / "index.tsv"
    rows = [f"{i / n_points}\t{1 - i / n_points}" for i in range(n_points)]
    index.write_text("\n".join(["progress_train\tdist_truth_train", *rows]) + "\n")
    return distances, index


@pytest.fixture
def distance_files(tmp_path):
    return write_distance_files(tmp_path / "study", N_POINTS)


def test_embed_runs_blas_with_the_jobs_threads(distance_files, tmp_path, monkeypatch):
    if max(blas_thread_counts(), default=1) <= 1:
        pytest.skip("BLAS already runs one thread here, so a cap at 1 cannot be observed")
    counts_during_fit = []
    fit = inpca.embedding.InPCA.fit

    def recording_fit(self, D, y=None):
        counts_during_fit.extend(blas_thread_counts())
        return fit(self, D, y)

    monkeypatch.setattr(inpca.embedding.InPCA, "fit", recording_fit)
    distances, index = distance_files
    embed(distances, index, tmp_path / "emb.h5", split="train", n_components=3, threads=1)
    assert counts_during_fit and set(counts_during_fit) == {1}
    assert max(blas_thread_counts()) > 1  # the cap ends with the step


def test_embed_refuses_an_index_of_another_size(distance_files, tmp_path):
    distances, index = distance_files
    index.write_text("".join(index.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ResultsError, match="rerun the store"):
        embed(distances, index, tmp_path / "emb.h5", split="train", n_components=3)
    assert not (tmp_path / "emb.h5").exists()


def test_embed_refuses_a_train_embedding_of_another_size(distance_files, tmp_path):
    distances, index = distance_files
    other_train = tmp_path / "other_emb.h5"
    embed(*write_distance_files(tmp_path / "other", N_POINTS + 1), other_train, split="train", n_components=3)
    with pytest.raises(ResultsError, match=f"{N_POINTS + 1} points"):
        embed(distances, index, tmp_path / "emb.h5", split="train", n_components=3, train_embedding=other_train)
    assert not (tmp_path / "emb.h5").exists()


def test_load_fitted_restores_a_fitted_model(distance_files, tmp_path):
    distances, index = distance_files
    out = tmp_path / "emb.h5"
    embed(distances, index, out, split="train", n_components=3)
    model = load_fitted(out)
    check_is_fitted(model)
    assert model.n_features_in_ == N_POINTS and model.solver_ == "dense"
    with h5py.File(distances) as f:
        D = f["D"][()]
    np.testing.assert_allclose(model.transform(D), model.coords_, atol=1e-10)
