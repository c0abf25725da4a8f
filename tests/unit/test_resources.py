"""Cluster resource estimates (inpca.resources), computed from real study plans: the repository's
config.yaml, presets/digits-corners.yaml and presets/cifar10-paper.yaml (3,120 runs; its data need
not be on disk). Snakemake takes mem_mb and runtime from these functions (rules/common.smk), retries
with a larger `attempt`, and accepts only positive integers."""

import copy
import math

import h5py
import numpy as np
import pytest
import yaml

from conftest import REPO
from inpca import resources
from inpca.config import ARCHITECTURES, complete_section
from inpca.data import load_dataset, load_study_dataset
from inpca.schedule import checkpoint_steps
from inpca.study import load_study


def merged(base: dict, changes: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def study_of(path: str, **changes):
    """The study of a config file of the repository, with top-level sections changed (merged)."""
    config = yaml.safe_load((REPO / path).read_text())
    return load_study(merged(config, changes), check_data=False)


@pytest.fixture(scope="module")
def default():
    return study_of("config.yaml")


@pytest.fixture(scope="module")
def with_corners():
    return study_of("presets/digits-corners.yaml")


@pytest.fixture(scope="module")
def paper():
    return study_of("presets/cifar10-paper.yaml")


def estimates(study, gpu: bool, attempt: int = 1) -> dict:
    """Every estimate the rules ask for in this study (rules/common.smk), by (function, job)."""
    out = {}
    for rid, run in study.runs.items():
        out["train_mem_mb", rid] = resources.train_mem_mb(run, attempt)
        out["train_runtime", rid] = resources.train_runtime(run, gpu, attempt)
    for cid, corner in study.corners.items():
        out["corner_mem_mb", cid] = resources.corner_mem_mb(corner, attempt)
        out["corner_runtime", cid] = resources.corner_runtime(corner, gpu, attempt)
    for a, b in study.tiles:
        out["tile_mem_mb", a, b] = resources.tile_mem_mb(study, a, b, attempt)
        out["tile_runtime", a, b] = resources.tile_runtime(study, a, b, gpu, attempt)
    for block in study.trajectory_blocks:  # the reindex rule's store_block: ref or a run block
        out["reindex_mem_mb", block] = resources.reindex_mem_mb(study, block, attempt)
    for a, b in study.trajectory_tiles:
        out["trajectory_tile_mem_mb", a, b] = resources.trajectory_tile_mem_mb(study, a, b, attempt)
        out["trajectory_tile_runtime", a, b] = resources.trajectory_tile_runtime(study, a, b, gpu, attempt)
    out["embed_mem_mb"] = resources.embed_mem_mb(study, attempt)
    return out


STUDIES = ["default", "with_corners", "paper"]


# --------------------------------------------------------------------------------------------
# what Snakemake requires: positive integers, larger on every retry


@pytest.mark.parametrize("name", STUDIES)
@pytest.mark.parametrize("gpu", [False, True])
def test_every_estimate_is_a_positive_integer(name, gpu, request):
    study = request.getfixturevalue(name)
    values = estimates(study, gpu)
    assert len(values) > 2 * len(study.runs)
    bad = {job: v for job, v in values.items() if type(v) is not int or v <= 0}
    assert not bad


@pytest.mark.parametrize("name", STUDIES)
def test_every_estimate_grows_with_the_retry_attempt(name, request):
    study = request.getfixturevalue(name)
    first, second, third = (estimates(study, gpu=True, attempt=a) for a in (1, 2, 3))
    for job, value in first.items():
        assert value < second[job] < third[job], job
        if "mem_mb" in job[0]:  # memory scales with the attempt (x2, x3: profiles/slurm retries twice)
            assert second[job] >= 2 * value and third[job] >= 3 * value, job


@pytest.mark.parametrize("name", STUDIES)
def test_gpu_runtimes_are_never_longer_than_cpu_runtimes(name, request):
    study = request.getfixturevalue(name)
    gpu, cpu = estimates(study, gpu=True), estimates(study, gpu=False)
    assert all(gpu[job] <= cpu[job] for job in gpu if "runtime" in job[0])


def test_gpu_runtimes_are_shorter_for_paper_scale_training_and_tiles(paper):
    for run in paper.runs.values():
        assert resources.train_runtime(run, gpu=True) < resources.train_runtime(run, gpu=False)
    a, b = list(paper.blocks)[:2]  # two blocks of ~49 runs of ~65 checkpoints, 25,000 recorded samples
    assert resources.tile_runtime(paper, a, b, gpu=True) < resources.tile_runtime(paper, a, b, gpu=False)


def test_the_throughput_table_has_exactly_the_schemas_architectures(paper):
    table = resources._GPU_IMAGES_PER_S
    assert set(table) == set(ARCHITECTURES)
    assert all(type(rate) is int and rate > 0 for rate in table.values())
    # the paper preset trains every architecture, and each has its own runtime estimate
    assert {run["arch"]["name"] for run in paper.runs.values()} == set(ARCHITECTURES)


# --------------------------------------------------------------------------------------------
# the data and checkpoints the estimates are built from


@pytest.mark.parametrize("spec, full, recorded", [
    ({"name": "digits"}, (1347, 450, 10), (1347, 450, 10)),
    ({"name": "digits", "keep_every": 2}, (1347, 450, 10), (674, 225, 10)),
    ({"name": "digits", "test_fraction": 0.1, "keep_every": 3}, (1617, 180, 10), (539, 60, 10)),
    ({"name": "synthetic", "n_train": 101, "n_test": 37, "num_classes": 3, "keep_every": 4},
     (101, 37, 3), (26, 10, 3)),
])
def test_dataset_size_is_that_of_the_loaded_data(spec, full, recorded):
    spec = complete_section("dataset", spec)
    assert resources.dataset_size(spec, recorded=False) == full
    assert resources.dataset_size(spec) == recorded
    for data, expected in ((load_dataset(spec), full), (load_study_dataset(spec), recorded)):
        assert (len(data.y_train), len(data.y_test), data.num_classes) == expected


def test_cifar10_sizes_with_the_paper_presets_keep_every(paper):
    dataset = paper.config["dataset"]
    assert resources.dataset_size(dataset, recorded=False) == (50_000, 10_000, 10)
    assert resources.dataset_size(dataset) == (25_000, 5_000, 10)  # the preset: "record 25,000 train / 5,000 test"


@pytest.mark.parametrize("checkpoints", [
    {"schedule": "paper"},
    {"schedule": "paper", "early_epochs": 2, "per_epoch": 7},
    {"schedule": "log", "count": 7},
    {"schedule": "log", "count": 200},  # more than the run's 252 steps can give distinct log steps for
])
def test_checkpoints_of_agrees_with_the_schedule(checkpoints):
    study = study_of("config.yaml", checkpoints=checkpoints)
    for run in study.runs.values():
        steps = checkpoint_steps(run["checkpoints"], 1347 // run["batch_size"], run["epochs"])
        assert resources.checkpoints_of(run) == len(steps)
    assert resources.block_points(study, "ref") == study.config["reference"]["geodesic_points"] + 2
    assert resources.study_points(study) == (resources.block_points(study, "ref")
                                             + sum(len(checkpoint_steps(run["checkpoints"], 1347 // 64, 12))
                                                   for run in study.runs.values()))


def test_checkpoints_of_the_paper_preset_are_the_papers(paper):
    """67 checkpoints at batch size 200 and 1000, 62 at 500 (the preset's header)."""
    by_batch = {}
    for run in paper.runs.values():
        by_batch.setdefault(run["batch_size"], set()).add(resources.checkpoints_of(run))
        assert resources.checkpoints_of(run) == len(checkpoint_steps(run["checkpoints"], 50_000 // run["batch_size"],
                                                                     run["epochs"]))
    assert by_batch == {200: {67}, 500: {62}, 1000: {67}}


def test_a_real_training_records_the_checkpoints_and_bytes_the_estimates_assume(tmp_path):
    from inpca.train import train_run

    config = {"dataset": {"name": "digits", "keep_every": 3},
              "grid": [{"arch": {"name": "fc", "width": 8, "depth": 1}, "optimizer": {"name": "sgd", "lr": 0.05},
                        "batch_size": 256, "epochs": 2}],
              "checkpoints": {"schedule": "log", "count": 4, "dtype": "float16"}}
    study = load_study(config)
    (rid, run), = study.runs.items()
    out = tmp_path / "run.h5"
    train_run(run, rid, out, dataset_spec=study.config["dataset"], device="cpu", threads=1)
    n_train, n_test, classes = resources.dataset_size(run["dataset"])
    k = resources.checkpoints_of(run)
    with h5py.File(out, "r") as f:
        assert f["train_probs"].shape == (k, n_train, classes)
        assert f["test_probs"].shape == (k, n_test, classes)
        size = sum(f[name].size * f[name].dtype.itemsize for name in ("train_probs", "test_probs"))
    assert size == resources.run_file_mb(run) * 2**20


# --------------------------------------------------------------------------------------------
# estimates follow the data


def test_tiles_of_larger_blocks_need_more_memory_and_time(default):
    by_points = sorted(default.blocks, key=lambda b: resources.block_points(default, b))
    small, large = by_points[0], by_points[-1]
    assert resources.block_points(default, small) < resources.block_points(default, large)
    assert resources.tile_mem_mb(default, small, small) < resources.tile_mem_mb(default, large, large)
    one_block = study_of("config.yaml", store={"blocks": 1})  # all 32 runs in one block
    (block,) = one_block.blocks
    assert resources.tile_mem_mb(one_block, block, block) > resources.tile_mem_mb(default, large, large)
    assert (resources.trajectory_tile_mem_mb(one_block, block, block)
            > resources.trajectory_tile_mem_mb(default, large, large))
    # the same plan on 200,000 samples: 1,056^2 x 2e5 pair-samples, minutes of CPU for the one tile
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["dataset"] = {"name": "synthetic", "n_train": 200_000, "input_shape": [3, 8, 8]}
    config["store"] = {"blocks": 1}
    many = load_study(config)
    (many_block,) = many.blocks
    assert resources.block_points(many, many_block) == resources.block_points(one_block, block)
    assert (resources.tile_runtime(many, many_block, many_block, gpu=False)
            > resources.tile_runtime(one_block, block, block, gpu=False))


def test_keep_every_2_halves_the_recorded_data():
    full, half = study_of("config.yaml"), study_of("config.yaml", dataset={"keep_every": 2})
    run_full, run_half = next(iter(full.runs.values())), next(iter(half.runs.values()))
    assert resources.checkpoints_of(run_full) == resources.checkpoints_of(run_half)  # training is unchanged
    assert resources.run_file_mb(run_half) / resources.run_file_mb(run_full) == pytest.approx(0.5, rel=1e-2)
    assert resources.train_mem_mb(run_half) < resources.train_mem_mb(run_full)
    block = next(iter(full.blocks))
    assert resources.reindex_mem_mb(half, block) < resources.reindex_mem_mb(full, block)


def test_run_files_follow_dtype_and_checkpoint_count():
    base = study_of("config.yaml", checkpoints={"schedule": "log", "count": 30})
    more = study_of("config.yaml", checkpoints={"schedule": "log", "count": 60})
    half = study_of("config.yaml", checkpoints={"schedule": "log", "count": 30, "dtype": "float16"})
    run, run_more, run_half = (next(iter(s.runs.values())) for s in (base, more, half))
    assert resources.run_file_mb(run_half) == resources.run_file_mb(run) / 2
    assert resources.run_file_mb(run_more) > resources.run_file_mb(run)
    assert resources.train_mem_mb(run_more) > resources.train_mem_mb(run)


def test_a_subset_corner_trains_no_longer_than_a_random_labels_corner(with_corners):
    by_kind = {}
    for corner in with_corners.corners.values():
        by_kind.setdefault(corner["arch"]["name"], {})[corner["init"]["name"]] = corner
    for kinds in by_kind.values():
        subset, labels = kinds["subsample"], kinds["random_labels"]
        assert resources.corner_runtime(subset, gpu=False) <= resources.corner_runtime(labels, gpu=False)
    assert resources.block_points(with_corners, "corners") == 2 * 4 * (19 + 2)  # 4 corners, 2 geodesics each


def test_landmark_points_are_those_the_embedding_picks(with_corners):
    from inpca.landmarks import landmark_rows_every

    for every in (1, 4, 5):
        study = study_of("presets/digits-corners.yaml", embedding={"method": "landmarks", "landmark_every": every})
        runs, index, kinds = [], [], []
        for block in study.point_blocks:
            if block in study.blocks:
                for rid in study.blocks[block]:
                    k = resources.checkpoints_of(study.runs[rid])
                    runs += [rid] * k
                    index += range(k)
                    kinds += ["run"] * k
            else:  # ref and corners: reference points
                m = resources.block_points(study, block)
                runs += [block] * m
                index += range(m)
                kinds += ["reference"] * m
        assert len(runs) == resources.study_points(study)
        assert resources.landmark_points(study) == len(landmark_rows_every(runs, np.array(index), kinds, every))


# --------------------------------------------------------------------------------------------
# orders of magnitude at paper scale (presets/cifar10-paper.yaml)


def test_paper_training_jobs(paper):
    mib = 2**20
    for run in paper.runs.values():
        file_mb = resources.run_file_mb(run)
        # 62-67 checkpoints x 30,000 recorded samples x 10 classes x 4 B: the preset's "80 MB per run file"
        assert 62 * 30_000 * 40 / mib <= file_mb <= 67 * 30_000 * 40 / mib
        # the predictions are held twice while the file is written, plus torch and the data set
        assert 2 * file_mb + 2000 < resources.train_mem_mb(run) < 8000
        assert 10 <= resources.train_runtime(run, gpu=True) <= 24 * 60
    vit = [run for run in paper.runs.values() if run["arch"]["name"] == "vit"]
    # the numbers quoted in profiles/slurm/profile.yaml ("1,782 instead of 46 minutes for a vit run")
    assert max(resources.train_runtime(run, gpu=True) for run in vit) == 46
    assert max(resources.train_runtime(run, gpu=False) for run in vit) == 1782


def test_paper_distance_tiles(paper):
    chunk = paper.config["distance"]["chunk_samples"]
    for a, b in paper.tiles[:100]:
        points = resources.block_points(paper, a) + resources.block_points(paper, b)
        # the two blocks' chunks of 10-class float32 probabilities fit, and a tile fits a GPU node
        assert points * chunk * 10 * 4 / 2**20 < resources.tile_mem_mb(paper, a, b) < 16_000
        assert resources.tile_runtime(paper, a, b, gpu=True) < 60


def test_paper_embedding_memory(paper):
    # M = 204,341 points per split (README: "the preset's 3,120 runs give M ~ 203,000"): the exact
    # embedding streams the 334 GB matrix from its tiles, so its estimate is ~2.5 GB (2,456 MB:
    # 1.5 GB of Python and libraries, 256 MiB row blocks, 40 Lanczos vectors of M per component)
    assert resources.study_points(paper) == 204_341
    assert 2_000 < resources.embed_mem_mb(paper) < 3_000
    # landmarks: every 4th checkpoint of each run and its last, L = 55,301; the L x L float64 matrix
    # (24.5 GB) is in memory, so the estimate must hold it (it did not before: 2,456 MB, killed for memory)
    landmarks = study_of("presets/cifar10-paper.yaml", embedding={"method": "landmarks"})
    n = resources.landmark_points(landmarks)
    assert n == 55_301
    assert n * n * 8 / 2**20 < resources.embed_mem_mb(landmarks) < 40_000


def test_small_studies_ask_for_little(default):
    """The default study's jobs fit a laptop: nothing above 3 GB or 15 minutes."""
    values = estimates(default, gpu=False)
    assert max(v for job, v in values.items() if "mem_mb" in job[0]) < 3_000
    assert max(v for job, v in values.items() if "runtime" in job[0]) < 15
    assert math.isclose(resources.run_file_mb(next(iter(default.runs.values()))), 33 * 1797 * 40 / 2**20)
