"""Recording a Hugging Face ``Trainer`` run: :class:`InpcaTrainerCallback`.

::

    from inpca.adapters.huggingface import InpcaTrainerCallback
    from inpca.record import Recorder, log_steps

    recorder = Recorder("runs/my-run.h5", train=(x_train, y_train), test=(x_test, y_test), config={...},
                        steps=log_steps(max_steps, 30))
    trainer = transformers.Trainer(model=model, args=args, train_dataset=...,
                                   callbacks=[InpcaTrainerCallback(recorder, input_name="pixel_values")])
    trainer.train()

The model is called on a batch of the recorder's inputs, positionally or as the keyword
`input_name`; its logits are taken from its output (a ``ModelOutput`` or dict with ``logits``, a
tuple whose first item they are, or the logits themselves). Checkpoints are recorded in the main
process only.

With an atlas (``Recorder.for_atlas``) and the trainer given (``trainer.add_callback(
InpcaTrainerCallback(recorder, trainer=trainer))``), each checkpoint's forecast goes through
``trainer.log`` to every ``report_to`` integration (TensorBoard, W&B, MLflow...) and the log history
as ``inpca/forecast_final_test_error`` (``_low``, ``_high``) and ``inpca/forecast_trusted``. A
``TrainerCallback`` is not handed the trainer, hence the argument.
"""

from __future__ import annotations

from collections.abc import Mapping

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError("inpca.adapters.huggingface needs transformers: pip install 'inpca[adapters]'") from None
import torch

from ..record import RecorderError
from . import forecast_scalars

__all__ = ["InpcaTrainerCallback"]


class _Logits(torch.nn.Module):
    """The model as the recorder calls it: inputs in, logits out. A module, so that the recorder
    switches the wrapped model's modes and counts its parameters."""

    def __init__(self, model: torch.nn.Module, input_name: str | None):
        super().__init__()
        self.model, self.input_name = model, input_name

    def forward(self, inputs):
        output = self.model(**{self.input_name: inputs}) if self.input_name else self.model(inputs)
        if isinstance(output, Mapping):  # ModelOutput is an OrderedDict
            if "logits" not in output:
                raise RecorderError(f"the model's output has no logits (keys: {', '.join(output)})")
            return output["logits"]
        if isinstance(output, (tuple, list)):  # return_dict=False, called without labels
            return output[0]
        return output


class InpcaTrainerCallback(TrainerCallback):
    """Records `recorder`'s due checkpoints at ``state.global_step``: step 0 (or the step a resumed
    run starts at) when training begins, then after each optimizer step; closes the recorder, which
    writes the run file, when training ends. The model is the one the Trainer passes to callbacks.

    `input_name`: the keyword of the model's forward that takes the inputs (e.g. "pixel_values",
    "input_ids"); None passes them positionally. `trainer`: the ``Trainer``, whose ``log`` takes the
    atlas' forecast at each checkpoint (with an atlas); None logs nothing.
    """

    def __init__(self, recorder, input_name: str | None = None, trainer=None):
        self.recorder, self.input_name, self.trainer = recorder, input_name, trainer

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._record(state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._record(state, model)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.recorder.close()

    def _record(self, state, model) -> None:
        step = state.global_step
        if state.is_world_process_zero and self.recorder.due(step):
            # the recorder's step / steps_per_epoch when it knows the epoch length, as the pipeline's runs
            epoch = None if self.recorder.steps_per_epoch else float(state.epoch or 0)
            self.recorder.record(_Logits(model, self.input_name), step=step, epoch=epoch)
            scalars = forecast_scalars(self.recorder, step)
            if scalars and self.trainer is not None:
                self.trainer.log(scalars)
