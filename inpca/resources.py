"""Resource estimates for cluster jobs, from the study alone (standard library; parse-time safe).

Estimates are deliberately generous and scale with Snakemake's `attempt` (1, 2, ...), so a job
killed for memory or time is retried with more. They are used by the rules' `resources:` and can be
overridden per rule in a profile (`set-resources`).
"""

from __future__ import annotations

import functools
import math

from .schedule import checkpoint_steps

# Sizes of the fixed data sets (train, test, classes) before `keep_every`.
_DIGITS_TOTAL = 1797
_CIFAR10 = (50_000, 10_000, 10)

# Rough GPU throughput (training images per second on one H100-class GPU, fp32) per architecture,
# for runtime estimates; CPU runs use the cpu factor below. Values err on the slow side. The keys are
# exactly the schema's architectures (inpca.config.ARCHITECTURES; tests/unit/test_resources.py
# checks it): a new architecture needs its own rate here, not a silent default.
_GPU_IMAGES_PER_S = {"fc": 200_000, "allcnn": 40_000, "wrn": 15_000, "convmixer": 12_000, "vit": 8_000}
_CPU_SLOWDOWN = 50

# The embedding's memory thresholds (here, not in inpca.embedding_file, which imports numpy: this
# module is read at parse time): up to IN_MEMORY_POINTS the exact matrix is read whole (above it the
# eigensolver streams the tiles), and landmark columns (M x L) up to LANDMARK_IN_MEMORY_ENTRIES entries
# (512 MB in float64).
IN_MEMORY_POINTS = 30_000
LANDMARK_IN_MEMORY_ENTRIES = 64 * 2**20


def dataset_size(dataset: dict, recorded: bool = True) -> tuple[int, int, int]:
    """(n_train, n_test, classes) of the configured data set; `recorded`: after keep_every."""
    name = dataset["name"]
    if name == "digits":
        n_test = math.ceil(_DIGITS_TOTAL * dataset["test_fraction"])
        n_train, n_test, c = _DIGITS_TOTAL - n_test, n_test, 10
    elif name == "cifar10":
        n_train, n_test, c = _CIFAR10
    else:
        n_train, n_test, c = dataset["n_train"], dataset["n_test"], dataset["num_classes"]
    k = dataset.get("keep_every", 1) if recorded else 1
    return math.ceil(n_train / k), math.ceil(n_test / k), c


@functools.lru_cache(maxsize=None)
def _checkpoint_count(checkpoints: tuple, steps_per_epoch: int, epochs: int) -> int:
    return len(checkpoint_steps(dict(checkpoints), steps_per_epoch, epochs))


def checkpoints_of(run: dict) -> int:
    """Checkpoints of a run (cached: tile estimates ask for every run of two blocks, per tile); an
    imported run knows its own."""
    if "recorded" in run:
        return run["recorded"]["checkpoints"]
    n_train, _, _ = dataset_size(run["dataset"], recorded=False)
    steps_per_epoch = max(n_train // run["batch_size"], 1)
    return _checkpoint_count(tuple(sorted(run["checkpoints"].items())), steps_per_epoch, run["epochs"])


def run_file_mb(run: dict) -> float:
    """Size of one run file: checkpoints x (train + test samples) x classes x bytes."""
    n_train, n_test, c = dataset_size(run["dataset"])
    itemsize = 2 if run["checkpoints"]["dtype"] == "float16" else 4
    return checkpoints_of(run) * (n_train + n_test) * c * itemsize / 2**20


def train_mem_mb(run: dict, attempt: int = 1) -> int:
    """Host memory of a training job: recorded predictions (twice, while the file is written),
    the data set, and a fixed allowance for torch and the model."""
    n_train, n_test, c = dataset_size(run["dataset"], recorded=False)
    data_mb = (n_train + n_test) * 3 * 32 * 32 / 2**20
    return int((2500 + 2.5 * run_file_mb(run) + 2 * data_mb) * attempt)


def train_runtime(run: dict, gpu: bool, attempt: int = 1) -> int:
    """Minutes for a training job: epochs x samples / throughput, plus checkpoint evaluations."""
    n_train, n_test, _ = dataset_size(run["dataset"], recorded=False)
    arch = run["arch"]
    rate = _GPU_IMAGES_PER_S[arch["name"]] / (1 if gpu else _CPU_SLOWDOWN)
    if arch["name"] == "wrn":  # the table's rate holds for narrow WRNs (launch-bound); wide ones cost ~ base² x depth
        rate /= max(1.0, (arch.get("base", 8) / 16) ** 2 * arch.get("depth", 10) / 10)
    seconds = run["epochs"] * n_train / rate + checkpoints_of(run) * (n_train + n_test) / (3 * rate)
    return int(math.ceil((10 + 1.5 * seconds / 60) * attempt))


def _corner_as_run(corner: dict) -> dict:
    """A corner's pre-training sized like a run: its epochs and batch size on the data set, and
    two recorded points (a perturbed corner, which trains nothing, is sized as one epoch)."""
    init = corner["init"]
    return {"arch": corner["arch"], "dataset": corner["dataset"], "epochs": init.get("epochs", 1),
            "batch_size": init.get("batch_size", 1), "checkpoints": {"schedule": "log", "count": 2, "dtype": "float32"}}


def corner_mem_mb(corner: dict, attempt: int = 1) -> int:
    return train_mem_mb(_corner_as_run(corner), attempt)


def corner_runtime(corner: dict, gpu: bool, attempt: int = 1) -> int:
    """Minutes for a corner's pre-training; a subset corner trains on its samples only."""
    run = _corner_as_run(corner)
    if corner["init"]["name"] == "subsample":
        n_train = dataset_size(corner["dataset"], recorded=False)[0]
        run["epochs"] = max(1, math.ceil(run["epochs"] * corner["init"]["samples"] / n_train))
    return train_runtime(run, gpu, attempt)


def block_points(study, block: str) -> int:
    """Points of a store block: the reference's, the corners' curves (two geodesics of
    geodesic_points + 2 points each), or the checkpoints of the block's runs."""
    if block == "ref":
        return study.config["reference"]["geodesic_points"] + 2
    if block == "corners":
        return 2 * len(study.corners) * (study.config["reference"]["geodesic_points"] + 2)
    return sum(checkpoints_of(study.runs[r]) for r in study.blocks[block])


def tile_mem_mb(study, a: str, b: str, attempt: int = 1) -> int:
    """Streamed tile: two chunks of probabilities (plus square roots) and the float64 result."""
    ma, mb = block_points(study, a), block_points(study, b)
    _, _, c = dataset_size(study.config["dataset"])
    chunk = study.config["distance"]["chunk_samples"]
    mb_used = ((ma + mb) * chunk * c * 4 * 3 + ma * mb * 8 * 3) / 2**20
    return int((1500 + mb_used) * attempt)


def tile_runtime(study, a: str, b: str, gpu: bool, attempt: int = 1) -> int:
    """Minutes for a tile at 1e9 pair-samples/s on a CPU node or 1e12 on a GPU (both conservative)."""
    ma, mb = block_points(study, a), block_points(study, b)
    n_train, _, _ = dataset_size(study.config["dataset"])
    seconds = ma * mb * n_train / (1e12 if gpu else 1e9)
    return int(math.ceil((5 + 1.5 * seconds / 60) * attempt))


def study_points(study) -> int:
    return sum(block_points(study, b) for b in study.point_blocks)


def landmark_points(study) -> int:
    """Landmarks of `embedding.method: landmarks` (inpca.landmarks.landmark_rows_every): every
    reference point (blocks ref and corners), and of each run every landmark_every-th checkpoint and
    its last."""
    every = study.config["embedding"]["landmark_every"]
    reference = sum(block_points(study, b) for b in study.point_blocks if b not in study.blocks)
    return reference + sum(len(range(0, checkpoints_of(run) - 1, every)) + 1 for run in study.runs.values())


def embed_mem_mb(study, attempt: int = 1) -> int:
    """Exact: the dense matrix in memory up to 30,000 points (the embedding streams it from disk
    above). Landmarks: the L x L landmark matrix, always in memory, and the M x L columns when small
    (else row blocks). Plus the solver's vectors: ARPACK's, or the block solver's basis of MAX_BLOCKS
    blocks of k + 30 and three more blocks (inpca.block_eigen)."""
    m = study_points(study)
    if study.config["embedding"]["method"] == "landmarks":
        n = landmark_points(study)
        dense = n * n * 8 + (m * n * 8 if m * n <= LANDMARK_IN_MEMORY_ENTRIES else 256 << 20)
    else:
        dense = m * m * 8 if m <= IN_MEMORY_POINTS else 256 << 20
    k = study.config["embedding"]["n_components"]
    vectors = max(40 * k, 15 * (k + 30))
    return int((1500 + (1.3 * dense + vectors * m * 8) / 2**20) * attempt)


def block_trajectories(study, block: str) -> int:
    """Trajectories of a block: its runs, or the geodesic for the reference block."""
    return 1 if block == "ref" else len(study.blocks[block])


def reindex_mem_mb(study, block: str, attempt: int = 1) -> int:
    """A planning job (rule reindex) holds one run's checkpoints (float32) and 8 models of it at a time
    (float64)."""
    n_train, _, c = dataset_size(study.config["dataset"])
    runs = study.blocks.get(block, [])
    k = max((checkpoints_of(study.runs[r]) for r in runs), default=1)
    return int((1500 + (k * 4 + 8 * 8) * n_train * c / 2**20) * attempt)


def trajectory_tile_mem_mb(study, a: str, b: str, attempt: int = 1) -> int:
    """An equal-progress tile (inpca.trajectory_files.equal_progress_tile) holds, per trajectory, one t_k
    at a time: its two checkpoints (float32) and its model there (float32), 12 bytes per sample and
    class (16 counted); plus the kernel's chunks and the (T, R_a, R_b) result. Never a whole
    trajectory: at the paper's scale (blocks of 36 runs, N = 25,000) about 0.3 GB."""
    ra, rb = block_trajectories(study, a), block_trajectories(study, b)
    n_train, _, c = dataset_size(study.config["dataset"])
    chunk, t = study.config["distance"]["chunk_samples"], study.config["analysis"]["points"]
    mb_used = ((ra + rb) * (16 * n_train * c + chunk * c * 4 * 3) + t * ra * rb * 8 * 2) / 2**20
    return int((1500 + mb_used) * attempt)


def trajectory_tile_runtime(study, a: str, b: str, gpu: bool, attempt: int = 1) -> int:
    """Minutes at the same conservative rates as tile_runtime, for T matrices of R_a x R_b."""
    ra, rb = block_trajectories(study, a), block_trajectories(study, b)
    n_train, _, _ = dataset_size(study.config["dataset"])
    seconds = study.config["analysis"]["points"] * ra * rb * n_train / (1e12 if gpu else 1e9)
    return int(math.ceil((5 + 1.5 * seconds / 60) * attempt))
