"""Recording a Lightning training: :class:`InpcaRecorderCallback`.

::

    from inpca.adapters.lightning import InpcaRecorderCallback
    from inpca.record import Recorder, paper_steps

    recorder = Recorder("runs/my-run.h5", train=(x_train, y_train), test=(x_test, y_test), config={...},
                        steps=paper_steps(len(train_loader), epochs), steps_per_epoch=len(train_loader))
    trainer = lightning.pytorch.Trainer(max_epochs=epochs, callbacks=[InpcaRecorderCallback(recorder)])
    trainer.fit(module, train_loader)

The LightningModule's ``forward`` must return the logits (batch, classes). Checkpoints are recorded in
the process of global rank 0 only. With an atlas (``Recorder.for_atlas``), each checkpoint's forecast
goes to the trainer's loggers (``trainer.loggers``: TensorBoard, W&B, MLflow...) as the scalars
``inpca/forecast_final_test_error`` (``_low``, ``_high``) and ``inpca/forecast_trusted`` at the
checkpoint's step.
"""

from __future__ import annotations

import math

from . import forecast_scalars

try:
    from lightning.pytorch import Callback
except ImportError:
    try:
        from pytorch_lightning import Callback
    except ImportError:
        raise ImportError("inpca.adapters.lightning needs lightning (or pytorch_lightning): "
                          "pip install 'inpca[adapters]'") from None

__all__ = ["InpcaRecorderCallback"]


class InpcaRecorderCallback(Callback):
    """Records `recorder`'s due checkpoints at ``trainer.global_step``: step 0 (or the step a resumed
    fit starts at) when training starts, then after each optimizer step; closes the recorder, which
    writes the run file, when training ends.

    A fit that fails leaves the recorder open, its checkpoints kept for a resume (inpca.record).
    """

    def __init__(self, recorder):
        self.recorder = recorder

    def on_train_start(self, trainer, pl_module) -> None:
        self._record(trainer, pl_module, float(trainer.current_epoch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # batches, not optimizer steps, measure the epoch's progress (gradient accumulation)
        batches = trainer.num_training_batches
        if math.isfinite(batches) and batches > 0:
            epoch = trainer.current_epoch + (batch_idx + 1) / batches
        else:  # an iterable data set of unknown length
            epoch = float(trainer.current_epoch)
        self._record(trainer, pl_module, epoch)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.recorder.close()

    def _record(self, trainer, pl_module, epoch: float) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and self.recorder.due(step):
            # the recorder's step / steps_per_epoch when it knows the epoch length, as the pipeline's runs
            self.recorder.record(pl_module, step=step, epoch=None if self.recorder.steps_per_epoch else epoch)
            scalars = forecast_scalars(self.recorder, step)
            for logger in trainer.loggers if scalars else ():
                logger.log_metrics(scalars, step=step)
