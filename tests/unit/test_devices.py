"""Devices (inpca.devices): the GPU count a rule asks for at parse time, the device a job resolves,
and the lock files by which jobs on a machine with several GPUs take one each.

Lock tests run real processes that hold real `flock`s in a temporary lock folder; the GPUs they
claim are simulated by the count passed to `lock_gpu` (what `claim_gpu` passes from torch), so they
run on a machine without any GPU."""

import os
import select
import signal
import subprocess
import sys

import pytest

from conftest import REPO
from inpca import devices
from inpca.errors import DeviceError, InpcaError

# A job that claims one of `count` GPUs, prints its index and holds its lock until stdin closes.
HOLDER = """
import sys
from inpca.devices import lock_gpu
print(lock_gpu(int(sys.argv[1])), flush=True)
sys.stdin.read()
"""


def no_gpu_here() -> bool:
    import torch

    return not torch.cuda.is_available() and not os.path.exists("/dev/nvidiactl") and not os.path.exists("/dev/nvidia0")


needs_no_gpu = pytest.mark.skipif("not no_gpu_here()", reason="tests the behaviour of a machine without a GPU")


# --------------------------------------------------------------------------------------------
# parse time and device resolution


def test_gpus_for_device_asks_for_a_gpu_only_for_cuda_or_a_visible_one(monkeypatch):
    assert devices.gpus_for_device("cpu") == 0
    assert devices.gpus_for_device("cuda") == 1  # the config says so: a login node's lack of a GPU must not matter
    for hidden in ("", "-1", " -1 "):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert devices.gpus_for_device("auto") == 0


@needs_no_gpu
def test_auto_is_the_cpu_on_a_machine_without_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.gpus_for_device("auto") == 0
    assert devices.resolve_device("auto") == "cpu"
    assert devices.resolve_device("cpu") == "cpu"


@needs_no_gpu
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_gpu_is_a_device_error_naming_the_remedy(device):
    with pytest.raises(DeviceError) as error:
        devices.resolve_device(device)
    message = str(error.value)
    assert isinstance(error.value, InpcaError) and "\n" not in message
    assert repr(device) in message and "no CUDA GPU" in message and "device='cpu'" in message


@pytest.mark.parametrize("device", ["gpu", "tpu", "", "CUDA"])
def test_an_unknown_device_is_a_device_error(device):
    with pytest.raises(DeviceError, match="device must be 'auto', 'cpu' or 'cuda', got"):
        devices.resolve_device(device)


def test_auto_with_hidden_gpus_resolves_without_importing_torch():
    """A CPU job pays no torch import for the device (~1.5 s per job on a cluster)."""
    code = ("import sys; from inpca.devices import gpus_for_device, resolve_device; "
            "print(gpus_for_device('auto'), resolve_device('auto'), 'torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="-1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "cpu", "False"]


@needs_no_gpu
def test_claim_gpu_without_gpus_takes_no_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("INPCA_GPU_LOCK_DIR", str(tmp_path / "locks"))
    assert devices.claim_gpu() == 0
    assert not (tmp_path / "locks").exists()


def test_lock_dir_is_per_user_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("INPCA_GPU_LOCK_DIR", raising=False)
    assert devices.lock_dir().name == f"inpca-gpu-locks-{os.getuid()}"
    monkeypatch.setenv("INPCA_GPU_LOCK_DIR", str(tmp_path / "mine"))
    assert devices.lock_dir() == tmp_path / "mine"


# --------------------------------------------------------------------------------------------
# GPU locks, in real processes


class Jobs:
    """GPU jobs on one machine: processes that claim a GPU and hold it until released or killed."""

    def __init__(self, lock_dir):
        self.env = dict(os.environ, PYTHONPATH=str(REPO), INPCA_GPU_LOCK_DIR=str(lock_dir))
        self.env.pop("CUDA_VISIBLE_DEVICES", None)
        self.running = []

    def start(self, count: int, visible: str | None = None) -> subprocess.Popen:
        env = dict(self.env, **({"CUDA_VISIBLE_DEVICES": visible} if visible is not None else {}))
        job = subprocess.Popen([sys.executable, "-c", HOLDER, str(count)], env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.running.append(job)
        return job

    @staticmethod
    def gpu(job) -> int:
        """The GPU a started job claimed; a job that waits for a GPU fails the test after 30 s."""
        ready, _, _ = select.select([job.stdout], [], [], 30)
        assert ready, "the job did not claim a GPU within 30 s (it waits for a lock)"
        line = job.stdout.readline()
        assert line, job.stderr.read()
        return int(line)

    def claim(self, count: int, visible: str | None = None) -> tuple[subprocess.Popen, int]:
        job = self.start(count, visible)
        return job, self.gpu(job)

    @staticmethod
    def kill(job):
        job.send_signal(signal.SIGKILL)  # no clean-up in the job: the kernel drops its lock
        job.wait()
        assert job.returncode == -signal.SIGKILL

    def stop_all(self):
        for job in self.running:
            if job.poll() is None:
                job.kill()
            job.wait()
            for stream in (job.stdin, job.stdout, job.stderr):
                stream.close()


@pytest.fixture
def jobs(tmp_path):
    machine = Jobs(tmp_path / "locks")  # does not exist yet: the first claim makes it
    yield machine
    machine.stop_all()


def test_jobs_started_together_take_different_gpus(jobs, tmp_path):
    started = [jobs.start(4) for _ in range(4)]  # all four race for the locks
    assert sorted(jobs.gpu(job) for job in started) == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [f"gpu-{i}.lock" for i in range(4)]


def test_two_jobs_on_two_gpus(jobs):
    (_, first), (_, second) = jobs.claim(2), jobs.claim(2)
    assert {first, second} == {0, 1}


def test_a_killed_jobs_gpu_is_free_again(jobs):
    held = dict(reversed(jobs.claim(3)) for _ in range(3))  # gpu -> job
    assert sorted(held) == [0, 1, 2]
    jobs.kill(held[1])
    _, gpu = jobs.claim(3)
    assert gpu == 1  # the first free one; 0 and 2 are still held


def test_a_fifth_job_on_four_busy_gpus_shares_gpu_0_without_waiting_or_locking(jobs):
    held = dict(reversed(jobs.claim(4)) for _ in range(4))
    fifth, gpu = jobs.claim(4)  # returns at once (a wait would hang here)
    assert gpu == 0 and fifth.poll() is None
    # the sharing job holds no lock: once GPU 0's own job is gone, a new job gets GPU 0
    jobs.kill(held[0])
    _, gpu = jobs.claim(4)
    assert gpu == 0
    fifth.stdin.close()
    assert fifth.wait(timeout=30) == 0
    assert "all 4 GPUs are locked by other jobs; sharing GPU 0" in fifth.stderr.read()


def test_a_job_holds_one_gpu_however_often_it_claims(jobs):
    code = ("import sys; from inpca.devices import lock_gpu; "
            "print(lock_gpu(4), lock_gpu(4), lock_gpu(4), flush=True); sys.stdin.read()")
    job = subprocess.Popen([sys.executable, "-c", code], env=jobs.env, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jobs.running.append(job)
    assert select.select([job.stdout], [], [], 30)[0] and job.stdout.readline().split() == ["0", "0", "0"]
    _, gpu = jobs.claim(4)
    assert gpu == 1  # the first job locked GPU 0 only


def test_locks_name_the_physical_gpu(jobs, tmp_path):
    """Jobs that see different but overlapping CUDA_VISIBLE_DEVICES still take a GPU each."""
    _, first = jobs.claim(2, visible="0,1")  # physical GPU 0
    _, second = jobs.claim(2, visible="1,2")  # its index 0 is physical GPU 1
    third, gpu = jobs.claim(2, visible="0,1")  # 0 and 1 are both taken: shares its index 0
    assert (first, second, gpu) == (0, 0, 0)
    third.stdin.close()
    assert third.wait(timeout=30) == 0 and "all 2 GPUs are locked" in third.stderr.read()
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["gpu-0.lock", "gpu-1.lock"]
    _, uuid = jobs.claim(2, visible="GPU-8f3a/1,GPU-77")  # a UUID (a MIG one with slashes) is a safe name
    assert uuid == 0 and (tmp_path / "locks" / "gpu-GPU-8f3a_1.lock").exists()
