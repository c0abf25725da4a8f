# Study plan, validation and the get_* helpers the rules use. No rules here, and no heavy imports:
# every cluster job re-parses the workflow.

import sys

sys.path.insert(0, workflow.basedir)  # the package beside this workflow, even if not installed

from inpca.errors import ConfigError
from inpca.study import (
    CORNER_PATTERN,
    CORNERS_BLOCK,
    GRID_RUN_PATTERN,
    RESULTS_VERSION,
    canonical_json,
    dataset_identity,
    load_study,
    runs_table_rows,
)
from inpca.config import SPLITS, atlas_files, check_atlas, claim_results_folder, results_folder
from inpca.recordings import RUN_ID_PATTERN as IMPORTED_RUN_PATTERN
from inpca import resources as estimate
from inpca.devices import gpus_for_device


try:
    STUDY = load_study(config)  # validated against the schema inside the package (inpca/schemas/)
    # The study's own folder (results:, or derived from the config file's name): every path below is
    # <results>/... and <logs>/..., so studies sit side by side and none overwrites another.
    RESULTS, STUDY_OWNER = results_folder(STUDY.config, workflow.overwrite_configfiles)
    claim_results_folder(RESULTS, STUDY_OWNER, write=False)
    check_atlas(STUDY.config.get("atlas"), RESULTS)
except ConfigError as error:
    # One line naming the key and what is allowed; no traceback for a config mistake.
    sys.exit(f"config error: {error}")

STUDY.config["results"] = RESULTS
workflow.register_pathvars(results=RESULTS, logs=f"{RESULTS}/logs")

# Scripts read the config too: give them the validated one, defaults filled in.
config.update(STUDY.config)
# The atlas the study's runs are placed in ({} without one: no atlas rules run).
ATLAS = config.get("atlas") or {}


onstart:
    # marks the folder as this study's when jobs run (a dry run writes nothing)
    claim_results_folder(RESULTS, STUDY_OWNER, write=True)
# The report's front page (report/workflow.rst) sees only the config: the study's size for its words.
config["report_summary"] = {"runs": len(STUDY.runs), "checkpoints": estimate.study_points(STUDY)
                            - estimate.block_points(STUDY, "ref")}


wildcard_constraints:
    run=rf"{GRID_RUN_PATTERN}|{IMPORTED_RUN_PATTERN}",
    block=r"b\d{3}",
    store_block=r"ref|b\d{3}",
    a=r"ref|corners|b\d{3}",
    b=r"ref|corners|b\d{3}",
    split="train|test",


def get_run_files():
    return [f"<results>/runs/{run}.h5" for run in STUDY.runs]


def get_train_inputs(wildcards):
    """The weights of the corner a run starts from; nothing for a default-init run."""
    corner = STUDY.corner_of(wildcards.run)
    return {"corner": f"<results>/corners/{corner}.pt"} if corner else {}


def get_corner_files():
    return [f"<results>/corners/{corner}.{ext}" for corner in STUDY.corners for ext in ("pt", "h5")]


def get_corner_config(wildcards):
    return canonical_json(STUDY.corners[wildcards.corner])


def get_corner_state_dir(wildcards):
    """Resumable pre-training state of a corner, beside the runs' (not an output)."""
    return f"{RESULTS}/state/corners/{wildcards.corner}"  # a param: no pathvars


def get_run_config(wildcards):
    """The run's config as canonical JSON (sorted keys): Snakemake compares params as text, so
    reordering keys in config.yaml must not look like a change."""
    return canonical_json(STUDY.runs[wildcards.run])


def get_dataset_identity():
    return canonical_json(dataset_identity(STUDY.config["dataset"]))


def get_reference_inputs(wildcards):
    """A study of recorded runs takes its labels from one of them."""
    if STUDY.config["dataset"]["name"] == "recorded":
        return {"recorded_run": f"<results>/runs/{STUDY.imported_runs[0]}.h5"}
    return {}


def get_import_inputs(wildcards):
    """The recording (ancient: its id hashes its content, so a newer copy of the same recording
    changes nothing) and the reference block to check every sample against: the study's own data, or
    in a study of recordings the reference made from its first recording (which that one itself is not
    checked against)."""
    inputs = {"source": ancient(STUDY.runs[wildcards.run]["recorded"]["source"])}
    if STUDY.config["dataset"]["name"] != "recorded" or wildcards.run != STUDY.imported_runs[0]:
        inputs["reference"] = "<results>/store/ref.h5"
    return inputs


def get_block_runs(wildcards):
    return [f"<results>/runs/{run}.h5" for run in STUDY.blocks[wildcards.block]]


def get_store_blocks():
    return [f"<results>/store/{block}.h5" for block in STUDY.point_blocks]


def get_tiles(wildcards):
    return {f"{a}-{b}": f"<results>/distances/{wildcards.split}/tiles/{a}-{b}.h5" for a, b in STUDY.tiles}


def embedding_tiles_folder():
    """The embedding's tiles: all distances, or with embedding.method landmarks the distances to the
    landmarks only."""
    return "landmark_tiles" if config["embedding"]["method"] == "landmarks" else "tiles"


def get_embedding_tiles(wildcards):
    folder = embedding_tiles_folder()
    return {f"{a}-{b}": f"<results>/distances/{wildcards.split}/{folder}/{a}-{b}.h5" for a, b in STUDY.tiles}


def get_trajectory_blocks():
    return [f"<results>/trajectories/{block}.h5" for block in STUDY.trajectory_blocks]


def get_equal_progress_tiles(wildcards):
    return {f"{a}-{b}": f"<results>/analysis/{wildcards.split}/tiles/{a}-{b}.h5" for a, b in STUDY.trajectory_tiles}


def get_kept_files(trajectories=False):
    """Every intermediate a study keeps: corners, run files, store blocks, distance tiles, and with
    `trajectories` the reindexed blocks and equal-progress tiles. The targets ask for them, because
    Snakemake does not rebuild a missing intermediate whose downstream files exist; so deleting a
    damaged one and rerunning rebuilds it and everything after it."""
    folder = embedding_tiles_folder()
    tiles = [f"<results>/distances/{split}/{folder}/{a}-{b}.h5" for split in STUDY.splits for a, b in STUDY.tiles]
    if trajectories:
        tiles += [f"<results>/analysis/{split}/tiles/{a}-{b}.h5" for split in STUDY.splits
                  for a, b in STUDY.trajectory_tiles]
    return [*get_corner_files(), *get_run_files(), *get_store_blocks(),
            *(get_trajectory_blocks() if trajectories else []), *tiles]


def get_train_embedding(wildcards):
    """The test split is also placed in the train axes, when asked and when both splits exist."""
    if (
        wildcards.split == "test"
        and config["embedding"]["project_test_into_train"]
        and "train" in STUDY.splits
    ):
        return {"train_embedding": "<results>/embedding/train.h5"}
    return {}


def get_summary_corners(wildcards):
    """The comparison of corner-started runs with default-init runs, in a study with corners."""
    return {"corners": f"<results>/analysis/{wildcards.split}/corners.tsv"} if STUDY.corners else {}


def get_plot_files():
    names = ["trajectories.png", "trajectories.html", "spectrum.png", "progress.png"]
    return [f"<results>/plots/{split}/{name}" for split in STUDY.splits for name in names]


def get_analysis_files():
    names = ["configurations.tsv", "dendrogram.png", "factors.tsv", "factors.png", "distance_to_geodesic.tsv",
             "distance_to_geodesic.png", "tube_width.tsv", "tube_width.png", "speed_runs.tsv",
             "speed_configurations.tsv", "speed.png", "trajectory_map.h5", "trajectory_map.png",
             "trajectory_map.html", "summary.md", "summary.html"]
    if STUDY.corners:
        names += ["corners.tsv", "corners.png"]
    return [f"<results>/analysis/{split}/{name}" for split in STUDY.splits for name in names]


def get_all_outputs():
    return ["<results>/runs.tsv", "<results>/store/index.tsv", *get_plot_files(), *get_analysis_files(),
            *get_atlas_outputs(), *get_kept_files(trajectories=True)]


def gpu_count(wildcards=None):
    """Ask for a GPU only when the configured device resolves to CUDA on this machine."""
    return gpus_for_device(config["device"])


# Resources: estimated from the study by inpca.resources, scaled by the retry attempt.


def train_mem_mb(wildcards, attempt):
    return estimate.train_mem_mb(STUDY.runs[wildcards.run], attempt)


def train_runtime(wildcards, attempt):
    return estimate.train_runtime(STUDY.runs[wildcards.run], gpu_count() > 0, attempt)


def tile_mem_mb(wildcards, attempt):
    return estimate.tile_mem_mb(STUDY, wildcards.a, wildcards.b, attempt)


def tile_runtime(wildcards, attempt):
    return estimate.tile_runtime(STUDY, wildcards.a, wildcards.b, gpu_count() > 0, attempt)


def corner_mem_mb(wildcards, attempt):
    return estimate.corner_mem_mb(STUDY.corners[wildcards.corner], attempt)


def corner_runtime(wildcards, attempt):
    return estimate.corner_runtime(STUDY.corners[wildcards.corner], gpu_count() > 0, attempt)


def get_state_dir(wildcards):
    """Resumable training state of a run; not an output, so it survives a killed job."""
    return f"{RESULTS}/state/{wildcards.run}"  # a param: no pathvars


def embed_mem_mb(wildcards, attempt):
    return estimate.embed_mem_mb(STUDY, attempt)


def reindex_mem_mb(wildcards, attempt):
    return estimate.reindex_mem_mb(STUDY, wildcards.store_block, attempt)


def trajectory_tile_mem_mb(wildcards, attempt):
    return estimate.trajectory_tile_mem_mb(STUDY, wildcards.a, wildcards.b, attempt)


def trajectory_tile_runtime(wildcards, attempt):
    return estimate.trajectory_tile_runtime(STUDY, wildcards.a, wildcards.b, gpu_count() > 0, attempt)


def get_atlas_files():
    """The files of the atlas a study's runs are placed in (config `atlas`), of the splits it has: a new
    atlas reruns the placements."""
    if not ATLAS:
        return []
    return [str(path) for path in atlas_files(ATLAS["path"], SPLITS) if path.exists()]


def get_atlas_placements():
    """Every run's placement in the atlas (config `atlas`)."""
    return [f"<results>/atlas/{run}.atlas.tsv" for run in STUDY.runs] if ATLAS else []


def get_atlas_outputs():
    """The placements of every run and the figures, in a study with an atlas."""
    if not ATLAS:
        return []
    split = ATLAS["split"]
    return [*get_atlas_placements(), f"<results>/atlas/atlas-{split}.png", f"<results>/atlas/atlas-{split}.html"]
