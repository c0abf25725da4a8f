"""The framework adapters record a real (tiny) training by Lightning's and Hugging Face's own trainers.

A small MLP on a slice of the digits (256 train, 64 test samples, batches of 32: 8 steps per epoch),
20 optimizer steps, checkpoints at [0, 1, 2, 5, 10, 20]. Each framework's tests are skipped when it
is not installed (pip install -e '.[adapters]').
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from inpca.record import Recorder
from inpca.runfile import read_run

# Lightning's own warnings: that this machine has SLURM's srun, and its use of torch internals
pytestmark = [pytest.mark.filterwarnings("ignore:The `srun` command is available"),
              pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated")]

STEPS = [0, 1, 2, 5, 10, 20]
BATCH_SIZE = 32
STEPS_PER_EPOCH = 256 // BATCH_SIZE


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.tensor(raw.data / 16.0, dtype=torch.float32)
    y = torch.tensor(raw.target, dtype=torch.int64)
    return (x[:256], y[:256]), (x[256:320], y[256:320])


def installed(*names) -> list[str]:
    found = []
    for name in names:
        try:
            __import__(name)
            found.append(name)
        except ImportError:
            pass
    return found


LIGHTNING = installed("lightning.pytorch", "pytorch_lightning")
NO_LIGHTNING = "neither lightning nor pytorch_lightning is installed (pip install -e '.[adapters]')"
NO_TRANSFORMERS = "transformers is not installed (pip install -e '.[adapters]')"
needs_lightning = pytest.mark.skipif(not LIGHTNING, reason=NO_LIGHTNING)


def mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.BatchNorm1d(32),
                               torch.nn.Linear(32, 10))


def recorder(path, digits, **kwargs) -> Recorder:
    train, test = digits
    return Recorder(path, train=train, test=test, config={"arch": "mlp", "seed": 0}, steps=STEPS, **kwargs)


def assert_complete_run(path, epochs):
    run = read_run(path)
    assert run["step"].tolist() == STEPS
    np.testing.assert_allclose(run["epoch"], epochs)
    assert run["train_probs"].shape == (len(STEPS), 256, 10) and run["test_probs"].shape == (len(STEPS), 64, 10)
    np.testing.assert_allclose(run["train_probs"].sum(-1), 1.0, atol=1e-5)
    assert not np.array_equal(run["train_probs"][0], run["train_probs"][-1])  # it trained
    assert not path.with_name(path.name + ".partial").exists()
    return run


def test_importing_the_adapters_package_imports_no_framework():
    frameworks = {"lightning", "pytorch_lightning", "transformers"}
    code = f"import sys, inpca.adapters; print(sorted({frameworks!r} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Lightning


def lightning_module(pl):
    class DigitsMLP(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    return DigitsMLP()


def fit_with_lightning(package, digits, rec):
    import importlib

    from inpca.adapters.lightning import InpcaRecorderCallback

    pl = importlib.import_module(package)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*digits[0]), batch_size=BATCH_SIZE,
                                         shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = pl.Trainer(max_steps=STEPS[-1], accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[InpcaRecorderCallback(rec)])
    trainer.fit(lightning_module(pl), loader)
    return trainer


# the callback must work with the Trainer of either package when both are installed
@pytest.mark.parametrize("package", LIGHTNING or [pytest.param(None, marks=pytest.mark.skip(reason=NO_LIGHTNING))])
def test_lightning_callback_records_the_schedule_at_the_global_step(package, digits, tmp_path):
    path = tmp_path / "lightning.h5"
    trainer = fit_with_lightning(package, digits, recorder(path, digits, steps_per_epoch=STEPS_PER_EPOCH))
    assert trainer.global_step == STEPS[-1]
    assert_complete_run(path, np.array(STEPS) / STEPS_PER_EPOCH)


@needs_lightning
def test_lightning_callback_without_steps_per_epoch_takes_the_epoch_from_the_trainer(digits, tmp_path):
    path = tmp_path / "lightning.h5"
    fit_with_lightning(LIGHTNING[0], digits, recorder(path, digits))
    # current epoch + batches done / batches per epoch: the same fractions as step / steps per epoch
    assert_complete_run(path, np.array(STEPS) / STEPS_PER_EPOCH)


def import_adapter_without(*hidden) -> subprocess.CompletedProcess:
    """Import inpca.adapters.lightning in a process where the `hidden` packages cannot be imported."""
    code = (f"import sys; sys.modules.update(dict.fromkeys({list(hidden)!r}))\n"
            "from inpca.adapters.lightning import InpcaRecorderCallback\n"
            "print(InpcaRecorderCallback.__mro__[1].__module__)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.skipif("pytorch_lightning" not in LIGHTNING, reason="pytorch_lightning is not installed")
def test_lightning_adapter_falls_back_to_pytorch_lightning():
    proc = import_adapter_without("lightning", "lightning.pytorch")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pytorch_lightning")


def test_lightning_adapter_without_either_package_says_what_to_install_in_one_line():
    proc = import_adapter_without("lightning", "lightning.pytorch", "pytorch_lightning")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == ("ImportError: inpca.adapters.lightning needs lightning (or "
                                                    "pytorch_lightning): pip install 'inpca[adapters]'")


# --------------------------------------------------------------------------------------------
# Hugging Face


class DigitsClassifier(torch.nn.Module):
    """What Trainer expects of a model, without transformers' PreTrainedModel: named inputs, and a
    dict with the loss (when given labels) and the logits."""

    def __init__(self):
        super().__init__()
        self.net = mlp()

    def forward(self, pixel_values, labels=None):
        logits = self.net(pixel_values)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class PairsDataset(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def test_huggingface_callback_records_the_schedule_at_the_global_step(digits, tmp_path):
    transformers = pytest.importorskip("transformers", reason=NO_TRANSFORMERS)
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (pip install -e '.[adapters]')")
    from inpca.adapters.huggingface import InpcaTrainerCallback

    path = tmp_path / "huggingface.h5"
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"), max_steps=STEPS[-1], per_device_train_batch_size=BATCH_SIZE,
        learning_rate=0.1, lr_scheduler_type="constant", optim="sgd", report_to=[], use_cpu=True,
        save_strategy="no", logging_strategy="no", disable_tqdm=True, remove_unused_columns=False, seed=0,
        dataloader_num_workers=0)
    trainer = transformers.Trainer(
        model=DigitsClassifier(), args=args, train_dataset=PairsDataset(*digits[0]),
        callbacks=[InpcaTrainerCallback(recorder(path, digits), input_name="pixel_values")])
    trainer.train()
    assert trainer.state.global_step == STEPS[-1]
    # without steps_per_epoch, the Trainer's own fractional epoch
    run = assert_complete_run(path, np.array(STEPS) / STEPS_PER_EPOCH)
    assert run["attrs"]["parameters"] == sum(p.numel() for p in mlp().parameters())


class Repack(torch.nn.Module):
    """Puts the logits into another form of model output."""

    def __init__(self, pack):
        super().__init__()
        self.pack = pack

    def forward(self, logits):
        return self.pack(logits)


def test_huggingface_logits_come_from_a_tuple_and_a_missing_logits_key_is_one_line():
    pytest.importorskip("transformers", reason=NO_TRANSFORMERS)
    from inpca.adapters.huggingface import _Logits
    from inpca.record import RecorderError

    x = torch.zeros(3, 64)
    net = mlp().eval()
    as_tuple = _Logits(torch.nn.Sequential(net, Repack(lambda logits: (logits, "hidden states"))), None)
    assert torch.equal(as_tuple(x), net(x))
    without_logits = _Logits(torch.nn.Sequential(net, Repack(lambda logits: {"scores": logits})), None)
    with pytest.raises(RecorderError, match=r"^the model's output has no logits \(keys: scores\)$"):
        without_logits(x)



# --------------------------------------------------------------------------------------------
# The atlas' forecast as the trainers' logged scalars (issue 28.3)


class ForecastingRecorder(Recorder):
    """A Recorder whose every checkpoint has a forecast, as one with an atlas has (no atlas needed: the
    forecast is the step's own numbers)."""

    def record(self, model, *, step, epoch=None):
        super().record(model, step=step, epoch=epoch)
        self._latest_forecast = {"step": int(step), "epoch": None, "value": 0.1 + step / 1000,
                                 "low": 0.05, "high": None, "trusted": True, "reason": ""}


def expected_scalars(step):
    return {"inpca/forecast_final_test_error": 0.1 + step / 1000, "inpca/forecast_final_test_error_low": 0.05,
            "inpca/forecast_trusted": 1.0}


def test_forecast_scalars_only_at_the_step_the_forecast_is_of():
    from inpca.adapters import forecast_scalars

    class Plain:
        latest_forecast = None

    assert forecast_scalars(Plain(), 3) == {}
    rec = Plain()
    rec.latest_forecast = {"step": 5, "value": 0.2, "low": None, "high": 0.3, "trusted": False}
    assert forecast_scalars(rec, 4) == {}
    assert forecast_scalars(rec, 5) == {"inpca/forecast_final_test_error": 0.2,
                                        "inpca/forecast_final_test_error_high": 0.3, "inpca/forecast_trusted": 0.0}


@needs_lightning
def test_lightning_callback_logs_the_forecast_to_the_trainers_loggers(digits, tmp_path):
    import importlib

    from inpca.adapters.lightning import InpcaRecorderCallback

    pl = importlib.import_module(LIGHTNING[0])
    logger_base = importlib.import_module(f"{LIGHTNING[0]}.loggers").Logger

    class Collect(logger_base):
        name, version = "collect", 0
        logged = []

        def log_metrics(self, metrics, step=None):
            self.logged.append((step, dict(metrics)))

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    rec = ForecastingRecorder(tmp_path / "lightning.h5", train=digits[0], test=digits[1],
                              config={"arch": "mlp", "seed": 0}, steps=STEPS, steps_per_epoch=STEPS_PER_EPOCH)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*digits[0]), batch_size=BATCH_SIZE)
    trainer = pl.Trainer(max_steps=STEPS[-1], accelerator="cpu", devices=1, logger=Collect(), log_every_n_steps=1,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[InpcaRecorderCallback(rec)])
    trainer.fit(lightning_module(pl), loader)
    forecasts = [(step, metrics) for step, metrics in Collect.logged if "inpca/forecast_trusted" in metrics]
    assert forecasts == [(step, expected_scalars(step)) for step in STEPS]


def test_huggingface_callback_logs_the_forecast_through_the_trainer(digits, tmp_path):
    transformers = pytest.importorskip("transformers", reason=NO_TRANSFORMERS)
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (pip install -e '.[adapters]')")
    from inpca.adapters.huggingface import InpcaTrainerCallback

    rec = ForecastingRecorder(tmp_path / "huggingface.h5", train=digits[0], test=digits[1],
                              config={"arch": "mlp", "seed": 0}, steps=STEPS)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"), max_steps=STEPS[-1], per_device_train_batch_size=BATCH_SIZE,
        learning_rate=0.1, lr_scheduler_type="constant", optim="sgd", report_to=[], use_cpu=True,
        save_strategy="no", logging_strategy="no", disable_tqdm=True, remove_unused_columns=False, seed=0,
        dataloader_num_workers=0)
    trainer = transformers.Trainer(model=DigitsClassifier(), args=args, train_dataset=PairsDataset(*digits[0]))
    trainer.add_callback(InpcaTrainerCallback(rec, input_name="pixel_values", trainer=trainer))
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "inpca/forecast_trusted" in entry]
    assert [{key: entry[key] for key in expected_scalars(0)} for entry in logged] == [expected_scalars(s)
                                                                                     for s in STEPS]
