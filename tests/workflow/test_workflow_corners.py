"""Networks that start far from ignorance ("corners"), end to end with the real Snakemake: one small
study of default-init runs and runs from a random-label and a subset corner, two seeds each."""

import h5py
import pandas as pd
import pytest
import yaml

from inpca.testing import copy_workflow, dry_run, snakemake

pytestmark = pytest.mark.workflow

SGDN = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True}
CONFIG = {
    "dataset": {"name": "digits"},
    "grid": [{"arch": {"name": "fc", "width": 64, "depth": 2}, "optimizer": SGDN, "epochs": 5, "seed": [0, 1],
              "init": [{"name": "default"},
                       {"name": "random_labels", "epochs": 30, "optimizer": SGDN},
                       {"name": "subsample", "samples": 100, "epochs": 30, "optimizer": SGDN}]}],
    "checkpoints": {"schedule": "log", "count": 8},
    "store": {"blocks": 2},
    "reference": {"geodesic_points": 5},
    "analysis": {"points": 10},
    "plots": {"color_by": "init"},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("corners"), CONFIG)
    planned = dry_run(workdir)
    snakemake(workdir, timeout=900)
    return workdir, planned


def test_two_seeds_from_one_corner_pretrain_it_once(study):
    _, planned = study
    assert planned["pretrain_corner"] == 2  # a random-label and a subset corner
    assert planned["train_run"] == 6  # 3 inits x 2 seeds
    assert planned["store_corners"] == 1


def test_runs_start_at_their_corner_and_the_store_holds_its_geodesics(study):
    workdir, _ = study
    corners = sorted(p.stem for p in (workdir / "results/corners").glob("*.pt"))
    assert len(corners) == 2 and all((workdir / f"results/corners/{c}.h5").exists() for c in corners)
    index = pd.read_csv(workdir / "results/store/index.tsv", sep="\t", keep_default_na=False)
    runs = index[index["kind"] == "run"]
    assert sorted(runs.groupby("init")["run"].nunique().items()) == [("default", 2), ("random_labels", 2),
                                                                    ("subsample", 2)]
    for corner in corners:
        curves = index[index["corner"] == corner]
        assert set(curves["run"]) == {f"P0->{corner}", f"{corner}->P*"} | set(runs.loc[runs["corner"] == corner, "run"])
        for run in runs.loc[runs["corner"] == corner, "run"].unique():
            with h5py.File(workdir / f"results/runs/{run}.h5") as f, \
                    h5py.File(workdir / f"results/corners/{corner}.h5") as c:
                assert (f["train_probs"][0] == c["train_probs"][()]).all()
                assert f.attrs["corner"] == corner


def test_the_analysis_compares_corner_runs_with_default_runs_at_equal_progress(study):
    workdir, _ = study
    for split in ("train", "test"):
        table = pd.read_csv(workdir / f"results/analysis/{split}/corners.tsv", sep="\t")
        to_default = table[table["comparison"] == "to default"]
        assert len(to_default) and to_default["distance"].notna().all() and (to_default["distance"] >= 0).all()
        assert (workdir / f"results/analysis/{split}/corners.png").stat().st_size > 10_000
        summary = (workdir / f"results/analysis/{split}/summary.md").read_text()
        assert "## 5. Networks that start far from ignorance" in summary
    assert (workdir / "results/plots/train/trajectories.html").exists()


def test_a_finished_corner_study_has_nothing_to_do(study):
    workdir, _ = study
    assert dry_run(workdir) == {}


def test_changing_only_the_runs_learning_rate_retrains_the_runs_not_the_corners(study, tmp_path):
    import shutil

    finished, _ = study
    workdir = tmp_path / "study"
    shutil.copytree(finished, workdir, symlinks=True)  # the same study, its config edited (copy2 keeps mtimes)
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["grid"][0]["optimizer"] = {**SGDN, "lr": 0.02}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    planned = dry_run(workdir, "train")
    assert "pretrain_corner" not in planned
    assert planned["train_run"] == 6


def test_a_bad_init_stops_the_workflow_at_parse_time_in_one_line(tmp_path):
    config = yaml.safe_load(yaml.safe_dump(CONFIG))
    config["grid"][0]["init"][2]["samples"] = 105
    workdir = copy_workflow(tmp_path, config)
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert ("config error: grid[0].init[2].samples: 105 is not divisible into the 10 classes of digits"
            in proc.stderr)
    assert "Traceback" not in proc.stderr and not (workdir / "results").exists()
