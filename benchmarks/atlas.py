"""What the atlas costs: placing one checkpoint, and a training that places every checkpoint as it goes.

    python benchmarks/atlas.py --atlas results [--epochs 12] [--scale-study DIR]

1. Placing: checkpoints of the atlas' own runs placed again (both splits: distances to every reference
   point or landmark, the out-of-sample projection, progress) and one run followed and forecast
   checkpoint by checkpoint (:meth:`inpca.atlas.Atlas.checkpoint_row`, what the live recorder does):
   the median time of each.
2. Live: a small All-CNN trained on the atlas' samples with a plain PyTorch loop, recorded with
   :class:`inpca.record.Recorder` twice in one run, without and with the atlas; the wall time of each,
   and the atlas' time per checkpoint against the time per training step.

3. With ``--scale-study DIR`` (the study ``benchmarks/scale.py --keep DIR`` wrote: M = 50,000
   synthetic points, landmark InPCA): placing a checkpoint in its landmark map (distances to the L
   landmarks, the weighted fit's projection), the study's files seen in a results layout.

Times are on this machine as it is (say how loaded it was when you quote them).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class _LastLines(logging.Handler):
    """Keeps the log lines of the recorder (the benchmark quotes what a live training prints)."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def last(self, prefix: str) -> str:
        return next((line for line in reversed(self.lines) if line.startswith(prefix)), "(none)")


def train(path, atlas, dataset, epochs: int, use_atlas: bool) -> tuple[float, int, list]:
    """(seconds, steps, the atlas' seconds per checkpoint) of one recorded training."""
    import torch

    from inpca.models import build_model
    from inpca.record import Recorder, paper_steps

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_model({"name": "allcnn", "width": 0.25}, dataset.input_shape, dataset.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.as_tensor(dataset.x_train), torch.as_tensor(dataset.y_train)
    per_epoch = len(y) // 64
    steps = per_epoch * epochs
    recorder = Recorder.for_dataset(path, dataset, config={"arch": "allcnn", "optimizer": "adam"},
                                    steps=paper_steps(per_epoch, epochs), steps_per_epoch=per_epoch,
                                    atlas=atlas if use_atlas else None)
    started = time.perf_counter()
    with recorder:
        for step in range(steps + 1):
            if recorder.due(step):
                recorder.record(model, step=step)
            if step == steps:
                break
            batch = torch.randint(0, len(y), (64,))
            loss = torch.nn.functional.cross_entropy(model(recorder.prepare(x[batch])), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    placing = []
    if use_atlas:
        from inpca.files import read_table

        placing = list(read_table(recorder.atlas_table)["place_seconds"])
    return seconds, steps, placing


def scale_atlas(folder: Path) -> Path:
    """The scale benchmark's study (flat files) seen as a results folder an atlas that places can load:
    store/ (links to its blocks, its index with checkpoint and epoch columns), embedding/train.h5."""
    import pandas as pd

    results = folder / "atlas-results"
    (results / "store").mkdir(parents=True, exist_ok=True)
    (results / "embedding").mkdir(exist_ok=True)
    for block in folder.glob("*.h5"):
        if block.stem == "ref" or block.stem.startswith("b"):
            link = results / "store" / block.name
            if not link.exists():
                link.symlink_to(block.resolve())
    link = results / "embedding" / "train.h5"
    if not link.exists():
        link.symlink_to((folder / "landmarks.h5").resolve())
    index = pd.read_csv(folder / "index.tsv", sep="\t", dtype={"block": str, "run": str})
    index["checkpoint"] = index.groupby(["block", "run"]).cumcount()
    index["epoch"] = index["checkpoint"].astype(float)
    index.to_csv(results / "store" / "index.tsv", sep="\t", index=False)
    return results


def place_in_scale_study(folder: Path, placements: int) -> None:
    import h5py

    from inpca.atlas import Atlas

    t0 = time.perf_counter()
    atlas = Atlas.load(scale_atlas(folder), follow=False, memory_gb=4.0)
    loaded = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    positions = rng.choice(np.flatnonzero(atlas.points["kind"] == "run"), size=placements, replace=False)
    times = []
    for position in positions:
        block, row = atlas.points["block"].iloc[position], int(atlas.points["row"].iloc[position])
        with h5py.File(folder / f"{block}.h5", "r", locking=False) as f:
            probs = f["train_probs"][row]
        t = time.perf_counter()
        atlas.place(probs, split="train")
        times.append(time.perf_counter() - t)
    print(f"scale study {folder}: M = {len(atlas.points)} points, {len(atlas.reference_rows['train'])} landmarks "
          f"({atlas.method}), N = {atlas.n_samples['train']}; loaded in {loaded:.1f} s; placing one checkpoint: "
          f"median {np.median(times) * 1000:.0f} ms (first, with the landmarks read and prepared: "
          f"{times[0] * 1000:.0f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--placements", type=int, default=20)
    parser.add_argument("--scale-study", default=None, help="the folder of benchmarks/scale.py --keep")
    args = parser.parse_args()
    import h5py

    from inpca.atlas import Atlas

    t0 = time.perf_counter()
    atlas = Atlas.load(args.atlas)
    print(f"atlas {args.atlas}: {len(atlas.points)} points ({atlas.method}), N = "
          f"{', '.join(f'{atlas.n_samples[s]} {s}' for s in atlas.splits)}, {len(atlas.outcomes)} reference runs; "
          f"loaded in {time.perf_counter() - t0:.2f} s")
    rng = np.random.default_rng(0)
    positions = rng.choice(len(atlas.points), size=min(args.placements, len(atlas.points)), replace=False)
    times = []
    for position in positions:
        block, row = atlas.points["block"].iloc[position], int(atlas.points["row"].iloc[position])
        with h5py.File(Path(args.atlas) / "store" / f"{block}.h5", "r", locking=False) as f:
            probs = {s: f[f"{s}_probs"][row] for s in atlas.splits}
        t = time.perf_counter()
        atlas.place(probs)
        times.append(time.perf_counter() - t)
    print(f"placing one checkpoint (both splits): median {np.median(times) * 1000:.0f} ms "
          f"(first, with the reference points prepared: {times[0] * 1000:.0f} ms)")
    live_lines = _LastLines()
    logging.getLogger("inpca.record").addHandler(live_lines)
    logging.getLogger("inpca.record").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = atlas.dataset()
        plain = train(Path(tmp) / "plain.h5", atlas, dataset, args.epochs, use_atlas=False)
        live = train(Path(tmp) / "live.h5", atlas, dataset, args.epochs, use_atlas=True)
    seconds, steps, _ = plain
    live_seconds, _, placing = live
    print(f"All-CNN (width 0.25) on {atlas.dataset_name}, {args.epochs} epochs, {steps} steps, {len(placing)} checkpoints:")
    print(f"  recorded without the atlas: {seconds:.1f} s ({seconds / steps * 1000:.1f} ms per step incl. recording)")
    print(f"  recorded with the atlas:    {live_seconds:.1f} s; placing, following and forecasting took a median "
          f"{np.median(placing) * 1000:.0f} ms per checkpoint (max {np.max(placing) * 1000:.0f} ms), "
          f"{np.sum(placing):.1f} s in all: {np.sum(placing) / seconds:.0%} of the training's time")
    print(f"  the recorder's last atlas line: {live_lines.last('atlas:')}")
    if args.scale_study:
        place_in_scale_study(Path(args.scale_study), args.placements)


if __name__ == "__main__":
    main()
