"""The package as users install it (issue 27): the wheel built from this checkout, installed without -e
into a fresh venv outside the checkout, records a run, places it in an atlas and opens a study, from a
folder that has nothing of the repository in it. What the package reads at run time (the config schema)
must ship inside the wheel; the repository is not there to fall back on."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from inpca.testing import REPO

pytestmark = pytest.mark.workflow

# What a wheel is built from: the package and the project's metadata (README.md is its long description).
SOURCES = ["pyproject.toml", "README.md", "inpca"]
PURELIB = "import sysconfig; print(sysconfig.get_path('purelib'))"


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def outside_env() -> dict:
    """The environment of a user's shell: nothing that points Python at this checkout or this venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                                                             "PYTHONSAFEPATH", "PYTHONSTARTUP")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel --no-deps .` of this checkout (its package and metadata, copied so that the build leaves
    no build/ or egg-info in the checkout); without build isolation when setuptools is here (no index)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, source / name)
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", root / "dist", source,
        env=outside_env())
    (built,) = (root / "dist").glob("inpca-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel installed (no -e); the dependencies are this
    environment's, reused through a .pth line (a plain path: this venv's own .pth files, among them the
    checkout's editable install, are not processed, so `inpca` can only come from the wheel)."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", folder)
    python = folder / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel,
        env=outside_env())
    site = Path(run(python, "-c", PURELIB).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (site / "zz_dependencies_of_the_test_environment.pth").write_text("".join(f"{p}\n" for p in ours))
    return folder


def in_venv(venv: Path, code: str, *args, cwd: Path) -> dict:
    """`code` run as a script by the venv's python in `cwd` (outside the checkout); its last stdout line
    as JSON."""
    script = cwd / "script.py"
    script.write_text(code)
    proc = run(venv / "bin" / "python", script, *args, cwd=cwd, env=outside_env())
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_wheel_carries_the_package_and_the_schema_and_nothing_of_the_workflow(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "inpca/schemas/config.schema.yaml" in names and "inpca/__init__.py" in names
    assert not [n for n in names if n.split("/")[0] in ("rules", "scripts", "report", "schemas", "tests")]


WHERE = """
import json, sys
import inpca, inpca.record
from inpca.config import SCHEMA_PATH, complete_section
print(json.dumps({"inpca": inpca.__file__, "schema": str(SCHEMA_PATH),
                  "arch": complete_section("arch", {"name": "fc", "width": 8, "depth": 1}),
                  "torch": "torch" in sys.modules}))
"""


def test_the_installed_package_is_the_wheels_and_checks_a_config_with_its_own_schema(venv, tmp_path):
    out = in_venv(venv, WHERE, cwd=tmp_path)
    site = Path(run(venv / "bin" / "python", "-c", PURELIB).stdout.strip())
    assert Path(out["inpca"]).parent == site / "inpca"
    assert Path(out["schema"]) == site / "inpca" / "schemas" / "config.schema.yaml"
    assert out["arch"]["widths"] == [8]


RECORD = """
import json, sys
from pathlib import Path

import numpy as np
import torch

import inpca
import inpca.files
import inpca.runfile
from inpca import Atlas, Recorder, load

atlas_folder, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.manual_seed(0)
with Atlas.load(atlas_folder) as atlas:
    dataset = atlas.dataset()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(dataset.input_shape)),
                                                                    dataset.num_classes))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.as_tensor(dataset.x_train), torch.as_tensor(dataset.y_train)
    recorder = Recorder.for_atlas(out / "linear.h5", atlas, config={"arch": "linear", "optimizer": "sgd"},
                                  steps=[0, 4, 12], steps_per_epoch=4)
    with recorder:
        for step in range(13):
            if recorder.due(step):
                recorder.record(model, step=step)
            batch = torch.randint(0, len(y), (64,))
            loss = torch.nn.functional.cross_entropy(model(recorder.prepare(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    live = inpca.files.read_table(recorder.atlas_table)  # placed as recorded
    traced = atlas.trace(out / "linear.h5")  # the run file placed afterwards
    run = inpca.runfile.read_run(out / "linear.h5")
    placed = atlas.place({split: run[f"{split}_probs"][-1] for split in atlas.splits})
with load(atlas_folder) as study:
    runs, coords = len(study.runs), study.embedding("train")["coords"].shape
print(json.dumps({"inpca": inpca.__file__, "recorded": recorder.recorded_steps, "finished": recorder.finished,
                  "live": [float(p) for p in live["train_progress"]],
                  "traced": [float(p) for p in traced["train_progress"]],
                  "placed": {split: [float(p.progress), bool(np.isfinite(p.coords).all())]
                             for split, p in placed.items()},
                  "runs": runs, "coords": list(coords)}))
"""


def test_the_installed_package_records_a_run_places_it_in_an_atlas_and_opens_the_study(venv, default_study,
                                                                                       tmp_path):
    atlas_folder = default_study / "results"
    elsewhere = tmp_path / "my_project"
    elsewhere.mkdir()
    out = in_venv(venv, RECORD, atlas_folder, elsewhere, cwd=elsewhere)
    assert Path(out["inpca"]).is_relative_to(venv) and not Path(out["inpca"]).is_relative_to(REPO)
    assert out["finished"] and out["recorded"] == [0, 4, 12] and (elsewhere / "linear.h5").is_file()
    # the live rows are read back from <run>.atlas.tsv, written with 6 significant digits
    assert out["live"] == pytest.approx(out["traced"], rel=1e-5, abs=1e-9) and len(out["traced"]) == 3
    assert out["placed"]["train"] == [pytest.approx(out["traced"][-1], abs=1e-6), True]
    assert out["traced"][-1] > out["traced"][0]
    assert out["runs"] > 0 and out["coords"][0] > 0
