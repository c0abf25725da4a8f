"""The trajectory stage (inpca.trajectory_files): plans instead of stored reindexed probabilities, the
models at equal progress computed from the store, and the distances between trajectories from them."""

import h5py
import numpy as np
import pytest

from inpca.distances import pairwise
from inpca.files import open_h5
from inpca.runfile import write_run
from inpca.store import build_block, write_reference
from inpca.trajectories import (geodesic_trajectory, index_grid, index_values, interpolate_rows, reindex,
                                reindex_metrics)
from inpca.trajectory_files import ReindexedBlock, equal_progress_tile, plan_block, write_trajectory_index

DIGITS = {"name": "digits", "test_fraction": 0.25, "split_seed": 0, "keep_every": 4}
POINTS = 12


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """A reference block and two store blocks of digits runs that learn at different speeds; one run
    starts past the first t_k (a sharp start) and one never reaches the last (it stops early)."""
    from inpca.data import load_study_dataset

    folder = tmp_path_factory.mktemp("stage")
    dataset = load_study_dataset(DIGITS)
    write_reference(folder / "ref.h5", DIGITS, geodesic_points=3)
    rng = np.random.default_rng(0)
    blocks = {}
    for b, speeds in (("b000", (0.5, 1.0, 3.0)), ("b001", (0.8, 2.0))):
        runs = []
        for i, speed in enumerate(speeds):
            k = 6 + i
            probs = {}
            for split, y in (("train", dataset.y_train), ("test", dataset.y_test)):
                learned = np.linspace(0.0, 1.0, k) ** (1 / speed) * (0.5 if speed < 0.6 else 4.0)
                start = 3.0 if speed > 2 else 0.0  # this run's first checkpoint is already past t_1
                logits = rng.normal(size=(k, len(y), 10)) * 0.3 + (start + learned)[:, None, None] * np.eye(10)[y]
                p = np.exp(logits)
                probs[split] = (p / p.sum(-1, keepdims=True)).astype(np.float32)
            attrs = {"run_id": f"fc-sgd-s{i}-{b[-1]}000000{i}", "config": '{"seed": %d}' % i, "dataset": dataset.name,
                     "fingerprint": dataset.fingerprint, "num_classes": 10, "n_train": len(dataset.y_train),
                     "n_test": len(dataset.y_test)}
            metrics = {m: np.linspace(1, 0, k) for m in ("train_loss", "train_error", "test_loss", "test_error")}
            write_run(folder / f"{b}-{i}.h5", probs, np.arange(k) * 5, np.arange(k) / 2.0, metrics, attrs)
            runs.append(folder / f"{b}-{i}.h5")
        build_block(folder / f"{b}.h5", runs, folder / "ref.h5")
        blocks[b] = folder / f"{b}.h5"
    for b in ("ref", *blocks):
        plan_block(folder / f"{b}.h5" if b != "ref" else folder / "ref.h5", folder / "ref.h5", folder / f"plan-{b}.h5",
                   points=POINTS)
    return folder


def reindexed_as_before(folder, block, split):
    """What the previous pipeline stored for a block: every run reindexed (inpca.trajectories.reindex)."""
    with open_h5(folder / f"{block}.h5") as f:
        runs = [r.decode() for r in f["run"][()]]
        out = []
        for run in dict.fromkeys(runs):
            rows = [i for i, r in enumerate(runs) if r == run]
            where = slice(rows[0], rows[-1] + 1)
            values = index_values(f[f"progress_{split}"][where], f["train_error"][where], "progress")
            out.append(reindex(f[f"{split}_probs"][where], values, index_grid(POINTS)))
    return np.stack(out)


@pytest.mark.parametrize("split", ["train", "test"])
def test_the_models_from_the_store_are_the_reindexed_trajectories_bit_for_bit(stage, split):
    for block in ("b000", "b001"):
        before = reindexed_as_before(stage, block, split)
        with ReindexedBlock(stage / f"{block}.h5", stage / f"plan-{block}.h5", stage / "ref.h5", split) as now:
            assert len(now) == before.shape[0]
            for r in range(len(now)):
                assert np.array_equal(now.trajectory(r), before[r].astype(np.float32))
            for k in range(POINTS):
                assert np.array_equal(now.at(k), before[:, k].astype(np.float32))
        with h5py.File(stage / f"plan-{block}.h5", "r", locking=False) as plan:
            loss, error = zip(*(reindex_metrics(t, plan_labels(stage, split)) for t in before))
            # the float64 models' class sums may round in another order than numpy's: the last bit or two
            np.testing.assert_allclose(plan[f"{split}_loss"][()], np.stack(loss), rtol=1e-13, atol=0)
            assert np.array_equal(plan[f"{split}_error"][()], np.stack(error))


def plan_labels(folder, split):
    with h5py.File(folder / "ref.h5", "r", locking=False) as f:
        return f[f"{split}_labels"][()]


def test_the_plans_cover_starting_past_t_and_holding_the_last_checkpoint(stage):
    with h5py.File(stage / "plan-b000.h5", "r", locking=False) as plan:
        rows, fraction = plan["train_rows"][()], plan["train_fraction"][()]
        assert rows.shape == (3, POINTS, 2) and fraction.shape == (3, POINTS)
        held = rows[:, :, 0] == rows[:, :, 1]
        assert held[2, 0]  # the sharp start: its first checkpoint, as stored
        assert held[0, -1]  # the slow run never gets past t = 1: its last checkpoint, held
        assert np.all(np.diff(rows[:, :, 0], axis=1) >= 0)  # checkpoints only go forward with t
        assert np.all((fraction >= 0) & (fraction <= 1))


def test_a_plan_holds_no_probabilities_only_numbers_per_trajectory_and_t(stage):
    with h5py.File(stage / "plan-b000.h5", "r", locking=False) as plan, \
            h5py.File(stage / "b000.h5", "r", locking=False) as block:
        largest = max(plan[name].size for name in plan)
        assert largest <= 3 * POINTS * 2
        assert plan.attrs["store_block"] == "b000" and plan.attrs["points"] == POINTS
        runs, samples, classes = 3, block["train_probs"].shape[1], block["train_probs"].shape[2]
        stored_before = runs * POINTS * samples * classes * 4  # the (R, T, N, C) float32 of the train split alone
        assert (stage / "plan-b000.h5").stat().st_size < stored_before / 20


def test_the_geodesic_is_computed_from_the_labels(stage):
    with ReindexedBlock(stage / "ref.h5", stage / "plan-ref.h5", stage / "ref.h5", "test") as geodesic:
        assert geodesic.run == ["geodesic"] and len(geodesic) == 1
        expected = geodesic_trajectory(plan_labels(stage, "test"), 10, index_grid(POINTS)).astype(np.float32)
        assert np.array_equal(geodesic.trajectory(0), expected)
        assert np.array_equal(geodesic.at(5)[0], expected[5])


def test_walking_up_t_reads_each_checkpoint_once_and_holds_two_per_run(stage):
    reads = []
    with ReindexedBlock(stage / "b000.h5", stage / "plan-b000.h5", stage / "ref.h5", "train") as block:
        probs = block._probs

        class Counting:
            def __getitem__(self, rows):
                reads.extend(range(rows.start, rows.stop) if isinstance(rows, slice) else rows)
                return probs[rows]

        block._probs = Counting()
        for k in range(POINTS):
            block.at(k)
            assert len(block._in_pool) <= 2 * len(block)
    assert len(reads) == len(set(reads))


@pytest.mark.parametrize("pair", [("b000", "b000"), ("b000", "b001"), ("ref", "b001")])
def test_equal_progress_tiles_are_the_distances_between_the_reindexed_trajectories(stage, tmp_path, pair):
    a, b = pair
    store = {"ref": stage / "ref.h5", "b000": stage / "b000.h5", "b001": stage / "b001.h5"}
    out = tmp_path / "tile.h5"
    equal_progress_tile(store[a], stage / f"plan-{a}.h5", store[b], stage / f"plan-{b}.h5", stage / "ref.h5", "train",
                        out, device="cpu")

    def trajectories(block):
        if block == "ref":
            return geodesic_trajectory(plan_labels(stage, "train"), 10, index_grid(POINTS))[None].astype(np.float32)
        return reindexed_as_before(stage, block, "train").astype(np.float32)

    A, B = trajectories(a), trajectories(b)
    with h5py.File(out, "r", locking=False) as f:
        D = f["D"][()]
        assert np.array_equal(f["t"][()], index_grid(POINTS))
    assert D.shape == (POINTS, len(A), len(B))
    for k in range(POINTS):
        expected = pairwise(A[:, k], None if a == b else B[:, k], device="cpu")
        np.testing.assert_allclose(D[k], expected, rtol=1e-12, atol=1e-15)


def test_the_gpu_interpolation_is_the_cpu_one(stage):
    """interpolate_rows's torch path (what a GPU job runs), here on torch's CPU device, against the CPU
    kernel."""
    from inpca.trajectories import _models_at_torch

    with open_h5(stage / "b000.h5") as f:
        lower, upper = f["train_probs"][[0, 6, 13]], f["train_probs"][[1, 7, 14]]
    same, fraction = np.array([False, True, False]), np.array([0.3, 0.0, 1.0])
    np.testing.assert_allclose(_models_at_torch(lower, upper, same, fraction, "cpu"),
                               interpolate_rows(np.concatenate([lower, upper]), [0, 1, 2], [3, 1, 5], fraction,
                                                dtype=np.float64), rtol=0, atol=1e-12)


def test_the_trajectory_index_lists_every_trajectory_in_matrix_order(stage, tmp_path):
    from inpca.store import write_index

    write_index(tmp_path / "points.tsv", {"ref": stage / "ref.h5", "b000": stage / "b000.h5",
                                          "b001": stage / "b001.h5"})
    write_trajectory_index(tmp_path / "index.tsv", {b: stage / f"plan-{b}.h5" for b in ("ref", "b000", "b001")},
                           tmp_path / "points.tsv")
    lines = (tmp_path / "index.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert [r["run"] for r in rows][0] == "geodesic" and len(rows) == 6
    assert [r["point"] for r in rows] == [str(i) for i in range(6)]
    assert all(0 <= float(r["final_index_train"]) <= 1 for r in rows)


def test_a_job_keeps_the_interpolation_within_its_threads_and_gets_the_same_plan(stage, tmp_path):
    import numba

    before = numba.get_num_threads()
    plan_block(stage / "b000.h5", stage / "ref.h5", tmp_path / "plan.h5", points=POINTS, threads=1)
    assert numba.get_num_threads() == before  # restored for whatever the process does next
    with h5py.File(tmp_path / "plan.h5", "r") as one, h5py.File(stage / "plan-b000.h5", "r") as every:
        for name in ("train_rows", "train_fraction", "train_loss", "test_error"):
            assert np.array_equal(one[name][()], every[name][()])
