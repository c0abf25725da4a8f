"""The workflow on a real (single-node) SLURM cluster, through profiles/slurm, against a local run.

As root, the module fixture installs Debian's slurm-wlm, munge, slurmdbd and mariadb-server (apt) if
missing and starts a throwaway cluster with tests/cluster/slurm_up.sh: munged, MariaDB, slurmdbd (so
`sacct` works), slurmctld and slurmd on 127.0.0.1, partitions `debug` (default) and `gpu`, and fake
GPUs as a `gpu` GRES. The tiny study (tests/workflow/config.yaml) then runs twice at the same time,
each in its own copy of the workflow: locally with `--cores 2` (the baseline), and with
`--workflow-profile profiles/slurm`, the site values of the shipped profile given for this cluster by
the test (environment variables INPCA_SLURM_ACCOUNT/PARTITION/GPU_PARTITION, which leave the
profile's per-rule GPU requests in force, plus the command-line overrides listed in CLUSTER_ARGS).
The cluster run must submit every non-local job through sbatch (sacct: COMPLETED, one per job), give
the GPU rules a GPU on the gpu partition (sacct AllocTRES gres/gpu=1), and produce the local run's
distances and embeddings (within 1e-6, coordinates themselves: the embedding fixes axis signs).
Every daemon the fixture started is stopped by PID (slurm_down.sh) in the fixture's finaliser, also
when a test or the start fails; every external step runs under `timeout`.

Skipped unless root with apt-get (CI), or with INPCA_SKIP_SLURM=1. Select or skip: `-m slurm`,
`-m "not slurm"`. The time of each stage is printed at the end of the module (visible without -s).
Measured on a 2-core Debian 12 VM: install 17 s (after `apt-get clean`), start 4-11 s, the two runs
~230 s, report 2 s, stop 8 s; about 4.5 minutes in all.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from inpca.testing import copy_workflow, job_counts, split_distances

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
GPU_RULES = {"train_run", "distance_tile", "equal_progress_tile"}
LOCAL_RULES = {"all", "runs_table"}  # `localrule: True` in the workflow; never submitted

# The test cluster is one node with 2 real cores: it advertises 16 CPUs (so a few jobs run side by
# side and `embed` gets the 16 threads the profile gives it) and 4 fake GPUs.
FAKE_GPUS, NODE_CPUS = 4, 16
CLUSTER_ENV = {"INPCA_SLURM_ACCOUNT": "root", "INPCA_SLURM_PARTITION": "debug", "INPCA_SLURM_GPU_PARTITION": "gpu"}
# Overrides of the shipped profile for this test, and why:
CLUSTER_ARGS = [
    "--config", "device=cpu",  # no CUDA here; the profile says device=cuda (GPU nodes); the fake GPU only counts
    "--slurm-init-seconds-before-status-checks", "8",  # jobs take ~5 s here; 40 s would make every stage wait
    "--retries", "0",  # fail fast: a broken job would otherwise run 3 times before the test fails
]
TIMEOUT_UP, TIMEOUT_LOCAL, TIMEOUT_CLUSTER, TIMEOUT_DOWN = 600, 600, 900, 120


def _skip_reason() -> str | None:
    if os.environ.get("INPCA_SKIP_SLURM") == "1":
        return "INPCA_SKIP_SLURM=1"
    if not sys.platform.startswith("linux"):
        return "needs Linux (Debian's slurm-wlm)"
    if os.geteuid() != 0:
        return "needs root: it installs slurm-wlm/munge/slurmdbd/mariadb-server with apt and starts their daemons"
    if shutil.which("apt-get") is None and not shutil.which("slurmctld", path="/usr/sbin:/usr/bin"):
        return "needs apt-get (Debian/Ubuntu) to install SLURM"
    if shutil.which("timeout") is None:
        return "needs coreutils' timeout"
    return None


def _run(cmd, *, timeout_s: int, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    """Run under coreutils `timeout -k 30` (a hung snakemake ignores SIGTERM) and Python's own timeout."""
    full = ["timeout", "-k", "30", str(timeout_s), *map(str, cmd)]
    proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s + 60)
    if check and proc.returncode != 0:
        what = "timed out" if proc.returncode in (124, 137) else f"failed ({proc.returncode})"
        raise AssertionError(f"{' '.join(map(str, cmd))} {what}:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def rule_of_comment(comment: str, rules) -> str | None:
    """The plugin's sbatch --comment is rule_<name> or rule_<name>_wildcards_<values>."""
    for rule in sorted(rules, key=len, reverse=True):
        if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_"):
            return rule
    return None


@pytest.fixture(scope="module")
def timings(request):
    times: dict[str, float] = {}
    yield times
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and times:
        reporter.write_line("")
        reporter.write_line("SLURM test timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, timings):
    reason = _skip_reason()
    if reason:
        pytest.skip(f"SLURM cluster test skipped: {reason}")
    cluster_dir = tmp_path_factory.mktemp("slurm-cluster")
    env = dict(os.environ, CLUSTER_DIR=str(cluster_dir), FAKE_GPUS=str(FAKE_GPUS), NODE_CPUS=str(NODE_CPUS),
               PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    stopped = False

    def stop():
        nonlocal stopped
        if stopped:
            return
        stopped = True
        t = time.monotonic()
        proc = subprocess.run(["timeout", "-k", "10", str(TIMEOUT_DOWN), "bash", str(HERE / "slurm_down.sh")],
                              env=env, capture_output=True, text=True)
        timings["stop"] = time.monotonic() - t
        print(proc.stdout, proc.stderr, file=sys.stderr)

    # Stop the daemons however this process ends: the finaliser below, interpreter exit, or SIGTERM.
    atexit.register(stop)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        t = time.monotonic()
        proc = subprocess.run(["timeout", "-k", "30", str(TIMEOUT_UP), "bash", str(HERE / "slurm_up.sh")],
                              env=env, capture_output=True, text=True)
        timings["install+start"] = time.monotonic() - t
        for step, seconds in re.findall(r"^TIMING (\S+) ([\d.]+)$", proc.stdout, flags=re.M):
            if step in ("apt-update", "apt-install", "packages"):
                timings[step] = float(seconds)
        timings["start"] = timings["install+start"] - timings.get("packages", 0.0)
        if proc.returncode == 3:  # a SLURM or MariaDB of this machine is in the way; not ours to touch
            pytest.skip(f"SLURM cluster test skipped: {proc.stderr.strip()}")
        if proc.returncode != 0:
            logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                             for p in sorted((cluster_dir / "log").glob("*")) if p.is_file())
            raise AssertionError(f"slurm_up.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{logs}")
        yield {"SLURM_CONF": str(cluster_dir / "etc/slurm.conf"), "dir": cluster_dir, "env": env}
    finally:
        stop()
        atexit.unregister(stop)
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def local_started(tmp_path_factory, cluster):
    """The tiny study on this machine without SLURM, the baseline of the comparison. It runs beside
    the cluster run (which mostly waits for status checks), saving about a minute; it starts only once
    the cluster is up, so a machine that cannot run the cluster skips it."""
    workdir = copy_workflow(tmp_path_factory.mktemp("local"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INPCA_SLURM_"))}
    cmd = ["timeout", "-k", "30", str(TIMEOUT_LOCAL), SNAKEMAKE, "--cores", "2"]
    log = open(workdir / "snakemake-local.log", "w")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started, ended = time.monotonic(), []
    threading.Thread(target=lambda: (proc.wait(), ended.append(time.monotonic())), daemon=True).start()
    yield {"workdir": workdir, "proc": proc, "started": started, "ended": ended}
    if proc.poll() is None:  # a failed cluster run left it running: stop it (our own process group)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    log.close()


@pytest.fixture(scope="module")
def local_run(local_started, timings):
    proc = local_started["proc"]
    rc = proc.wait(timeout=TIMEOUT_LOCAL + 60)
    time.sleep(0.1)  # let the watcher thread note the end
    end = local_started["ended"][0] if local_started["ended"] else time.monotonic()
    timings["local run (beside the cluster run)"] = end - local_started["started"]
    workdir = local_started["workdir"]
    if rc != 0:
        raise AssertionError(f"local run failed ({rc}):\n{(workdir / 'snakemake-local.log').read_text()[-6000:]}")
    return workdir


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, cluster, local_started, timings):
    workdir = copy_workflow(tmp_path_factory.mktemp("cluster"))
    env = dict(os.environ, SLURM_CONF=cluster["SLURM_CONF"], **CLUSTER_ENV)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin"
    dry = _run([SNAKEMAKE, "-n", "--workflow-profile", "profiles/slurm", *CLUSTER_ARGS], cwd=workdir, env=env,
               timeout_s=120)
    planned = job_counts(dry.stdout + dry.stderr)
    t = time.monotonic()
    proc = _run([SNAKEMAKE, "--workflow-profile", "profiles/slurm", *CLUSTER_ARGS], cwd=workdir, env=env,
                timeout_s=TIMEOUT_CLUSTER, check=False)
    timings["cluster run"] = time.monotonic() - t
    output = proc.stdout + proc.stderr
    (workdir / "snakemake-cluster.log").write_text(output)
    if proc.returncode != 0:
        slurm_logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-1500:]}"
                               for p in sorted((workdir / "logs/slurm").rglob("*.log"))[:3])
        raise AssertionError(f"cluster run failed ({proc.returncode}):\n{output[-6000:]}\n{slurm_logs}")
    run_id = re.search(r"SLURM run ID: (\S+)", output)
    assert run_id, "the SLURM executor did not print its run ID"
    return {"workdir": workdir, "env": env, "output": output, "run_id": run_id.group(1), "planned": planned}


def sacct_jobs(run: dict, expected: int, wait_s: float = 30) -> list[dict]:
    """This run's jobs in SLURM accounting (the plugin names every job after the run ID). Accounting
    can lag a few seconds behind the controller, so poll until `expected` jobs are final."""
    fields = ["JobIDRaw", "JobName", "State", "Partition", "AllocTRES", "Comment", "ExitCode"]
    deadline = time.monotonic() + wait_s
    while True:
        proc = _run(["sacct", "-X", "-n", "-P", "--name", run["run_id"], "-S", "now-2days", "-E", "now",
                     "--format", ",".join(fields)], env=run["env"], timeout_s=30)
        rows = [dict(zip(fields, line.split("|"))) for line in proc.stdout.splitlines() if line.strip()]
        final = [r for r in rows if r["State"] not in ("PENDING", "RUNNING", "COMPLETING")]
        if len(final) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(2)


@pytest.mark.slurm
def test_every_job_went_through_sbatch(cluster_run):
    planned = cluster_run["planned"]
    ran = job_counts(cluster_run["output"])
    assert ran == planned, "the run did other jobs than the dry run planned"
    local = set(re.findall(r"^localrule (\w+):", cluster_run["output"], flags=re.M))
    assert local == LOCAL_RULES, f"jobs that ran on the submit host: {local}"
    expected = sum(n for rule, n in planned.items() if rule not in LOCAL_RULES)
    submitted = len(re.findall(r"has been submitted with SLURM jobid", cluster_run["output"]))
    assert submitted == expected
    rows = sacct_jobs(cluster_run, expected)
    completed = [r for r in rows if r["State"] == "COMPLETED"]
    assert len(completed) == len(rows) == expected, [(r["JobIDRaw"], r["State"], r["Comment"]) for r in rows]
    per_rule: dict[str, int] = {}
    for r in completed:
        rule = rule_of_comment(r["Comment"], planned)
        per_rule[rule] = per_rule.get(rule, 0) + 1
    assert per_rule == {rule: n for rule, n in planned.items() if rule not in LOCAL_RULES}


@pytest.mark.slurm
def test_gpu_rules_got_a_gpu_and_the_gpu_partition(cluster_run):
    planned = cluster_run["planned"]
    rows = sacct_jobs(cluster_run, sum(n for rule, n in planned.items() if rule not in LOCAL_RULES))
    assert rows
    for r in rows:
        rule = rule_of_comment(r["Comment"], planned)
        has_gpu = re.search(r"gres/gpu=1\b", r["AllocTRES"]) is not None
        if rule in GPU_RULES:
            assert has_gpu and r["Partition"] == "gpu", r
        else:
            assert "gres/gpu" not in r["AllocTRES"] and r["Partition"] == "debug", r
    assert {rule_of_comment(r["Comment"], planned) for r in rows} >= GPU_RULES


@pytest.mark.slurm
def test_cluster_results_equal_local_results(cluster_run, local_run):
    import h5py
    import numpy as np

    cdir = cluster_run["workdir"]
    assert (cdir / "results/store/index.tsv").read_text() == (local_run / "results/store/index.tsv").read_text()
    for split in ("train", "test"):
        with split_distances(cdir, split) as c, split_distances(local_run, split) as l:
            assert c.run == l.run
            np.testing.assert_allclose(c[()], l[()], rtol=0, atol=1e-6)
        with h5py.File(cdir / f"results/embedding/{split}.h5") as c, h5py.File(local_run / f"results/embedding/{split}.h5") as l:
            # the embedding fixes the sign of each axis, so the coordinates themselves must agree
            np.testing.assert_allclose(c["coords"][()], l["coords"][()], rtol=0, atol=1e-6)
            np.testing.assert_allclose(c["eigenvalues"][()], l["eigenvalues"][()], rtol=0, atol=1e-6)
            assert ("coords_in_train" in c) == ("coords_in_train" in l)
            if "coords_in_train" in c:
                np.testing.assert_allclose(c["coords_in_train"][()], l["coords_in_train"][()], rtol=0, atol=1e-6)


@pytest.mark.slurm
def test_report_builds_after_the_cluster_run(cluster_run, timings):
    workdir = cluster_run["workdir"]
    t = time.monotonic()
    _run([SNAKEMAKE, "--workflow-profile", "profiles/slurm", *CLUSTER_ARGS, "--report", "report.html"],
         cwd=workdir, env=cluster_run["env"], timeout_s=300)
    timings["report"] = time.monotonic() - t
    html = (workdir / "report.html").read_text(errors="replace")
    assert "trajectories" in html.lower()


@pytest.mark.workflow
def test_profile_dry_run_works_anywhere_without_site_values(tmp_path):
    """No SLURM, no root, site variables unset: `snakemake -n --workflow-profile profiles/slurm` plans
    the whole study, GPU rules with a GPU and everything else without."""
    workdir = copy_workflow(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "INPCA_SLURM_"))}
    proc = _run([SNAKEMAKE, "-n", "--workflow-profile", "profiles/slurm"], cwd=workdir, env=env, timeout_s=300)
    output = proc.stdout + proc.stderr
    counts = job_counts(output)
    assert counts["train_run"] == 6 and counts["distance_tile"] > 0
    checked = 0
    for block in re.split(r"^\[\w{3} \w{3} .*\]$", output, flags=re.M):
        rule = re.search(r"^\s*(?:local)?rule (\w+):", block, flags=re.M)
        resources = re.search(r"resources: (.*)", block)
        if not rule or not resources or rule.group(1) in LOCAL_RULES:
            continue
        res = resources.group(1)
        if rule.group(1) in GPU_RULES:
            assert "gpu=1" in res and "slurm_partition=$INPCA_SLURM_GPU_PARTITION" in res, block
        else:
            assert "gpu=" not in res and "slurm_partition=$INPCA_SLURM_PARTITION" in res, block
        assert "slurm_account=$INPCA_SLURM_ACCOUNT" in res and "gpu_model" not in res, block
        checked += 1
    assert checked == sum(n for rule, n in counts.items() if rule not in LOCAL_RULES)
