"""The atlas (inpca.atlas) on the default study, run for real once: placing, following, forecasting, the
live recorder, the command line, the pipeline's atlas target, and what it refuses."""

import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
import yaml

from inpca.atlas import Atlas, AtlasError
from inpca.runfile import read_run, write_run
from inpca.testing import REPO, copy_workflow, dry_run, job_counts, snakemake

pytestmark = pytest.mark.workflow


def stored_point(results, block, row):
    with h5py.File(results / "store" / f"{block}.h5", "r", locking=False) as f:
        return {split: f[f"{split}_probs"][row] for split in ("train", "test")}


def test_an_atlas_point_lands_on_its_own_coordinates(default_study, atlas):
    results = default_study / "results"
    points = atlas.points
    for position in (0, 7, len(points) // 2, len(points) - 1):  # P0, the geodesic, checkpoints of two blocks
        block, row = points["block"].iloc[position], int(points["row"].iloc[position])
        placed = atlas.place(stored_point(results, block, row))
        for split in ("train", "test"):
            with h5py.File(results / "embedding" / f"{split}.h5", "r", locking=False) as f:
                own = f["coords"][position]
            assert np.max(np.abs(placed[split].coords - own)) <= 1e-10 * max(1.0, np.abs(own).max())
            assert placed[split].progress == pytest.approx(points[f"progress_{split}"].iloc[position], abs=1e-9)
            assert placed[split].dist_truth == pytest.approx(points[f"dist_truth_{split}"].iloc[position], abs=1e-9)
        if points["kind"].iloc[position] == "run":
            nearest = placed["train"].nearest.iloc[0]
            assert (nearest["run"], nearest["checkpoint"], nearest["distance"]) == (
                points["run"].iloc[position], points["checkpoint"].iloc[position], 0.0)


def cut(run, fraction):
    keep = np.asarray(run["epoch"]) <= fraction * float(run["epoch"][-1]) + 1e-9
    return {key: (value[keep] if isinstance(value, np.ndarray) and len(value) == len(keep) else value)
            for key, value in run.items()}


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_a_held_out_configurations_runs_find_their_own_architectures_trajectories_nearest(default_study, atlas,
                                                                                          fraction):
    outcomes = atlas.outcomes
    for configuration, members in outcomes.groupby("configuration"):
        for run_id in members["run"]:
            run = read_run(default_study / "results" / "runs" / f"{run_id}.h5")
            following = atlas.follow(cut(run, fraction), exclude=set(members["run"]))
            assert len(following.t) and not following.references["run"].isin(members["run"]).any()
            assert following.references["arch"].iloc[0] == members["arch"].iloc[0], (configuration, run_id)
            forecast = atlas.forecast(following, k=5)
            value, low, high = forecast.estimates["final_test_error"]
            assert low <= value <= high and len(forecast.neighbours) == 5


def test_a_forecast_says_when_the_run_is_below_the_first_grid_point_or_outside_the_atlas(default_study, atlas):
    run = read_run(sorted((default_study / "results/runs").glob("*.h5"))[0])
    start = {key: (value[:1] if isinstance(value, np.ndarray) and len(value) == len(run["step"]) else value)
             for key, value in run.items()}
    forecast = atlas.forecast(atlas.follow(start))  # checkpoint 0: ignorance, progress 0
    assert not forecast.trusted and "below the atlas' first grid point" in forecast.reason
    following = atlas.follow(run)
    following.seed_spread = following.references["distance"].iloc[0] / 2  # as if it were far from every run
    assert "farther than the atlas' seed-to-seed spread" in atlas.forecast(following).reason


def record_allcnn(path, atlas, steps=40):
    """A small All-CNN trained on the atlas' samples with a plain loop, recorded with the atlas."""
    import torch

    from inpca.models import build_model
    from inpca.record import Recorder, log_steps

    torch.manual_seed(0)
    dataset = atlas.dataset()
    model = build_model({"name": "allcnn", "width": 0.25}, dataset.input_shape, dataset.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.as_tensor(dataset.x_train), torch.as_tensor(dataset.y_train)
    recorder = Recorder.for_atlas(path, atlas, config={"arch": {"name": "allcnn", "width": 0.25}, "optimizer": "adam"},
                                  steps=log_steps(steps, 8), steps_per_epoch=10)
    with recorder:
        for step in range(steps + 1):
            if recorder.due(step):
                recorder.record(model, step=step)
            batch = torch.randint(0, len(y), (64,))
            loss = torch.nn.functional.cross_entropy(model(recorder.prepare(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return recorder


def test_the_recorder_places_every_checkpoint_in_the_atlas_as_it_is_recorded(atlas, tmp_path):
    recorder = record_allcnn(tmp_path / "allcnn.h5", atlas)
    table = __import__("inpca.files", fromlist=["read_table"]).read_table(recorder.atlas_table)
    assert list(table["step"]) == recorder.recorded_steps and len(table) == 8
    for column in ("train_pc1", "test_pc3", "train_progress", "nearest_configuration", "forecast_final_test_error",
                   "forecast_trusted", "place_seconds"):
        assert column in table.columns, column
    assert table["train_progress"].iloc[-1] > table["train_progress"].iloc[0]
    print(f"placing overhead per checkpoint: median {table['place_seconds'].median() * 1000:.0f} ms")


def test_the_recorder_takes_the_atlas_as_a_results_folder_and_refuses_anything_else(default_study, atlas, tmp_path):
    from inpca.record import Recorder, RecorderError

    recorder = Recorder.for_atlas(tmp_path / "run.h5", default_study / "results", config={"arch": "x"}, steps=[0, 1])
    try:
        assert recorder.atlas.fingerprint == atlas.fingerprint == recorder.fingerprint
    finally:
        recorder.atlas.close()
    with pytest.raises(RecorderError, match="atlas: expected an inpca.atlas.Atlas or the path"):
        Recorder.for_atlas(tmp_path / "other.h5", 42, config={"arch": "x"}, steps=[0, 1])


def test_the_command_line_places_run_files_and_draws_them_over_the_atlas(default_study, tmp_path):
    runs = sorted((default_study / "results/runs").glob("*.h5"))[:2]
    proc = subprocess.run([sys.executable, "-m", "inpca.atlas", "place", *map(str, runs), "--atlas",
                           str(default_study / "results"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert runs[0].stem[:28] in proc.stdout and "final test error" not in proc.stderr
    for run in runs:
        assert (tmp_path / "out" / f"{run.name}.atlas.tsv").exists()  # the recorder's name: A.h5.atlas.tsv
    for name in ("atlas-train.png", "atlas-train.html"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    refused = subprocess.run([sys.executable, "-m", "inpca.atlas", "place", str(runs[0]), "--atlas",
                              str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    # an output folder the system will not make (under a file): one line naming it, exit 2
    (tmp_path / "a file").write_text("")
    unwritable = subprocess.run([sys.executable, "-m", "inpca.atlas", "place", str(runs[0]), "--atlas",
                                 str(default_study / "results"), "--out", str(tmp_path / "a file" / "out")],
                                capture_output=True, text=True, timeout=600)
    assert unwritable.returncode == 2 and unwritable.stderr.count("\n") == 1, unwritable.stderr[-3000:]
    assert str(tmp_path / "a file" / "out") in unwritable.stderr and "Traceback" not in unwritable.stderr
    # a damaged recording of the user's own (no study made it): no promise that a rerun rebuilds it
    (tmp_path / "mine.h5").write_bytes(b"not hdf5")
    damaged = subprocess.run([sys.executable, "-m", "inpca.atlas", "place", str(tmp_path / "mine.h5"), "--atlas",
                              str(default_study / "results")], capture_output=True, text=True, timeout=600)
    assert damaged.returncode == 2 and "mine.h5" in damaged.stderr and "snakemake" not in damaged.stderr


def test_a_study_with_an_atlas_places_each_of_its_runs_and_the_notebook_api_opens_them(default_study, tmp_path):
    import inpca.results

    config = yaml.safe_load((REPO / "tests/workflow/config.yaml").read_text())
    config["grid"] = config["grid"][:1]
    config["atlas"] = {"path": str(default_study / "results")}
    workdir = copy_workflow(tmp_path / "new", config)
    ran = job_counts((lambda p: p.stdout + p.stderr)(snakemake(workdir, "atlas")))
    assert ran["atlas_place"] == 4 and ran["atlas_figure"] == 1 and ran["runs_table"] == 1
    assert dry_run(workdir, "atlas") == {}
    # the report of a partial target names the target (the README's command); the whole study's
    # report wants figures this study has not made
    snakemake(workdir, "--report", "atlas-report.zip", "atlas")
    with zipfile.ZipFile(workdir / "atlas-report.zip") as report:
        assert any(name.endswith("atlas-train.png") for name in report.namelist())
    with inpca.results.load(workdir / "results") as study:
        run = study.runs["run"].iloc[0]
        placement = study.atlas_placement(run)
        assert len(placement) == len(read_run(workdir / f"results/runs/{run}.h5")["step"])
        assert {"train_pc1", "forecast_final_test_error"} <= set(placement.columns)
        with pytest.raises(inpca.results.ResultsError, match="no run 'nope' in this study"):
            study.atlas_placement("nope")


def test_an_atlas_refuses_bad_input_in_one_line_and_writes_nothing(default_study, atlas, tmp_path):
    run = read_run(sorted((default_study / "results/runs").glob("*.h5"))[0])
    probs = run["train_probs"][3]

    def refused(action, *words):
        with pytest.raises(AtlasError) as info:
            action()
        message = str(info.value)
        assert "\n" not in message and all(word in message for word in words), message

    refused(lambda: atlas.place(np.full_like(probs, np.nan), split="train"), "NaN")
    negative = probs.copy()
    negative[0, 0] = -0.5
    refused(lambda: atlas.place(negative, split="train"), "negative")
    refused(lambda: atlas.place(probs * 2, split="train"), "sum")
    refused(lambda: atlas.place(probs[:, :5] / probs[:, :5].sum(-1, keepdims=True), split="train"), "5 classes")
    refused(lambda: atlas.place(probs[:100] / probs[:100].sum(-1, keepdims=True)), "say which split")
    other = tmp_path / "other.h5"
    write_run(other, {s: run[f"{s}_probs"] for s in ("train", "test")}, run["step"], run["epoch"],
              {m: run[m] for m in ("train_loss", "train_error", "test_loss", "test_error")},
              {**run["attrs"], "fingerprint": "0123456789abcdef"})
    refused(lambda: atlas.follow(other), str(other), "0123456789abcdef", atlas.fingerprint)
    refused(lambda: atlas.follow({"train_probs": run["train_probs"][:0]}), "empty run")
    # an unfinished or older atlas
    copy = tmp_path / "atlas"
    subprocess.run(["cp", "-r", str(default_study / "results"), str(copy)], check=True)
    (copy / "analysis/train/speed_runs.tsv").rename(copy / "speed_runs.tsv")
    refused(lambda: Atlas.load(copy), "analysis/train/speed_runs.tsv", "not made yet", "--cores all")
    (copy / "speed_runs.tsv").rename(copy / "analysis/train/speed_runs.tsv")
    with h5py.File(copy / "trajectories/b000.h5", "w") as f:  # the layout before plans: reindexed probabilities
        f["train_probs"] = np.zeros((1, 2, 3, 10), np.float32)
    refused(lambda: Atlas.load(copy), "written by an older inpca", "b000.h5")
    (tmp_path / "not a study").mkdir()  # a folder no study wrote: no command that makes a study
    refused(lambda: Atlas.load(tmp_path / "not a study"), "not a study's results folder", ".inpca-study")
    with pytest.raises(AtlasError) as info:
        Atlas.load(tmp_path / "not a study")
    assert "snakemake" not in str(info.value)
    assert not list(tmp_path.glob("*.atlas.tsv"))


def place_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "inpca.atlas", "place", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def one_line(proc, *words):
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(word in proc.stderr for word in words), proc.stderr


def test_two_run_files_of_one_name_never_stand_in_for_each_other_and_k_is_at_most_the_references(default_study,
                                                                                                 tmp_path):
    run = sorted((default_study / "results/runs").glob("*.h5"))[0]
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / run.name
    subprocess.run(["cp", str(run), str(other)], check=True)
    atlas_path = default_study / "results"
    one_line(place_cli(run, other, "--atlas", atlas_path, "--out", tmp_path / "out"), str(run), str(other),
             f"{run.name}.atlas.tsv")
    assert not (tmp_path / "out").exists()
    one_line(place_cli(run, "--atlas", atlas_path, "--k", 500, "--out", tmp_path / "out"), "--k 500",
             "32 reference runs")
    placed = place_cli(run, run, "--atlas", atlas_path, "--out", tmp_path / "out")  # one file twice: placed once
    assert placed.returncode == 0, placed.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tsv")) == [f"{run.name}.atlas.tsv"]
    assert placed.stdout.count(run.name[:28]) == 1


def bad_copy(run, path, change, checkpoints=slice(None)):
    """A copy of the run file at `path`, of the given checkpoints, its probabilities changed by `change`."""
    write_run(path, {s: change(run[f"{s}_probs"][checkpoints].copy()) for s in ("train", "test")},
              run["step"][checkpoints], run["epoch"][checkpoints],
              {m: run[m][checkpoints] for m in ("train_loss", "train_error", "test_loss", "test_error")}, run["attrs"],
              {s: run[f"{s}_labels"] for s in ("train", "test")})


def test_a_bad_run_file_is_named_with_its_checkpoint(default_study, atlas, tmp_path):
    good = sorted((default_study / "results/runs").glob("*.h5"))[0]
    run = read_run(good)

    def nan(P):
        P[3, 7, 2] = np.nan
        return P

    bad_copy(run, tmp_path / "nan.h5", nan)
    bad_copy(run, tmp_path / "sums.h5", lambda P: P * 1.5)
    bad_copy(run, tmp_path / "empty.h5", lambda P: P, checkpoints=slice(0))
    for name, words in (("nan.h5", ["NaN at (checkpoint 3, sample 7, class 2)"]), ("sums.h5", ["checkpoint 0"]),
                        ("empty.h5", ["an empty run"])):
        with pytest.raises(AtlasError) as info:
            atlas.follow(tmp_path / name)
        message = str(info.value)
        assert message.startswith(str(tmp_path / name)) and all(w in message for w in words), message
        assert "point " not in message.replace("checkpoint ", ""), message
    # the command line: the bad file among good ones, named before any is placed
    proc = place_cli(good, tmp_path / "nan.h5", "--atlas", default_study / "results", "--out", tmp_path / "out")
    one_line(proc, f"{tmp_path / 'nan.h5'}: train probabilities: NaN at (checkpoint 3, sample 7, class 2)")
    assert not (tmp_path / "out").exists()


def test_a_half_built_atlas_names_the_missing_file_and_the_command_that_makes_it(default_study, tmp_path):
    copy = tmp_path / "results"
    subprocess.run(["cp", "-r", str(default_study / "results"), str(copy)], check=True)
    (copy / "embedding/train.h5").unlink()
    for follow in (True, False):
        with pytest.raises(AtlasError) as info:
            Atlas.load(copy, follow=follow)
        assert str(copy / "embedding/train.h5") in str(info.value) and "--cores all" in str(info.value)
    run = sorted((default_study / "results/runs").glob("*.h5"))[0]
    one_line(place_cli(run, "--atlas", copy, "--out", tmp_path / "out"), str(copy / "embedding/train.h5"),
             "not made yet", "snakemake")


def test_a_study_without_an_atlas_says_so_and_an_unknown_run_is_named(default_study):
    import inpca.results
    from inpca.errors import ResultsError

    with inpca.results.load(default_study / "results") as study:
        with pytest.raises(ResultsError, match=r"no run 'nope' in this study \(runs: "):
            study.atlas_placement("nope")
        with pytest.raises(ResultsError, match=r"this study has no atlas; add `atlas: \{path: ") as info:
            study.atlas_placement(study.runs["run"].iloc[0])
        assert "\n" not in str(info.value)


def test_the_atlas_holds_no_file_of_the_study_open_between_calls(default_study, tmp_path):
    results = default_study / "results"
    run = sorted((results / "runs").glob("*.h5"))[0]
    with Atlas.load(results) as atlas:
        atlas.trace(run)  # every t_k the run reaches: the reference trajectories read from the store
        for path in [*sorted((results / "store").glob("*.h5")), run, *sorted((results / "runs").glob("*.h5"))[-2:]]:
            with h5py.File(path, "r"):  # the user's own reading, with HDF5's default file locking
                pass


def test_the_forecast_starts_from_the_run_itself_and_is_fitted_without_the_runs_it_excludes(default_study, atlas):
    """Issue 28: the final test error from the run's own curve, its trajectory and its analogues, with an
    80 % range; fitted on the reference cuts of every run but the excluded (a held-out configuration)."""
    results = default_study / "results"
    run_id = atlas.outcomes["run"].iloc[3]
    configuration = atlas.outcomes["configuration"].iloc[3]
    held_out = frozenset(atlas.outcomes.loc[atlas.outcomes["configuration"] == configuration, "run"])
    part = cut(read_run(results / "runs" / f"{run_id}.h5"), 0.25)
    forecast = atlas.forecast(atlas.follow(part, exclude=held_out))
    value, low, high = forecast.estimates["final_test_error"]
    assert forecast.trusted and 0 <= low <= value <= high <= 1
    assert forecast.estimates["final_test_error_neighbours"] != forecast.estimates["final_test_error"]
    assert not set(forecast.neighbours["run"]) & held_out
    cuts = atlas.reference_cuts("train", 5)
    assert atlas._forecast_model("train", 5, held_out).n_rows == int((~cuts["run"].isin(held_out)).sum()) < len(cuts)
    # the reference cuts are kept in the study: a new Atlas reads them and forecasts the same, bit for bit
    assert (results / "analysis/train/forecast_references_k5.tsv").is_file()
    with Atlas.load(results) as again:
        assert again.forecast(again.follow(part, exclude=held_out)).estimates["final_test_error"] == (value, low, high)
