"""Record one's own PyTorch training with inpca.record, for the pipeline to map (examples/README.md).

A plain training loop: a torchvision ResNet with random initialisation (one BasicBlock per stage, a
ResNet-10, its stem adapted to 1x8x8 images) on scikit-learn's bundled digits, for each optimizer and
seed given. Each run is recorded at the paper's checkpoint schedule into <out>/resnet10-<optimizer>-s<seed>.h5.

    python examples/record_own_training.py --out my_runs --epochs 3 --seeds 0 1 --optimizers sgd adam

The data come from inpca.data.load_study_dataset, so the recordings carry the fingerprint of the
digits studies and can also be imported beside a grid trained on digits.

Killed mid-way, the same command again keeps the checkpoints already recorded: it trains the run
from step 0 again (this loop saves no training state of its own) and records only the missing ones.
Training is deterministic on the CPU (seeded, one thread, deterministic algorithms), so the resumed
run file equals an uninterrupted one. A finished run file is left as it is.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from torchvision.models.resnet import BasicBlock, ResNet

from inpca.data import load_study_dataset
from inpca.record import Recorder, paper_steps

log = logging.getLogger("record_own_training")

OPTIMIZERS = {
    "sgd": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "adam": {"name": "adam", "lr": 0.001},
}


def resnet10(num_classes: int, in_channels: int) -> torch.nn.Module:
    """torchvision's ResNet with one BasicBlock per stage; an 8x8 image is too small for the ImageNet
    stem (7x7 stride-2 conv, then max pooling), so the stem is one 3x3 stride-1 conv."""
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=num_classes)
    model.conv1 = torch.nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = torch.nn.Identity()
    return model


def make_optimizer(spec: dict, parameters):
    if spec["name"] == "sgd":
        return torch.optim.SGD(parameters, lr=spec["lr"], momentum=spec["momentum"])
    return torch.optim.Adam(parameters, lr=spec["lr"])


def train_and_record(path: Path, dataset, optimizer_name: str, seed: int, epochs: int, batch_size: int) -> bool:
    """Train one network and record it into `path`; False if `path` is already a finished recording."""
    steps_per_epoch = dataset.n_train // batch_size  # the last partial batch is dropped (BatchNorm)
    config = {"arch": {"name": "resnet10", "source": "torchvision"}, "optimizer": OPTIMIZERS[optimizer_name],
              "seed": seed, "epochs": epochs, "batch_size": batch_size}
    with Recorder.for_dataset(path, dataset, config=config, steps=paper_steps(steps_per_epoch, epochs),
                              steps_per_epoch=steps_per_epoch) as recorder:
        if recorder.finished:
            return False
        torch.manual_seed(seed)
        model = resnet10(dataset.num_classes, dataset.input_shape[0])
        optimizer = make_optimizer(OPTIMIZERS[optimizer_name], model.parameters())
        # the recorder normalises its evaluation samples the same way (Recorder.for_dataset)
        mean = torch.tensor(dataset.mean).view(1, -1, 1, 1)
        std = torch.tensor(dataset.std).view(1, -1, 1, 1)
        x_train = (torch.from_numpy(dataset.x_train).float() / 255.0 - mean) / std
        y_train = torch.from_numpy(dataset.y_train)
        order = torch.Generator().manual_seed(seed)
        step = 0
        for _ in range(epochs):
            permutation = torch.randperm(dataset.n_train, generator=order)
            for batch in range(steps_per_epoch):
                if recorder.due(step):
                    recorder.record(model, step=step)
                indices = permutation[batch * batch_size:(batch + 1) * batch_size]
                model.train()
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x_train[indices]), y_train[indices]).backward()
                optimizer.step()
                step += 1
        if recorder.due(step):
            recorder.record(model, step=step)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("my_runs"), help="folder of the run files")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--optimizers", nargs="+", choices=sorted(OPTIMIZERS), default=["sgd", "adam"])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the recorder logs each checkpoint

    # bit-identical CPU training, so a rerun after a kill continues the same trajectory
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dataset = load_study_dataset({"name": "digits"})
    args.out.mkdir(parents=True, exist_ok=True)
    for optimizer_name in args.optimizers:
        for seed in args.seeds:
            path = args.out / f"resnet10-{optimizer_name}-s{seed}.h5"
            started = time.perf_counter()
            if train_and_record(path, dataset, optimizer_name, seed, args.epochs, args.batch_size):
                log.info("%s: recorded in %.1f s", path, time.perf_counter() - started)


if __name__ == "__main__":
    main()
