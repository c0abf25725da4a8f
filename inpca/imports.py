"""Run files recorded by one's own training (:mod:`inpca.record`) brought into a study: the
`import_run` job. What the workflow needs at parse time (finding and naming the recordings) is
:mod:`inpca.recordings`, so that this module may import the store.

The config's `imports` lists files or glob patterns. When Snakemake parses the workflow, each file is
opened (h5py, imported only when a study has imports) for its identity: the run config it carries, its
data set fingerprint and sizes, and its first checkpoint. A run's id is `rec-<arch>-<8 hex>` (`arch`
from the recording's config), the hex digits hashing the config and the first checkpoint's
probabilities: the same recording imported again, from any path, is the same run, and nothing is
recomputed. Two files with the same content,
or recorded on different data, are refused at parse time with one line naming both files.

The `import_run` job (:func:`import_run`) then validates the whole file as the store would (shapes,
NaN, negative probabilities, row sums) and writes it as `results/runs/{run}.h5` under the study's id.
"""

from __future__ import annotations

import logging

from .config import SPLITS
from .errors import StoreError
from .runfile import METRICS, check_probabilities, read_run, write_run
from .store import check_fits_reference, read_reference


def import_run(source, out_path, run_id: str, sum_tolerance: float = 1e-3, reference=None) -> None:
    """Validate a recorded run file as the store would and write it as the study's run `run_id`.

    `reference`: the study's reference block when the study has a data set of its own; a recording
    made on other data is refused, naming both files.
    """
    run = read_run(source)
    for split in SPLITS:
        if f"{split}_labels" not in run:
            raise StoreError(f"{source}: no {split}_labels; record it with inpca.record, which stores the labels")
    if reference is not None:
        ref = read_reference(reference)
        expected, name = str(ref["attrs"]["fingerprint"]), str(ref["attrs"]["dataset"])
        if str(run["attrs"]["fingerprint"]) != expected:
            raise StoreError(f"{source} was recorded on other data than the study's {name} ({reference}): fingerprints "
                             f"{run['attrs']['fingerprint']} and {expected}; record it on the study's data "
                             "(Recorder.for_dataset) or use dataset: {name: recorded}")
        # every sample against the study's: a recording cut short (its attributes edited to match) is
        # refused here, naming the recording, and not later by the store, naming the copy
        check_fits_reference(source, run["attrs"], {s: run[f"{s}_probs"].shape[1:] for s in SPLITS}, ref["attrs"],
                             {s: run[f"{s}_labels"] for s in SPLITS}, {s: ref[f"{s}_labels"] for s in SPLITS})
    for split in SPLITS:
        check_probabilities(source, f"{split}_probs", run[f"{split}_probs"], sum_tolerance)
    attrs = {**run["attrs"], "run_id": run_id, "imported_from": str(source)}
    attrs.pop("format_version", None)
    probs = {split: run[f"{split}_probs"] for split in SPLITS}
    labels = {split: run[f"{split}_labels"] for split in SPLITS}
    write_run(out_path, probs, run["step"], run["epoch"], {m: run[m] for m in METRICS}, attrs, labels)
    logging.getLogger("inpca.imports").info("imported %s as %s: %d checkpoints", source, run_id, len(run["step"]))
