"""The real Snakemake on the tiny study tests/workflow/config.yaml, in a copy of the workflow in a temp folder.

One module-scoped study is run once (partial target first, then everything); the other tests dry-run
changes against it. Job counts come from Snakemake's own "Job stats" table.
"""

import os
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from inpca.testing import REPO
from inpca.testing import check_entry, chromium, missing_browser, report_results
from inpca.testing import SNAKEMAKE, copy_workflow, dry_run, job_counts, snakemake, split_distances

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("study"))
    partial = snakemake(workdir, "store")
    ran_partial = job_counts(partial.stdout + partial.stderr)
    assert not (workdir / "results/distances").exists()
    snakemake(workdir)
    return workdir, ran_partial


def config_of(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config.yaml").read_text())


def test_partial_target_store_trains_and_stores_only(study):
    _, ran = study
    assert ran["train_run"] == 6
    assert ran["store_reference"] == 1 and ran["store_index"] == 1
    assert not any(rule in ran for rule in ("distance_tile", "embed", "plot_trajectories"))


def test_full_run_produces_every_documented_output(study):
    workdir, _ = study
    runs = sorted((workdir / "results/runs").glob("*.h5"))
    assert len(runs) == 6
    index = (workdir / "results/store/index.tsv").read_text().splitlines()
    header = index[0].split("\t")
    for column in ("point", "run", "arch.name", "optimizer.lr", "checkpoint", "step", "epoch", "train_error",
                   "progress_train", "dist_truth_test"):
        assert column in header
    m = len(index) - 1
    # the embedding reads the tiles in place: the assembled matrix is made only when asked for
    assert not (workdir / "results/distances/train.h5").exists()
    snakemake(workdir, "distances")
    for split in ("train", "test"):
        with h5py.File(workdir / f"results/distances/{split}.h5") as f:
            D = f["D"][()]
        with split_distances(workdir, split) as tiled:
            assert np.array_equal(tiled[()], D) and np.array_equal(tiled[5:9, 2:], D[5:9, 2:])
        assert D.shape == (m, m)
        assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0) and np.isfinite(D).all()
        with h5py.File(workdir / f"results/embedding/{split}.h5") as f:
            assert f["coords"].shape == (m, 4)
            assert np.all(np.diff(f["explained_stress"][()]) >= -1e-12)
        for name in ("trajectories.png", "trajectories.html", "spectrum.png", "progress.png"):
            assert (workdir / f"results/plots/{split}/{name}").stat().st_size > 1000
    # ignorance and truth are the first and last reference points; their distance is ½ ln 10
    with h5py.File(workdir / "results/distances/train.h5") as f:
        runs_col = [r.decode() for r in f["run"][()]]
        p0, pstar = runs_col.index("P0"), runs_col.index("P*")
        assert f["D"][p0, pstar] == pytest.approx(0.5 * np.log(10), abs=1e-6)
    assert (workdir / "results/runs.tsv").read_text().count("\n") == 7


def test_the_index_has_the_columns_the_parse_checks_plots_color_by_against(study):
    from inpca.study import index_columns, load_study

    workdir, _ = study
    header = (workdir / "results/store/index.tsv").read_text().splitlines()[0].split("\t")
    assert header == index_columns(load_study(config_of(workdir), workdir / "inpca/schemas/config.schema.yaml").runs)


def test_the_analysis_leaves_out_the_diverged_and_the_unfit_run_by_name_and_finishes(study):
    workdir, _ = study
    runs = (workdir / "results/runs.tsv").read_text()
    diverged = next(line.split("\t")[0] for line in runs.splitlines() if line.startswith("vit-"))
    unfit = next(line.split("\t")[0] for line in runs.splitlines()
                 if line.startswith("fc-sgd-") and "1e-05" in line)
    for split in ("train", "test"):
        summary = (workdir / f"results/analysis/{split}/summary.md").read_text()
        assert f"{diverged}" in summary and "diverged at step" in summary
        assert f"{unfit}" in summary and "final train error" in summary
        configurations = (workdir / f"results/analysis/{split}/configurations.tsv").read_text()
        assert diverged not in configurations and "vit" not in configurations
        for name in ("dendrogram.png", "factors.png", "distance_to_geodesic.png", "tube_width.png", "speed.png"):
            assert (workdir / f"results/analysis/{split}/{name}").stat().st_size > 1000, name
        with h5py.File(workdir / f"results/analysis/{split}/equal_progress.h5") as f:
            assert f["D"].shape == (20, 7, 7)  # T = 20 index values, 6 runs and the geodesic
            assert np.allclose(f["mean"][()], f["D"][()].mean(0))
        # the map of whole trajectories: the 4 kept runs and the geodesic, its paragraph in the summary
        with h5py.File(workdir / f"results/analysis/{split}/trajectory_map.h5") as f:
            assert f["coords"].shape[0] == 5 and sorted(r.decode() for r in f["kind"][()]).count("run") == 4
            assert diverged.encode() not in f["run"][()] and 0 < f["explained_stress"][-1] <= 1
        for name in ("trajectory_map.png", "trajectory_map.html"):
            assert (workdir / f"results/analysis/{split}/{name}").stat().st_size > 1000, name
        assert "The map of whole trajectories" in summary
    # the trajectory stage stores plans, not probabilities: a few numbers per trajectory and t
    for plan in (workdir / "results/trajectories").glob("*.h5"):
        with h5py.File(plan) as f:
            assert not any(name.endswith("_probs") for name in f) and f["train_rows"].shape[1:] == (20, 2)


def test_a_finished_study_loads_in_one_line_for_ones_own_analysis(study):
    import inpca.results

    workdir, _ = study
    with inpca.results.load(workdir / "results") as results:
        m = len(results.index)
        assert len(results.runs) == 6 and set(results.runs["run"]) <= set(results.index["run"])
        assert results.embedding("train")["coords"].shape == (m, 4)
        assert results.distances("test").shape == (m, m)
        assert results.equal_progress("train").shape == (20, 7, 7)
        reindexed = results.reindexed("test")
        assert len(reindexed) == 7 and reindexed.run == results.trajectories["run"].tolist()
        assert reindexed.run[0] == "geodesic" and reindexed.t[-1] == 1.0
        assert reindexed[3].shape == (20, 450, 10)
        np.testing.assert_allclose(reindexed[3].sum(-1), 1.0, atol=1e-5)
        assert "architecture" in set(results.analysis("train", "factors")["factor"])
    with pytest.raises(ValueError, match="no such folder"):
        inpca.results.load(workdir / "no-results")


def test_second_dry_run_has_nothing_to_do(study):
    workdir, _ = study
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_adding_one_network_reruns_one_training_one_block_and_its_tiles_only(study, tmp_path):
    workdir, _ = study
    cfg = config_of(workdir)
    n_blocks = len(list((workdir / "results/store").glob("b*.h5")))
    cfg["grid"].append({"arch": {"name": "fc", "width": 24, "depth": 1}, "optimizer": {"name": "adam", "lr": 0.01},
                        "batch_size": 128, "epochs": 2})
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    try:
        counts = dry_run(workdir)
    finally:
        (workdir / "config.yaml").write_text((REPO / "tests/workflow/config.yaml").read_text())
    assert counts["train_run"] == 1
    assert counts["store_block"] == 1 and "store_reference" not in counts
    # the new run's block is either an existing one (tiles with every block incl. ref and itself)
    # or a new one (one more); per split at most B + 1 of the (B+1)(B+2)/2 tiles
    assert counts["distance_tile"] in (2 * (n_blocks + 1), 2 * (n_blocks + 2))
    assert "assemble_distances" not in counts and counts["embed"] == 2
    # the trajectory stage: one reindexing job, the equal-progress tiles of that block, then the
    # cheap assembly and every analysis of both splits
    assert counts["reindex"] == 1 and counts["trajectory_index"] == 1
    assert counts["equal_progress_tile"] == counts["distance_tile"]
    assert counts["assemble_equal_progress"] == 2
    for rule in ("analysis_configurations", "analysis_factors", "analysis_geodesic", "analysis_tube",
                 "analysis_speed", "analysis_summary"):
        assert counts[rule] == 2, rule


def test_editing_a_comment_in_the_config_or_a_plot_script_retrains_nothing(study):
    workdir, _ = study
    config = workdir / "config.yaml"
    original = config.read_text()
    config.write_text("# a comment that changes nothing\n" + original)
    try:
        assert "Nothing to be done" in "".join(snakemake(workdir, "-n").stdout)
    finally:
        config.write_text(original)
    script = workdir / "scripts/plot_spectrum.py"
    script.write_text(script.read_text() + "\n# edited\n")
    counts = dry_run(workdir)
    assert set(counts) <= {"plot_spectrum", "all"}, counts
    assert counts.get("plot_spectrum") == 2


@pytest.fixture(scope="module")
def report(study):
    """The report built and unpacked with the README's commands: (workdir, path of its report.html)."""
    workdir, _ = study
    proc = snakemake(workdir, "--report", "inpca-report.zip")
    with zipfile.ZipFile(workdir / "inpca-report.zip") as archive:
        archive.extractall(workdir)
    return workdir, workdir / "inpca-report/report.html", proc.stdout + proc.stderr


def test_report_builds_after_a_run_without_docutils_errors_and_names_the_number_of_networks(report):
    workdir, report_html, output = report
    assert "ERROR/" not in output and "Undefined substitution" not in output
    html = report_html.read_text(errors="replace")
    assert "trajectories" in html.lower()
    assert "trajectories of 6 networks" in html
    # the figures are files beside the page, not data: URLs inside it (Chromium loads none over 2 MB)
    assert len(list((workdir / "inpca-report/data/raw").glob("*/trajectories.html"))) == 2
    assert "data:text/html" not in html


@pytest.mark.browser
def test_every_entry_of_the_report_opens_and_renders_in_headless_chromium(report, tmp_path):
    """Each entry opened as a reader does (menu, toggle, row, eye button): the 3-D map drew its traces
    with WebGL, the summary shows its headings, an image loaded at its size. A screenshot of each
    entry is left in tmp_path (named in a failure)."""
    assert missing_browser() is None, missing_browser()
    workdir, report_html, _ = report
    failures, checked = [], {}
    with chromium() as driver:
        results, category_of = report_results(driver, report_html)
        for path, entry in results.items():
            screenshot = tmp_path / (path.replace("/", "_") + ".png")
            try:
                checked[path] = check_entry(driver, report_html, path, entry, category_of[path], workdir)
            except AssertionError as error:
                failures.append(f"{error} (screenshot: {screenshot})")
            driver.save_screenshot(str(screenshot))
    shown = {f"{entry['labels'].get('split')}/{Path(path).name}" for path, entry in results.items()}
    failures += [f"{split}/{name} is not in the report" for split in ("train", "test")
                 for name in ("trajectories.html", "trajectories.png", "summary.html", "dendrogram.png")
                 if f"{split}/{name}" not in shown]
    assert not failures, "\n".join(failures)
    print(f"screenshots in {tmp_path}:", *(f"{path}: {what}" for path, what in checked.items()), sep="\n  ")


def test_bad_config_fails_at_parse_time_naming_the_key(tmp_path):
    cfg = yaml.safe_load((REPO / "tests/workflow/config.yaml").read_text())
    cfg["store"]["blocks"] = 0
    workdir = copy_workflow(tmp_path, cfg)
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "config error: store.blocks: 0 is less than the minimum of 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (workdir / "results").exists()


def test_a_nan_in_the_config_stops_the_parse_in_one_line_instead_of_hanging(tmp_path):
    """The drill's command: it once spun at 100 % CPU forever (the default filler compared NaN with itself)."""
    workdir = copy_workflow(tmp_path)
    grid = "grid=[{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: nan}}]"
    proc = snakemake(workdir, "-n", "--config", grid, check=False, timeout=120)
    assert proc.returncode != 0
    assert "config error: grid[0].optimizer.lr: nan is not a finite number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_cifar10_data_stops_the_dry_run_with_one_line_naming_the_folder_and_both_remedies(tmp_path):
    cfg = yaml.safe_load((REPO / "tests/workflow/config.yaml").read_text())
    cfg["dataset"] = {"name": "cifar10", "data_dir": "data/cifar10", "download": False}
    workdir = copy_workflow(tmp_path, cfg)
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    line = next(line for line in proc.stderr.splitlines() if line.startswith("config error:"))
    assert str(workdir / "data/cifar10/cifar-10-batches-py") in line
    assert "put the extracted CIFAR-10" in line and "dataset.download: true" in line
    assert "Traceback" not in proc.stderr


def test_nested_config_overrides_given_as_text_are_typed_by_the_schema(tmp_path):
    """--config passes nested values as text; the schema's types convert them (they failed with
    "'1' is not of type 'integer'")."""
    workdir = copy_workflow(tmp_path)
    grid = "grid=[{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: 0.1}, seed: [0, 1], epochs: 1}]"
    counts = dry_run(workdir, "--config", grid, "store={blocks: 2}")
    assert counts["train_run"] == 2 and counts["store_block"] <= 2


def test_a_corrupt_run_file_names_a_command_that_rebuilds_it_and_the_command_works(study, tmp_path):
    """Truncate a run file of a finished study: the store refuses it naming `rm ... && snakemake`;
    that command retrains the run and brings the study back to complete (it once said "Nothing to
    be done", because Snakemake does not rebuild a missing intermediate whose outputs exist)."""
    import shutil

    finished, _ = study
    workdir = tmp_path / "study"
    shutil.copytree(finished, workdir, symlinks=True)  # copy2 keeps the mtimes Snakemake compares
    run_file = sorted((workdir / "results/runs").glob("*.h5"))[0]
    original = run_file.read_bytes()
    run_file.write_bytes(original[: len(original) // 2])
    block = next(line.split("\t")[1] for line in (workdir / "results/runs.tsv").read_text().splitlines()
                 if line.startswith(run_file.stem))
    failed = snakemake(workdir, check=False)
    assert failed.returncode != 0
    # the remedy names the Snakemake that runs (this venv's, not on PATH): run it exactly as printed
    command = f"rm results/runs/{run_file.name} && {SNAKEMAKE} --cores all"
    assert command in failed.stdout + failed.stderr
    subprocess.run(command, shell=True, cwd=workdir, check=True, capture_output=True,
                   env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"})
    assert run_file.read_bytes() == original  # retrained bit for bit
    assert (workdir / f"results/store/{block}.h5").exists()
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout


def test_a_job_killed_mid_way_is_redone_and_resumes_from_its_saved_state(study, tmp_path):
    """SIGKILL the whole snakemake process group while a network trains; the next run finishes the
    job from the state saved after its first epoch, and the run file equals an uninterrupted one."""
    import signal
    import time

    reference_dir, _ = study
    cfg = config_of(reference_dir)
    # ~20 s of training, long enough to be caught mid-way; a state is saved after every epoch
    cfg["grid"] = [{**cfg["grid"][0], "epochs": 12, "seed": 0, "batch_size": 16,
                    "arch": {"name": "allcnn", "width": 0.25}}]
    workdir = copy_workflow(tmp_path, cfg)
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "1", "train"], cwd=workdir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list((workdir / "results/state").glob("*/state.pt")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((workdir / "results/state").glob("*/state.pt")), "training never saved a state"
    assert not list((workdir / "results/runs").glob("*.h5")), "a killed job left a run file that looks complete"
    snakemake(workdir, "--unlock")  # a killed snakemake leaves its lock behind, as after a crash
    snakemake(workdir, "train")
    run_file = next((workdir / "results/runs").glob("*.h5"))
    log = (workdir / "results/logs/train" / f"{run_file.stem}.log").read_text()
    assert "resumed from" in log
    assert not (workdir / "results/state" / run_file.stem).exists()
    # the same run trained without interruption, in a fresh folder, gives the same bytes
    (tmp_path / "fresh").mkdir()
    fresh = copy_workflow(tmp_path / "fresh", cfg)
    snakemake(fresh, "train")
    assert (fresh / "results/runs" / run_file.name).read_bytes() == run_file.read_bytes()


def test_forcerun_and_until_plan_only_what_they_name(study):
    workdir, _ = study
    proc = snakemake(workdir, "-n", "--forcerun", "embed")
    counts = job_counts(proc.stdout + proc.stderr)
    # the summary quotes the embedding's explained stress
    assert counts == {"embed": 2, "plot_trajectories": 2, "plot_spectrum": 2, "plot_progress": 2, "analysis_summary": 2,
                      "all": 1}
    assert "Forced execution" in proc.stdout + proc.stderr  # -n prints the reason per job
    until = snakemake(workdir, "-n", "--until", "store_index")
    assert not job_counts(until.stdout + until.stderr)  # the store is complete: nothing up to it runs


def record_mlp(path, dataset, seed=0, steps=(0, 5, 10, 20)):
    """A small MLP trained in a plain loop with the recorder, as a user's own code would."""
    import torch

    from inpca.record import Recorder

    torch.manual_seed(seed)
    n_inputs = int(np.prod(dataset.input_shape))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_inputs, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, dataset.num_classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.from_numpy(dataset.x_train).float() / 255.0
    y = torch.from_numpy(dataset.y_train)
    with Recorder.for_dataset(path, dataset, config={"arch": "mlp", "seed": seed}, steps=list(steps)) as recorder:
        for step in range(max(steps) + 1):
            if recorder.due(step):
                recorder.record(model, step=step, epoch=step / 10)
            batch = torch.randint(0, len(y), (64,))
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return path


def test_a_recording_on_the_study_data_joins_the_grid_runs_and_one_on_other_data_is_refused(tmp_path):
    from inpca.data import load_study_dataset

    cfg = config_of(copy_workflow(tmp_path / "probe"))
    cfg["grid"] = cfg["grid"][:1]
    cfg["grid"][0].update(arch={"name": "fc", "width": 16, "depth": 1}, seed=0, epochs=1)
    cfg["imports"] = [{"path": "recorded/*.h5"}]
    workdir = copy_workflow(tmp_path / "study", cfg)
    record_mlp(workdir / "recorded/mlp.h5", load_study_dataset({"name": "digits"}))
    snakemake(workdir, "store")
    index = (workdir / "results/store/index.tsv").read_text()
    runs = {line.split("\t")[3] for line in index.splitlines()[1:]}
    assert any(r.startswith("fc-sgd-s0-") for r in runs) and any(r.startswith("rec-mlp-") for r in runs)
    assert "Nothing to be done" in snakemake(workdir, "-n", "store").stdout  # importing again: nothing to do
    # a recording on other data (the only one, so the parse-time check between recordings passes):
    # its import job refuses it in one line naming both files
    (workdir / "recorded/mlp.h5").unlink()
    record_mlp(workdir / "recorded/other.h5", load_study_dataset({"name": "synthetic", "input_shape": [8]}))
    proc = snakemake(workdir, "store", check=False)
    assert proc.returncode != 0
    line = next(line for line in (proc.stdout + proc.stderr).splitlines() if "recorded on other data" in line)
    assert "recorded/other.h5" in line and "results/store/ref.h5" in line


def test_a_configfile_is_a_whole_study_not_merged_into_config_yaml(tmp_path):
    """--configfile replaces config.yaml (merging would mix config.yaml's digits split into another
    data set's section, which the schema refuses); --config still applies on top."""
    cfg = config_of(copy_workflow(tmp_path / "probe"))
    cfg["dataset"] = {"name": "digits", "test_fraction": 0.25, "split_seed": 0}
    workdir = copy_workflow(tmp_path / "study", cfg)
    other = {"dataset": {"name": "synthetic", "input_shape": [8]},
             "grid": [{"arch": {"name": "fc", "width": 8, "depth": 1}, "optimizer": {"name": "adam", "lr": 0.01},
                       "seed": [0, 1, 2]}]}
    (workdir / "other.yaml").write_text(yaml.safe_dump(other))
    proc = snakemake(workdir, "-n", "--configfile", "other.yaml", "--config", "device=cpu")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train_run"] == 3 and "import_run" not in counts
    assert "is extended by additional config" not in proc.stdout + proc.stderr  # it is not: it is replaced


def test_a_study_of_another_config_file_writes_to_its_own_folder_and_never_into_another_studys(tmp_path):
    """The README's own-training study, run from the repository root, once rebuilt the default study's
    results/ (43 jobs) and left the old blocks beside the new ones."""
    workdir = copy_workflow(tmp_path)
    snakemake(workdir, "results/store/ref.h5")  # a real run of the default study marks results/ as its own
    assert (workdir / "results/.inpca-study").read_text() == "config.yaml\n"
    other = config_of(workdir)
    other["grid"] = other["grid"][:1]
    (workdir / "my_study.yaml").write_text(yaml.safe_dump(other))
    proc = snakemake(workdir, "-n", "--configfile", "my_study.yaml")
    planned = [line.split("output: ", 1)[1] for line in proc.stdout.splitlines() if "output: " in line]
    assert planned and all(path.startswith("results-my_study/") for line in planned for path in line.split(", "))
    # the same folder for both, asked for explicitly: refused in one line naming both config files
    refused = snakemake(workdir, "-n", "--configfile", "my_study.yaml", "--config", "results=results", check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    line = next(line for line in refused.stderr.splitlines() if line.startswith("config error:"))
    assert line == ("config error: results: results holds the study of config.yaml, and my_study.yaml would "
                    "overwrite it; give this study a folder of its own (results: <folder> in my_study.yaml; left "
                    "out, it is results-my_study), or delete results/.inpca-study if my_study.yaml is that study "
                    "moved or renamed")


def test_landmark_embedding_on_virtual_blocks_computes_distances_to_the_landmarks_only(tmp_path):
    cfg = config_of(copy_workflow(tmp_path / "probe"))
    cfg["grid"] = cfg["grid"][:1]
    cfg["embedding"] = {"n_components": 4, "method": "landmarks", "landmark_every": 2}
    cfg["store"] = {"blocks": 3, "layout": "virtual"}  # and blocks that read the run files in place
    workdir = copy_workflow(tmp_path / "study", cfg)
    counts = dry_run(workdir, "embedding")
    assert counts["landmark_tile"] == counts.get("landmark_tile") > 0 and "distance_tile" not in counts
    snakemake(workdir, "embedding")
    for split in ("train", "test"):
        with h5py.File(workdir / f"results/embedding/{split}.h5") as f:
            m = f.attrs["n_points"]
            assert f.attrs["method"] == "landmarks" and 0 < f.attrs["n_landmarks"] < m
            assert f["coords"].shape == (m, 4) and np.isfinite(f["coords"][()]).all()
    with h5py.File(workdir / "results/embedding/test.h5") as f:
        assert np.isfinite(f["coords_in_train"][()]).all()
    with h5py.File(workdir / "results/store/b000.h5") as f:
        assert f["train_probs"].is_virtual
    # adding a run recomputes the landmark tiles of its block only
    cfg["grid"].append({"arch": {"name": "fc", "width": 24, "depth": 1}, "optimizer": {"name": "adam", "lr": 0.01},
                        "batch_size": 128, "epochs": 1})
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    blocks = len(list((workdir / "results/store").glob("b*.h5")))
    counts = dry_run(workdir, "embedding")
    assert counts["train_run"] == 1 and counts["store_block"] == 1
    assert counts["landmark_tile"] in (2 * (blocks + 1), 2 * (blocks + 2))
