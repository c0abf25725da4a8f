"""Benchmark: how long Snakemake takes to parse the workflow and build the DAG of a 3,000-run study.

    .venv/bin/python benchmarks/dag.py                       # dry run through profiles/slurm
    .venv/bin/python benchmarks/dag.py --profile default     # through profiles/default
    .venv/bin/python benchmarks/dag.py --profile-python      # also cProfile the dry run (top 25)

The study: 6 architectures (those of presets/cifar10-paper.yaml) x 50 optimizer settings (25
optimizer/learning-rate pairs x 2 weight decays) x 10 seeds = 3,000 runs of 200 epochs on CIFAR-10
(keep_every 2) with the paper's checkpoint schedule, 64 store blocks, 99 geodesic points, both
splits. It is written with a copy of the workflow into a temp folder; no data set is needed, and the
data folder named in the config does not exist, so any parse-time read of the data would fail.

Reported: the wall time of `snakemake -n` (parse + DAG build + printing the plan) and of the same dry
run with `--quiet` (the summary only), the job count per rule, and whether parsing imported torch,
h5py (or numpy): the dry run runs with a `sitecustomize` that records every import of those modules
together with the stack that asked for it (it does not block the import, so a guarded
`try: import torch` is caught too). Exit status 1 if a heavy module was imported or the job counts
are not the expected ones; the time goal (60 s) is reported, not enforced.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from inpca.testing import copy_workflow, job_counts  # noqa: E402  (the tests' own helpers)
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
HEAVY = ("torch", "h5py", "numpy")
GOAL_S = 60.0

ARCHS = [
    {"name": "fc", "widths": [1024, 512, 256, 128]},
    {"name": "allcnn", "width": 1.0},
    {"name": "wrn", "depth": 10, "widen": 4, "base": 8},
    {"name": "wrn", "depth": 16, "widen": 4, "base": 64},
    {"name": "convmixer", "dim": 256, "depth": 8, "kernel": 5, "patch": 2},
    {"name": "vit", "patch": 4, "dim": 512, "depth": 6, "heads": 8, "mlp_dim": 512, "head_dim": 64},
]
LRS = {
    "sgd": [0.01, 0.02, 0.05, 0.1, 0.2],
    "sgdm": [0.01, 0.02, 0.05, 0.1, 0.2],
    "sgdn": [0.01, 0.02, 0.05, 0.1, 0.2],
    "adam": [0.0001, 0.0002, 0.0005, 0.001, 0.002],
    "adamw": [0.0001, 0.0002, 0.0005, 0.001, 0.002],
}


def optimizers() -> list[dict]:
    out = []
    for kind, lrs in LRS.items():
        for lr in lrs:
            if kind == "sgd":
                out.append({"name": "sgd", "lr": lr})
            elif kind == "sgdm":
                out.append({"name": "sgd", "lr": lr, "momentum": 0.9})
            elif kind == "sgdn":
                out.append({"name": "sgd", "lr": lr, "momentum": 0.9, "nesterov": True})
            else:
                out.append({"name": kind, "lr": lr})
    return out


def study_config(blocks: int = 64) -> dict:
    return {
        # download: true, so the missing data set is the training jobs' business (a dry run downloads nothing)
        "dataset": {"name": "cifar10", "data_dir": "data/does-not-exist", "download": True, "keep_every": 2},
        "grid": [{
            "arch": ARCHS,
            "optimizer": optimizers(),        # 25
            "batch_size": 200,
            "weight_decay": [0.0, 0.0005],    # x 2 = 50 settings
            "augment": False,
            "epochs": 200,
            "seed": list(range(10)),
        }],
        "checkpoints": {"schedule": "paper", "early_epochs": 5, "per_epoch": 4},
        "device": "auto",
        "store": {"blocks": blocks},
        "reference": {"geodesic_points": 99},
        "distance": {"splits": ["train", "test"]},
        "embedding": {"n_components": 10},
    }


def expected_counts(blocks: int, runs: int) -> dict[str, int]:
    n = blocks + 1  # + ref
    tiles = n * (n + 1) // 2
    # the default target: the distances stay tiles (no assemble_distances); the trajectory stage
    # reindexes every block (ref: the geodesic) and has a tile per pair of blocks, like the distances
    per_split = ("embed", "plot_trajectories", "plot_spectrum", "plot_progress", "assemble_equal_progress",
                 "analysis_configurations", "analysis_factors", "analysis_geodesic", "analysis_tube",
                 "analysis_speed", "analysis_trajectory_map", "analysis_summary")
    return {"train_run": runs, "store_block": blocks, "store_reference": 1, "store_index": 1, "runs_table": 1,
            "distance_tile": 2 * tiles, "reindex": n, "trajectory_index": 1, "equal_progress_tile": 2 * tiles,
            **{rule: 2 for rule in per_split}, "all": 1}


SITECUSTOMIZE = r'''
# Written by benchmarks/dag.py: record every import of the heavy modules, with the stack that asked.
import os, sys, traceback
_HEAVY = set(os.environ["INPCA_IMPORT_WATCH"].split(","))
_LOG = os.environ["INPCA_IMPORT_LOG"]

class _Watch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HEAVY and "." not in name:
            stack = "".join(traceback.format_stack(limit=12)[:-1])
            with open(_LOG, "a") as f:
                f.write(f"IMPORT {name} (pid {os.getpid()})\n{stack}\n")
        return None  # let the real finders import it

sys.meta_path.insert(0, _Watch())

# chain to another sitecustomize further down sys.path, if there is one
import importlib.machinery, importlib.util
_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here])
if _spec is not None and _spec.loader is not None:
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
'''


def dry_run(workdir: Path, profile: str, *extra: str, env: dict | None = None, timeout: int = 900):
    cmd = [SNAKEMAKE, "-n", "--workflow-profile", profile, *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds, proc.stdout + proc.stderr


def estimate_seconds(workdir: Path) -> dict[str, float]:
    """Time the resource helpers of train_run and distance_tile (rules/common.smk -> inpca.resources)
    over every job of the study, as Snakemake calls them (attempt 1), in a fresh interpreter."""
    code = f"""
import sys, time, yaml
sys.path.insert(0, {str(workdir)!r})
from inpca.study import load_study
from inpca import resources as r
study = load_study(yaml.safe_load(open({str(workdir / 'config.yaml')!r})))  # the schema of the package in workdir
t = time.perf_counter()
for run in study.runs.values():
    r.train_mem_mb(run, 1); r.train_runtime(run, True, 1)
t1 = time.perf_counter()
for a, b in study.tiles:
    r.tile_mem_mb(study, a, b, 1); r.tile_runtime(study, a, b, True, 1)
t2 = time.perf_counter()
print(t1 - t, t2 - t1, len(study.runs), len(study.tiles))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=900).stdout
    train_s, tile_s, runs, tiles = out.split()
    return {f"train_run: mem_mb + runtime, {int(runs)} runs": float(train_s),
            f"distance_tile: mem_mb + runtime, {int(tiles)} tiles (x2 splits)": 2 * float(tile_s)}


def profile_in_process(workdir: Path, profile: str, top: int = 25) -> str:
    """cProfile `snakemake -n --quiet` in this process (the same code path as the CLI)."""
    from snakemake.cli import main as snakemake_main

    argv, cwd = sys.argv, os.getcwd()
    prof = cProfile.Profile()
    try:
        os.chdir(workdir)
        sys.argv = ["snakemake", "-n", "--quiet", "--workflow-profile", profile]
        prof.enable()
        try:
            snakemake_main()
        except SystemExit:
            pass
        prof.disable()
    finally:
        sys.argv = argv
        os.chdir(cwd)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="slurm", help="workflow profile under profiles/ (default: slurm)")
    parser.add_argument("--blocks", type=int, default=64)
    parser.add_argument("--profile-python", action="store_true", help="cProfile the dry run and print the top")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="inpca-dag-"))
    try:
        config = study_config(args.blocks)
        workdir = copy_workflow(tmp / "wf", config)
        profile = f"profiles/{args.profile}"
        n_runs = len(ARCHS) * len(optimizers()) * 2 * 10
        print(f"study: {len(ARCHS)} architectures x {len(optimizers()) * 2} optimizer settings x 10 seeds "
              f"= {n_runs} runs, {args.blocks} store blocks; workflow copy in {workdir}")
        print(f"snakemake {subprocess.run([SNAKEMAKE, '--version'], capture_output=True, text=True).stdout.strip()}, "
              f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")

        # 1. the full dry run (prints every job), with the import watch
        hook = tmp / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
        log = tmp / "imports.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
                   INPCA_IMPORT_WATCH=",".join(HEAVY), INPCA_IMPORT_LOG=str(log))
        full_s, output = dry_run(workdir, profile, env=env)
        counts = job_counts(output)
        # 2. the same without printing the plan (--quiet), twice: the DAG build alone
        quiet = [dry_run(workdir, profile, "--quiet")[0] for _ in range(2)]

        print(f"\ndry run, full output ({len(output.splitlines())} lines):  {full_s:6.1f} s")
        print(f"dry run, --quiet (summary only):       {min(quiet):6.1f} s (best of 2; {quiet[0]:.1f}, {quiet[1]:.1f})")
        print(f"goal <= {GOAL_S:.0f} s: DAG build {'met' if min(quiet) <= GOAL_S else 'NOT met'}, "
              f"dry run with the plan printed {'met' if full_s <= GOAL_S else 'NOT met'}")
        est = estimate_seconds(workdir)
        print("the rules' resource estimates alone (what a printed plan or a real run evaluates once per job; "
              "the --quiet DAG build does not):")
        for what, seconds in est.items():
            print(f"  {what:45s} {seconds:6.1f} s")

        expected = expected_counts(args.blocks, n_runs)
        print("\njob counts per rule (expected):")
        ok = True
        for rule in sorted(set(counts) | set(expected), key=lambda r: -counts.get(r, 0)):
            if rule == "total":
                continue
            got, want = counts.get(rule, 0), expected.get(rule)
            mark = "" if got == want else "   <-- differs"
            ok &= got == want
            print(f"  {rule:20s} {got:6d}  ({want}){mark}")
        print(f"  {'total':20s} {counts.get('total', 0):6d}  ({sum(expected.values())})")

        imported = log.read_text() if log.exists() else ""
        names = sorted(set(re.findall(r"^IMPORT (\S+)", imported, flags=re.M)))
        print(f"\nheavy imports while parsing and building the DAG: {', '.join(names) if names else 'none'} "
              f"(watched: {', '.join(HEAVY)})")
        for record in filter(None, imported.split("IMPORT ")):
            name = record.split()[0]
            files = [f for f in re.findall(r'File "([^"]+)"', record) if not f.startswith("<frozen")]
            ours = [f for f in files if f.startswith(str(workdir))]
            chain = " <- ".join(Path(f).name if "site-packages" not in f else f.split("site-packages/")[1]
                                for f in reversed(files[-3:]))
            origin = f"workflow code {ours[-1]}" if ours else "not the workflow"
            print(f"  {name}: imported by {origin} ({chain})")

        if args.profile_python:
            print("\ncProfile of `snakemake -n --quiet` (cumulative, top 25):")
            print(profile_in_process(workdir, profile))
        return 0 if ok and not {"torch", "h5py"} & set(names) else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
