"""The study config (inpca.config): schema validation, defaults, text typed by the schema, semantic checks."""

import copy
from pathlib import Path

import pytest

from inpca.config import load_schema, validate_config
from inpca.errors import ConfigError
from inpca.study import load_study
from inpca.testing import REPO

SCHEMA = REPO / "inpca" / "schemas" / "config.schema.yaml"




def test_defaults_are_filled_in_nested_and_in_grid_items(plan):
    s = plan()
    assert s.config["dataset"] == {**s.config["dataset"], "name": "digits", "test_fraction": 0.25}
    assert s.config["store"]["blocks"] == 4
    entry = s.config["grid"][0]
    assert entry["batch_size"] == 64 and entry["lr_schedule"] == "cosine" and entry["precision"] == "fp32"


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"dataset": {"name": "mnist"}}, r"dataset\.name: 'mnist' is not one of"),
        ({"store": {"blocks": 0}}, r"store\.blocks: 0 is less than the minimum of 1"),
        ({"embedding": {"n_componentz": 3}}, r"unknown key 'n_componentz' in embedding; allowed: landmark_every, method, n_components"),
        ({"device": "tpu"}, r"device: 'tpu' is not one of"),
        ({"colour": 1}, r"unknown key 'colour' in \(top level\)"),
        ({"grid": [{"arch": {"name": "fc"}, "optimizer": {"name": "sgd", "lr": -1}}]},
         r"grid\[0\]\.optimizer\.lr: -1 is less than or equal to the minimum of 0"),
        ({"grid": [{"arch": {"name": "fc"}, "optimizer": {"name": "sgd", "lr": 0.1}, "seed": "x"}]}, r"grid\[0\]\.seed"),
        ({"grid": [{"arch": {"name": "fc"}, "optimizer": {"name": "adam", "lr": 0.1, "nesterov": True}}]},
         r"unknown key 'nesterov' in grid\[0\]\.optimizer; allowed: betas, lr, name"),
        ({"grid": [{"arch": {"name": "fc", "width": 8, "depth": 1, "heads": 3}, "optimizer": {"name": "sgd", "lr": 0.1}}]},
         r"unknown key 'heads' in grid\[0\]\.arch; allowed: depth, name, width, widths"),
        ({"grid": [{"arch": [{"name": "vit", "widen": 2}], "optimizer": {"name": "sgd", "lr": 0.1}}]},
         r"unknown key 'widen' in grid\[0\]\.arch\[0\]; allowed: depth, dim, head_dim, heads, mlp_dim, name, patch"),
        ({"grid": [{"arch": {"name": "wrn", "depth": 12}, "optimizer": {"name": "sgd", "lr": 0.1}}]},
         r"grid\[0\]\.arch wrn: depth must be 6n\+4"),
        ({"grid": [{"arch": {"name": "vit", "patch": 3}, "optimizer": {"name": "sgd", "lr": 0.1}}]},
         r"arch vit: patch 3 must divide the image size 8x8"),
        ({"grid": [{"arch": {"name": "fc"}, "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 5000}]},
         r"grid\[0\]\.batch_size: 5000 exceeds the 1347 training samples of digits"),
        ({"dataset": {"name": "digits", "n_train": 100}}, r"unknown key 'n_train' in dataset"),
        ({"dataset": {"name": "synthetic", "input_shape": [20]},
          "grid": [{"arch": {"name": "allcnn"}, "optimizer": {"name": "sgd", "lr": 0.1}}]},
         r"arch allcnn needs image input"),
        ({"grid": [{"optimizer": {"name": "adam", "lr": 0.1}}]}, r"'arch' is a required property"),
    ],
)
def test_bad_configs_fail_with_one_line_naming_the_key(patch, message, base_config):
    cfg = {**copy.deepcopy(base_config), **patch}
    with pytest.raises(ConfigError, match=message) as info:
        validate_config(cfg, load_schema(SCHEMA))
    assert "\n" not in str(info.value)


def test_shipped_configs_are_valid():
    import yaml

    for path in [REPO / "config.yaml", REPO / "tests/workflow/config.yaml", *sorted((REPO / "presets").glob("*.yaml"))]:
        load_study(yaml.safe_load(path.read_text()), SCHEMA, check_data=False)


def test_values_given_as_text_are_converted_to_the_schema_types(plan):
    """Snakemake's --config passes nested values as text ("8", "0.1", "true")."""
    text = {"grid": [{"arch": {"name": "fc", "width": "8", "depth": "1"},
                      "optimizer": {"name": "sgd", "lr": "0.1", "momentum": "0.9", "nesterov": "true"},
                      "seed": ["0", "1"], "weight_decay": "0", "augment": "false"}],
            "store": {"blocks": "3"}}
    typed = {"grid": [{"arch": {"name": "fc", "width": 8, "depth": 1},
                       "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
                       "seed": [0, 1], "weight_decay": 0.0, "augment": False}],
             "store": {"blocks": 3}}
    assert plan(text).runs == plan(typed).runs
    assert plan(text).config["store"]["blocks"] == 3
    with pytest.raises(ConfigError, match=r"grid\[0\]\.epochs: 'ten' is not valid.*--configfile|epochs.*--configfile"):
        plan({"grid": [{"arch": {"name": "fc"}, "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": "ten"}]})


def test_missing_cifar10_data_is_found_at_parse_time_with_both_remedies(tmp_path, monkeypatch, plan, base_config):
    monkeypatch.chdir(tmp_path)
    cfg = {"dataset": {"name": "cifar10", "data_dir": "nowhere"}, "grid": base_config["grid"]}
    with pytest.raises(ConfigError) as info:
        plan(cfg)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "put the extracted CIFAR-10" in message and "dataset.download: true" in message and "\n" not in message
    plan({**cfg, "dataset": {**cfg["dataset"], "download": True}})  # downloading is the job's business


# --- NaN and infinities: refused at parse, wherever they stand (they once hung the default filler) ----------


def _parse_with_timeout(cfg, seconds=60):
    """validate_config in a thread: a filler that never settles fails the test instead of hanging it."""
    import threading

    outcome = {}

    def target():
        try:
            outcome["config"] = validate_config(cfg)
        except ConfigError as error:
            outcome["error"] = str(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"parsing {cfg} did not finish within {seconds} s"
    return outcome


@pytest.mark.parametrize("yaml_text, where", [
    ("grid: [{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: .nan}}]", "grid[0].optimizer.lr: nan"),
    ("grid: [{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: .inf}}]", "grid[0].optimizer.lr: inf"),
    ("grid: [{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: 0.1}, weight_decay: [0.0, -.inf]}]",
     "grid[0].weight_decay[1]: -inf"),
    ("grid: [{arch: {name: allcnn, width: .nan}, optimizer: {name: adam, lr: 0.001}}]", "grid[0].arch.width: nan"),
    ("store: {sum_tolerance: .nan}\ngrid: [{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: 0.1}}]",
     "store.sum_tolerance: nan"),
    ("analysis: {max_final_train_error: .nan}\n"
     "grid: [{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: 0.1}}]",
     "analysis.max_final_train_error: nan"),
    # --config passes nested values as text: "nan" parses as a float and is refused the same way
    ("grid: [{arch: {name: fc, width: 8, depth: 1}, optimizer: {name: sgd, lr: 'nan'}}]", "grid[0].optimizer.lr: nan"),
])
def test_nan_and_infinities_are_refused_in_one_line_naming_the_key(yaml_text, where):
    import yaml

    outcome = _parse_with_timeout(yaml.safe_load(yaml_text))
    assert outcome.get("error") == f"{where} is not a finite number"


def test_filling_defaults_settles_in_a_bounded_number_of_rounds_on_any_input():
    """The filler counts what it fills instead of comparing the config with a copy (NaN != NaN)."""
    from inpca.config import _fill_defaults

    schema = load_schema(SCHEMA)
    cfg = {"grid": [{"arch": {"name": "fc", "widths": [8]}, "optimizer": {"name": "sgd", "lr": float("nan")}}]}
    filled = _fill_defaults(cfg, schema, schema)
    assert filled["grid"][0]["optimizer"]["momentum"] == 0.0 and filled["store"]["blocks"] == 4


def test_a_typo_in_plots_color_by_stops_the_parse_naming_the_columns(plan, base_config):
    cfg = copy.deepcopy(base_config)
    cfg["plots"] = {"color_by": "archh"}
    with pytest.raises(ConfigError, match=r"^plots.color_by: 'archh' is not a column of index.tsv; available "
                                          r"columns: point, block, .*optimizer.lr"):
        plan(cfg)
    cfg["plots"] = {"color_by": "lr"}  # the one column ending in .lr
    assert plan(cfg).config["plots"]["color_by"] == "lr"
    cfg["plots"] = {"color_by": "name"}  # arch.name or optimizer.name
    with pytest.raises(ConfigError, match=r"ambiguous: arch.name, .*optimizer.name"):
        plan(cfg)


@pytest.mark.parametrize("dataset, message", [
    ({"name": "digits", "keep_every": 100000},
     "dataset.keep_every: 100000 keeps 1 of the 1347 train samples of digits; each split must keep at least 100 "
     "(10 per class: distances and errors are means over the recorded samples): use keep_every <= 4"),
    ({"name": "digits", "keep_every": 5}, "dataset.keep_every: 5 keeps 90 of the 450 test samples of digits; "),
    ({"name": "synthetic", "n_test": 20, "num_classes": 4}, "dataset: synthetic has 20 test samples; each split must "
                                                            "keep at least 40 (10 per class"),
])
def test_a_data_set_or_keep_every_that_leaves_too_few_samples_is_refused(dataset, message, plan, base_config):
    cfg = {**copy.deepcopy(base_config), "dataset": dataset}
    with pytest.raises(ConfigError) as info:
        plan(cfg)
    assert str(info.value).startswith(message)


def test_the_largest_keep_every_the_refusal_suggests_is_accepted(plan, base_config):
    assert len(plan({**copy.deepcopy(base_config), "dataset": {"name": "digits", "keep_every": 4}}).runs) == 8


def test_a_printed_remedy_reruns_the_study_that_holds_the_file(tmp_path):
    from inpca.folders import STUDY_MARKER, study_command

    (tmp_path / "results-zoo" / "store").mkdir(parents=True)
    (tmp_path / "results-zoo" / STUDY_MARKER).write_text("presets/digits-zoo.yaml\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / STUDY_MARKER).write_text("config.yaml\n")
    command = study_command(tmp_path / "results-zoo" / "store" / "b000.h5", "store")
    assert command.endswith("--cores all store --configfile presets/digits-zoo.yaml")  # the target before it
    assert study_command(tmp_path / "results" / "x.h5").endswith("--cores all")
    assert study_command(tmp_path / "elsewhere.h5", "distances").endswith("--cores all distances")


def test_a_missing_results_folder_names_the_study_that_makes_it(tmp_path, monkeypatch):
    """inpca.results.load / Atlas.load of a folder not made yet: the command of *its* study, not the
    default one (which would write results/ and still not make the folder asked for)."""
    from inpca.folders import command_for_folder
    from inpca.errors import ResultsError
    from inpca.results import load

    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "digits-zoo.yaml").write_text("")
    (tmp_path / "mine.yaml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert command_for_folder("results").endswith("--cores all")
    assert command_for_folder("results-digits-zoo").endswith("--cores all --configfile presets/digits-zoo.yaml")
    assert command_for_folder("results-mine").endswith("--cores all --configfile mine.yaml")
    assert "no such file" in command_for_folder("results-other")
    assert "results: key names" in command_for_folder(tmp_path / "scratch")
    with pytest.raises(ResultsError, match="--configfile presets/digits-zoo.yaml"):
        load("results-digits-zoo")


def test_a_printed_remedy_runs_from_anywhere_and_promises_no_rebuild_outside_a_study(tmp_path, monkeypatch):
    """From another folder (a notebook, the atlas command) the remedy first goes where the study's
    Snakefile is; in that folder it does not; a file no study made gets no `rm ... && snakemake`."""
    import shlex

    from inpca.folders import STUDY_MARKER, study_command
    from inpca.errors import rebuild_hint

    workdir = tmp_path / "my repo"
    (workdir / "results" / "runs").mkdir(parents=True)
    (workdir / "Snakefile").write_text("")
    (workdir / "results" / STUDY_MARKER).write_text("config.yaml\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    command = study_command(workdir / "results" / "runs" / "a.h5")
    assert command.startswith(f"cd {shlex.quote(str(workdir.resolve()))} && ") and command.endswith("--cores all")
    assert rebuild_hint(workdir / "results" / "runs" / "a.h5").endswith(command)
    monkeypatch.chdir(workdir)
    assert not study_command(Path("results/runs/a.h5")).startswith("cd ")
    assert rebuild_hint(Path("results/runs/a.h5")).startswith("delete it and rerun Snakemake")
    outside = rebuild_hint(tmp_path / "elsewhere" / "my_recording.h5")
    assert "snakemake" not in outside and "nothing rebuilds it" in outside
