"""Callbacks that record a training run by a framework's own trainer with :class:`inpca.record.Recorder`.

- :class:`inpca.adapters.lightning.InpcaRecorderCallback`: a Lightning ``Callback`` (``lightning``, or
  ``pytorch_lightning`` when only that is installed);
- :class:`inpca.adapters.huggingface.InpcaTrainerCallback`: a Hugging Face ``transformers.TrainerCallback``.

Each records at the framework's global step (optimizer steps, as the pipeline counts them) whenever
the recorder says the step is due, and closes the recorder (writes the run file) when training ends.
With an atlas (``Recorder.for_atlas``), each checkpoint's forecast of the final test error also goes to
the trainer's loggers as scalars (:func:`forecast_scalars`: ``inpca/forecast_final_test_error``,
``_low``, ``_high``, ``inpca/forecast_trusted``), so TensorBoard, W&B or MLflow show it.
The frameworks are optional (``pip install 'inpca[adapters]'``): importing this package imports
neither; importing one of its modules imports that framework.
"""


def forecast_scalars(recorder, step) -> dict:
    """The recorder's forecast at `step` as the scalars the callbacks log ({} when it placed no
    checkpoint at `step`: no atlas, or not a checkpoint); a bound the atlas could not give is left out."""
    forecast = getattr(recorder, "latest_forecast", None)
    if not forecast or forecast.get("step") != int(step):
        return {}
    scalars = {f"inpca/forecast_final_test_error{suffix}": forecast[key]
               for key, suffix in (("value", ""), ("low", "_low"), ("high", "_high")) if forecast[key] is not None}
    if scalars:
        scalars["inpca/forecast_trusted"] = float(forecast["trusted"])
    return scalars
