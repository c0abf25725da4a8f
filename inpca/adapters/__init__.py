"""Callbacks that record a training run by a framework's own trainer with :class:`inpca.record.Recorder`.

- :class:`inpca.adapters.lightning.InpcaRecorderCallback`: a Lightning ``Callback`` (``lightning``, or
  ``pytorch_lightning`` when only that is installed);
- :class:`inpca.adapters.huggingface.InpcaTrainerCallback`: a Hugging Face ``transformers.TrainerCallback``.

Each records at the framework's global step (optimizer steps, as the pipeline counts them) whenever
the recorder says the step is due, and closes the recorder (writes the run file) when training ends.
The frameworks are optional (``pip install 'inpca[adapters]'``): importing this package imports
neither; importing one of its modules imports that framework.
"""
