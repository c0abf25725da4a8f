"""The live recorder with an atlas, killed (-9) at every point between writing a checkpoint and its row
of the atlas table, then resumed: the table and the run file list the same steps (issue 29)."""

import subprocess
import sys

import numpy as np
import pytest

from inpca.files import read_table
from inpca.runfile import read_run

pytestmark = pytest.mark.workflow

STEPS = [0, 1, 2, 4, 8]

# A plain training loop recorded with an atlas, killed by SIGKILL right after the `kill_at`-th call
# (from 0) of the writer named by `where`: "checkpoint" (the checkpoint's file is written, its row is
# not), "table" (the table's new version is written to its temporary name, not renamed), "row" (the
# row is written: nothing is missing).
KILLED_RECORDING = """
import os, signal, sys
import pandas, torch
import inpca.files, inpca.recording_folder
from inpca.record import Recorder

path, results, where, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = []

def killing(write):
    def wrapped(*args, **kwargs):
        write(*args, **kwargs)
        calls.append(1)
        if len(calls) - 1 == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    return wrapped

if where == "checkpoint":
    inpca.recording_folder.write_run = killing(inpca.recording_folder.write_run)
elif where == "table":
    pandas.DataFrame.to_csv = killing(pandas.DataFrame.to_csv)
else:
    inpca.files.write_table = killing(inpca.files.write_table)

torch.manual_seed(0)
rec = Recorder.for_atlas(path, results, config={"arch": "linear"}, steps=STEPS, steps_per_epoch=4)
dataset = rec.atlas.dataset()
x, y = torch.as_tensor(dataset.x_train), torch.as_tensor(dataset.y_train)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), dataset.num_classes))
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
with rec:
    for step in range(STEPS[-1] + 1):
        if rec.due(step):
            rec.record(model, step=step)
        loss = torch.nn.functional.cross_entropy(model(rec.prepare(x)), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
""".replace("STEPS", repr(STEPS))


def record(path, results, where, kill_at):
    return subprocess.run([sys.executable, "-c", KILLED_RECORDING, str(path), str(results), where, str(kill_at)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("where, kill_at", [("checkpoint", 0), ("checkpoint", 2), ("table", 1), ("row", 3)])
def test_a_recording_killed_between_a_checkpoint_and_its_row_resumes_with_every_row(default_study, atlas, tmp_path,
                                                                                   where, kill_at):
    results = default_study / "results"
    path = tmp_path / "live.h5"
    killed = record(path, results, where, kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    table_path = path.with_name("live.h5.atlas.tsv")
    recorded = sorted(int(p.stem) for p in path.with_name("live.h5.partial").glob("*.h5"))
    rows = list(read_table(table_path)["step"]) if table_path.exists() else []
    written = STEPS[:kill_at + 1]  # the n-th write of each writer is the n-th checkpoint's
    assert recorded == written
    assert rows == (recorded[:-1] if where in ("checkpoint", "table") else recorded)

    # the resume: every recorded checkpoint gets its row before anything else is recorded
    from inpca.record import Recorder

    resumed = Recorder.for_atlas(path, atlas, config={"arch": "linear"}, steps=STEPS, steps_per_epoch=4)
    assert list(read_table(table_path)["step"]) == resumed.recorded_steps == recorded
    import torch

    dataset = atlas.dataset()
    x = torch.as_tensor(dataset.x_train)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), dataset.num_classes))
    with resumed:
        for step in STEPS:
            if resumed.due(step):
                resumed.record(model, step=step)
    run = read_run(path)
    table = read_table(table_path)
    assert list(run["step"]) == list(table["step"]) == STEPS
    assert not path.with_name("live.h5.partial").exists() and not path.with_name("live.h5.lock").exists()
    # each row is the one the atlas gives that checkpoint with the run up to it, resumed or not
    traced = atlas.trace(path)
    for column in ("train_progress", "test_pc1", "t_reached", "forecast_final_test_error"):
        np.testing.assert_allclose(table[column].to_numpy(float), traced[column].to_numpy(float), rtol=1e-5,
                                   atol=1e-6, err_msg=column)
