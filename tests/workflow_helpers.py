"""Shared by the workflow and cluster tests: a copy of the workflow in a temp folder, job counts, and a
study's distances read from its tiles."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_FILES = ["Snakefile", "rules", "scripts", "schemas", "report", "profiles", "envs", "inpca"]


def copy_workflow(dest: Path, config: dict | None = None) -> Path:
    """The workflow's files and a study config (default: the tiny tests/workflow/config.yaml) in dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    text = (REPO / "tests/workflow/config.yaml").read_text()
    (dest / "config.yaml").write_text(text if config is None else yaml.safe_dump(config))
    return dest


def snakemake(workdir: Path, *args, check=True, timeout=600) -> subprocess.CompletedProcess:
    """The real Snakemake of this venv on 2 cores in `workdir`; with `check`, a failure shows its output."""
    proc = subprocess.run([SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def dry_run(workdir: Path, *args) -> dict[str, int]:
    """Job counts of `snakemake -n`."""
    proc = snakemake(workdir, "-n", *args)
    return job_counts(proc.stdout + proc.stderr)


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (printed by dry runs and real runs), rule -> count, no total."""
    counts = {}
    if "Job stats:" in output:
        for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
            match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if not match:
                break
            counts[match.group(1)] = int(match.group(2))
    counts.pop("total", None)
    return counts


def split_distances(workdir: Path, split: str):
    """The (M, M) distances of a finished study, read from its tiles (no assembled copy is made)."""
    from inpca.tiles import TiledMatrix, study_tile_paths

    index = workdir / "results/store/index.tsv"
    return TiledMatrix(study_tile_paths(workdir / f"results/distances/{split}/tiles", index), index)
