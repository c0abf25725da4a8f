"""Which device a job uses: `gpus_for_device` (at parse time, without torch), `resolve_device` for the
config's auto|cpu|cuda, and `claim_gpu` for
which GPU when a machine has several (Snakemake assigns no device ids).

With `resources: gpu: N` (profiles/local-gpu) Snakemake runs at most N GPU jobs at once, and each
job takes the first GPU whose lock file it can lock (non-blocking `flock`, held until the process
exits, released by the kernel even on SIGKILL). Locks are exact where "the GPU with most free memory"
is not: two jobs starting together would pick the same one. A lock file names the physical GPU (its
entry of CUDA_VISIBLE_DEVICES, else its index), so jobs started with different CUDA_VISIBLE_DEVICES
still exclude each other on a GPU they both see. When every GPU is locked (more GPU jobs than GPUs:
`resources: gpu` above the GPU count, or two Snakemake runs on one machine) a job does not wait: it
shares GPU 0, holding no lock, and logs a warning. On a SLURM node the job sees only its own GPU
(CUDA_VISIBLE_DEVICES), so this picks device 0 at no cost.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
from pathlib import Path

from .errors import DeviceError

log = logging.getLogger("inpca.devices")

_held: dict[int, object] = {}  # GPU index -> open lock file of this process (kept open = lock held)


def gpus_for_device(device: str) -> int:
    """1 when the configured device resolves to CUDA on this machine, else 0 (no torch import)."""
    if device == "cuda":
        return 1
    if device == "auto":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and visible.strip() in ("", "-1"):
            return 0
        return int(os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0"))
    return 0


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" if torch sees a GPU else "cpu"; "cuda" (or "cuda:N") without a GPU -> DeviceError."""
    if device not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise DeviceError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "auto" and not gpus_for_device("auto"):
        return "cpu"  # no NVIDIA device on this machine: skip importing torch (~1.5 s per job)
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise DeviceError(f"device={device!r} but no CUDA GPU is available (torch.cuda.is_available() is False); "
                         "use device='cpu' or 'auto'")
    return device


def lock_dir() -> Path:
    """The folder of the GPU lock files: $INPCA_GPU_LOCK_DIR, else one per user in the temp folder."""
    return Path(os.environ.get("INPCA_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / f"inpca-gpu-locks-{os.getuid()}"))


def claim_gpu() -> int:
    """Make the first unlocked visible GPU the current CUDA device for this process; return its index
    (0 without locking when at most one GPU is visible). See :func:`lock_gpu`."""
    import torch

    count = torch.cuda.device_count()
    if count <= 1:
        return 0
    index = lock_gpu(count)
    torch.cuda.set_device(index)
    return index


def lock_gpu(count: int) -> int:
    """Lock the first free one of `count` visible GPUs for the rest of this process; return its index.

    A process holds at most one GPU: a second call returns the one it holds. With all `count` locked by
    other processes it returns 0 and holds no lock (the job shares GPU 0; a warning says so). Needs no
    torch: `claim_gpu` passes torch's device count.
    """
    if _held:
        return next(iter(_held))
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    for index in range(count):
        # the physical GPU (an index or a UUID of CUDA_VISIBLE_DEVICES), made a safe file name
        gpu = re.sub(r"[^A-Za-z0-9_.-]", "_", visible[index] if index < len(visible) else str(index))
        handle = open(directory / f"gpu-{gpu}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held[index] = handle
        log.info("using GPU %d of %d (lock %s)", index, count, handle.name)
        return index
    log.warning("all %d GPUs are locked by other jobs; sharing GPU 0 (raise resources: gpu to the GPU count)", count)
    return 0
