"""Training speed: this project's device-resident pipeline against the conventional one, same process.

Conventional (as the paper's code): a torchvision-style Dataset of PIL images with CPU transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize), a DataLoader with
num_workers=0, the model on the device, fp32.
Ours (inpca.train): the whole set on the device as uint8, crop+flip on the device, channels_last,
optional bf16 autocast, batches drawn by index; checkpoint evaluation in large eval-mode batches.

Data are random CIFAR-shaped uint8 images (speed does not depend on their content), so no download.

    python benchmarks/training.py                       # CPU, tiny: a few steps per architecture
    python benchmarks/training.py --device cuda         # GPU: All-CNN and WRN-16-4, full-size epochs
    python benchmarks/training.py --device cuda --archs allcnn wrn-16-4 vit --bf16

Prints images/s and the projected time of one 50,000-image epoch for both pipelines, the ratio, and
the time of one checkpoint evaluation (60,000 images) relative to an epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inpca.data import CIFAR10_MEAN, CIFAR10_STD  # noqa: E402
from inpca.models import build_model, count_parameters  # noqa: E402
from inpca.train import DeviceData, augment_batch, evaluate  # noqa: E402

ARCHS = {
    "fc": {"name": "fc", "widths": [1024, 512, 256, 128]},
    "allcnn": {"name": "allcnn", "width": 1.0},
    "wrn-10-4-8": {"name": "wrn", "depth": 10, "widen": 4, "base": 8},
    "wrn-16-4": {"name": "wrn", "depth": 16, "widen": 4, "base": 64},
    "convmixer": {"name": "convmixer", "dim": 256, "depth": 8, "kernel": 5, "patch": 2},
    "vit": {"name": "vit", "patch": 4, "dim": 512, "depth": 6, "heads": 8, "mlp_dim": 512, "head_dim": 64},
}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


class PILDataset(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 does per item: a PIL image from a uint8 HWC array, then transforms."""

    def __init__(self, images_hwc, labels, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def conventional(model, images_hwc, labels, bs, steps, device):
    import torchvision.transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    loader = torch.utils.data.DataLoader(PILDataset(images_hwc, labels, transform), batch_size=bs, shuffle=True,
                                         num_workers=0, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    done, started = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 1:  # the first step (allocator, kernel selection) is warm-up
            sync(device)
            started = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 1:
            done += len(y)
        if i >= steps:
            break
    sync(device)
    return done / (time.perf_counter() - started)


def ours(model, data: DeviceData, bs, steps, device, bf16, channels_last):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator(device=device).manual_seed(0)
    n = data.x_train.shape[0]
    order = torch.randperm(n, device=device, generator=gen)
    model.train()
    done, started = 0, None
    for i in range(steps + 1):
        if i == 1:
            sync(device)
            started = time.perf_counter()
        j = (i * bs) % (n - bs + 1)
        idx = order[j:j + bs]
        x = data.prepare(augment_batch(data.x_train[idx], gen, 4))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 1:
            done += bs
    sync(device)
    return done / (time.perf_counter() - started)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--archs", nargs="+", default=None, help=f"of {list(ARCHS)}")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per pipeline")
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--bf16", action="store_true", help="our pipeline under bf16 autocast")
    args = ap.parse_args()
    device = args.device
    archs = args.archs or (["allcnn", "wrn-16-4"] if device == "cuda" else ["fc", "allcnn", "wrn-10-4-8"])
    steps = args.steps or (50 if device == "cuda" else 3)
    n_images = 50_000 if device == "cuda" else 2_000
    n_eval = 60_000 if device == "cuda" else 1_000
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_images)
    mean = torch.tensor(CIFAR10_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=device).view(1, 3, 1, 1)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).to(device)
    y = torch.from_numpy(labels).to(device)
    data = DeviceData(x, y, x, y, True, mean, std)  # training draws from x_train only
    eval_data = DeviceData(x[: n_eval * 5 // 6], y[: n_eval * 5 // 6], x[: n_eval // 6], y[: n_eval // 6], True, mean, std)
    print(f"device {device} ({torch.cuda.get_device_name() if device == 'cuda' else f'{torch.get_num_threads()} CPU threads'}), "
          f"batch {args.batch_size}, {steps} timed steps each, torch {torch.__version__}")
    header = f"{'arch':12s} {'params':>11s} {'conv img/s':>11s} {'ours img/s':>11s} {'ratio':>6s} " \
             f"{'epoch conv':>10s} {'epoch ours':>10s} {'eval 60k':>9s} {'eval/epoch':>10s}"
    print(header)
    print("-" * len(header))
    for name in archs:
        torch.manual_seed(0)
        channels_last = device == "cuda" and name != "fc"
        model_conv = build_model(ARCHS[name], (3, 32, 32), 10).to(device)
        rate_conv = conventional(model_conv, images, labels, args.batch_size, steps, device)
        torch.manual_seed(0)
        model = build_model(ARCHS[name], (3, 32, 32), 10).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        rate_ours = ours(model, data, args.batch_size, steps, device, args.bf16, channels_last)
        sync(device)
        started = time.perf_counter()
        evaluate(model, eval_data, 5000 if device == "cuda" else 500, channels_last)
        sync(device)
        eval_s = (time.perf_counter() - started) * 60_000 / n_eval
        epoch_conv, epoch_ours = 50_000 / rate_conv, 50_000 / rate_ours
        print(f"{name:12s} {count_parameters(model):11,d} {rate_conv:11.0f} {rate_ours:11.0f} "
              f"{rate_ours / rate_conv:5.1f}x {epoch_conv:9.1f}s {epoch_ours:9.1f}s {eval_s:8.1f}s "
              f"{eval_s / epoch_ours:9.0%}")
    print("epoch = projected time of one 50,000-image epoch; eval 60k = one checkpoint (all train + test "
          "images, eval mode); the paper's schedule has 67 checkpoints per 200 epochs, so evaluation costs "
          "about 67/200 x eval/epoch of the training time.")


if __name__ == "__main__":
    main()
