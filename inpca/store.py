"""The probability store: every point of the study in blocks, plus `index.tsv`.

`results/store/ref.h5` holds the reference points computed once per data set: ignorance P0 (uniform),
points on the geodesic, truth P* (one-hot labels), and the labels. `results/store/{block}.h5` holds the
checkpoints of the runs whose id hashes to that block. Both have the same layout:

  train_probs, test_probs   (M, N_split, C)   probabilities, chunked (1, <=4096, C) for streaming
  run                       (M,) str          run id, or P0 / geodesic / P* for reference points
  kind                      (M,) str          run | reference
  checkpoint, step          (M,) int64        checkpoint index within the run, optimizer step (-1 for references)
  epoch, train_loss, train_error, test_loss, test_error   (M,) float64 (NaN for references)
  t                         (M,) float64      geodesic parameter of reference points (NaN for runs)
  progress_train, progress_test       (M,)    progress λ on the P0→P* geodesic (progress.mode)
  dist_truth_train, dist_truth_test   (M,)    Bhattacharyya distance to P* (= half the cross-entropy)
Attributes: fingerprint, dataset, num_classes, n_train, n_test, runs (JSON: run id -> config),
run_info (JSON: run id -> {parameters, diverged_at_step, corner}), progress_mode (angle | bhattacharyya).
`ref.h5` also has train_labels and test_labels.

`results/store/corners.h5` (a study with corners only) holds two reference curves per corner, both
of kind "reference": the geodesic from P0 to the corner (run "P0->{corner}") and from the corner to
P* (run "{corner}->P*"), each at t = k / (geodesic_points + 1), k = 0 .. geodesic_points + 1, both
ends included; `t` is the curve's parameter, progress is still measured on P0 -> P*. Two more
per-point datasets name each point's corner and its init: corner, init (M,) str.

Layouts of a run block (`build_block(..., layout=)`):
  copy      train_probs/test_probs hold a float32 copy of the runs' probabilities (a second copy on
            disk: at paper scale as large as results/runs/ itself, twice as large for float16 runs).
  virtual   train_probs/test_probs are HDF5 virtual datasets: rows [offset, offset + K) map the
            (K, N, C) `{split}_probs` of one run file, read through in place (float16 runs read as
            float32: HDF5 converts on read). Source paths are stored relative to the block's folder
            (e.g. ../runs/x.h5), so the study folder can move as a whole. HDF5 (2.0) looks for a
            source under $HDF5_VDS_PREFIX if set, then in the block's folder, then under the working
            directory, and reads a source it cannot find as the fill value (NaN here). Attribute
            `sources` (JSON: [[relative path, checkpoints], ...] in row order) lets the reader check
            them, so whoever reads a block's probabilities opens it with `open_block`, which calls
            `check_sources` first (a copied block passes).
Both layouts read, check and refuse the run files alike at store time, and have the same readers.

Refusals (one line naming the file and the reason, nothing written): a run whose data set
fingerprint differs from the reference's, wrong shapes, NaN/Inf, negative probabilities, rows not
summing to 1 within `store.sum_tolerance` (default 1e-3, which float16 storage meets), and
truncated or corrupted files.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import numpy as np

from .errors import RunFileError, StoreError
from .files import atomic_path, create, open_h5, text_of, write_h5
from .runfile import check_probabilities, read_run
from .config import SPLITS
from .corners import read_corner
from .data import load_study_dataset
from .geodesic import distance_to_truth, geodesic, ignorance, progress_many, reference_points, truth
from .study import METRICS, POINT_FIELDS, flatten, index_columns

log = logging.getLogger("inpca.store")

# Per-point labels of the corners block (other blocks take them from their runs' files).
CORNER_FIELDS = ("corner", "init")
CHUNK_SAMPLES = 4096
LAYOUTS = ("copy", "virtual")


def _probs_chunks(n: int, c: int):
    return (1, min(n, CHUNK_SAMPLES), c)


def _point_metrics(probs: dict, labels: dict, num_classes: int, progress_mode: str) -> dict:
    out = {}
    for split in SPLITS:
        out[f"progress_{split}"] = progress_many(probs[split], labels[split], num_classes, mode=progress_mode)
        out[f"dist_truth_{split}"] = distance_to_truth(probs[split], labels[split])
    return out


def _block_attrs(source: dict, progress_mode: str, runs: str = "{}", run_info: str = "{}") -> dict:
    """The attributes of every block: the data's identity and sizes (from `source`: the reference's
    attributes, or the same keys), its runs' configs and infos (JSON), the progress mode."""
    return {"fingerprint": source["fingerprint"], "dataset": source["dataset"], "num_classes": int(source["num_classes"]),
            "n_train": int(source["n_train"]), "n_test": int(source["n_test"]), "runs": runs, "run_info": run_info,
            "progress_mode": progress_mode}


def _reference_columns(labels: dict, probs: dict, num_classes: int, progress_mode: str, *, run, kind, checkpoint,
                       t, **labels_of_points) -> dict:
    """The per-point columns of reference points (P0, the geodesic, P*; the corners' geodesics): no
    step, epoch or recorded metrics; their position along their curve (`checkpoint`, `t`)."""
    m = len(run)
    return {
        "run": np.array(run, dtype="S"), "kind": np.array(kind, dtype="S"),
        **{key: np.array(values, dtype="S") for key, values in labels_of_points.items()},
        "checkpoint": np.asarray(checkpoint, np.int64), "step": np.full(m, -1, np.int64),
        "epoch": np.full(m, np.nan), **{k: np.full(m, np.nan) for k in METRICS}, "t": np.asarray(t, np.float64),
        **_point_metrics(probs, labels, num_classes, progress_mode),
    }


def _write_points(f, probs: dict, columns: dict, attrs: dict, labels: dict | None = None) -> None:
    """A block's datasets in the one order every block has them (HDF5 lays out a file in creation
    order, so the same content gives the same bytes): probabilities (and labels) per split, the
    per-point columns, the attributes."""
    for split in SPLITS:
        create(f, f"{split}_probs", data=probs[split], chunks=_probs_chunks(*probs[split].shape[1:]))
        if labels is not None:
            create(f, f"{split}_labels", data=labels[split])
    _write_columns(f, columns, attrs)


def _write_columns(f, columns: dict, attrs: dict) -> None:
    """A block's per-point columns and its attributes, after its probabilities (every block's order)."""
    for key, value in columns.items():
        create(f, key, data=value)
    f.attrs.update(attrs)


def _recorded_data(run_path) -> tuple[dict, int, str, str]:
    """Labels, class count, fingerprint and name of the data a recorded run file carries."""
    with open_h5(run_path) as f:
        if "train_labels" not in f or "test_labels" not in f:
            raise StoreError(f"{run_path}: no labels; a study of recorded runs takes its reference from them "
                             "(inpca.record stores them)")
        labels = {split: f[f"{split}_labels"][()].astype(np.int64) for split in SPLITS}
        return labels, int(f.attrs["num_classes"]), str(f.attrs["fingerprint"]), str(f.attrs.get("dataset", "recorded"))


def write_reference(out_path, dataset_spec: dict, geodesic_points: int, data_dir_base=None,
                    progress_mode: str = "angle", recorded_run=None) -> None:
    """The reference block of a data set: P0, `geodesic_points` interior geodesic points, P*.

    For `dataset: recorded` the labels (and the data's fingerprint) come from `recorded_run`, one of
    the study's imported run files.
    """
    if dataset_spec["name"] == "recorded":
        labels, C, fingerprint, name = _recorded_data(recorded_run)
    else:
        dataset = load_study_dataset(dataset_spec, data_dir_base)
        labels = {"train": np.asarray(dataset.y_train, np.int64), "test": np.asarray(dataset.y_test, np.int64)}
        C, fingerprint, name = dataset.num_classes, dataset.fingerprint, dataset.name
    probs, names, ts = {}, None, None
    for split in SPLITS:
        probs[split], names, ts = reference_points(labels[split], C, n_geodesic=geodesic_points + 1)
    m = len(names)
    columns = _reference_columns(labels, probs, C, progress_mode, run=names, kind=["reference"] * m,
                                 checkpoint=np.arange(m), t=ts)
    attrs = _block_attrs({"fingerprint": fingerprint, "dataset": name, "num_classes": C,
                          "n_train": len(labels["train"]), "n_test": len(labels["test"])}, progress_mode)
    write_h5(out_path, lambda f: _write_points(f, probs, columns, attrs, labels))
    log.info("wrote %s: %d reference points (%s, N=%d/%d, C=%d)", out_path, m, name,
             attrs["n_train"], attrs["n_test"], C)


def write_corner_curves(out_path, corner_paths: dict, reference_path, geodesic_points: int,
                        progress_mode: str = "angle", sum_tolerance: float = 1e-3) -> None:
    """The corners block: for each corner (id -> its predictions file, results/corners/{id}.h5) the
    geodesics P0 -> corner and corner -> P*, geodesic_points + 2 points each (module docstring).
    Refuses a corner file of other data (fingerprint), of the wrong shape or with bad probabilities."""
    ref = read_reference(reference_path)
    attrs = ref["attrs"]
    C = int(attrs["num_classes"])
    labels = {split: ref[f"{split}_labels"] for split in SPLITS}
    ts = np.arange(geodesic_points + 2, dtype=np.float64) / (geodesic_points + 1)
    probs = {split: [] for split in SPLITS}
    meta = {k: [] for k in ("run", "kind", *CORNER_FIELDS, "checkpoint", "t")}
    for cid, path in sorted(corner_paths.items()):
        try:
            corner = read_corner(path)
        except RunFileError as exc:
            raise StoreError(str(exc)) from None
        check_fits_reference(path, corner["attrs"], {s: corner[f"{s}_probs"].shape for s in SPLITS}, attrs,
                             what="corner")
        init = json.loads(corner["attrs"]["config"])["init"]["name"]
        for split in SPLITS:
            p = corner[f"{split}_probs"]
            try:
                check_probabilities(path, f"{split}_probs", p[None], sum_tolerance)
            except RunFileError as exc:
                raise StoreError(str(exc)) from None
            p = p.astype(np.float64)
            p = p / p.sum(axis=1, keepdims=True)
            start, end = ignorance(*p.shape, dtype=np.float64), truth(labels[split], C, dtype=np.float64)
            for a, b in ((start, p), (p, end)):
                curve = geodesic(a, b, ts, dtype=np.float64)
                curve[0], curve[-1] = a, b  # the ends exactly
                probs[split].append(curve.astype(np.float32))
        for name in (f"P0->{cid}", f"{cid}->P*"):
            meta["run"] += [name] * len(ts)
            meta["kind"] += ["reference"] * len(ts)
            meta["corner"] += [cid] * len(ts)
            meta["init"] += [init] * len(ts)
            meta["checkpoint"] += list(range(len(ts)))
            meta["t"] += list(ts)
    probs = {split: np.concatenate(curves) for split, curves in probs.items()}
    m = len(meta["run"])
    columns = _reference_columns(labels, probs, C, progress_mode, **meta)
    write_h5(out_path, lambda f: _write_points(f, probs, columns, _block_attrs(attrs, progress_mode)))
    log.info("wrote %s: the geodesics P0 -> corner -> P* of %d corners (%d points)", out_path, len(corner_paths), m)


def read_reference(path) -> dict:
    try:
        with open_h5(path) as f:
            return {"attrs": dict(f.attrs), **{f"{s}_labels": f[f"{s}_labels"][()] for s in SPLITS}}
    except KeyError as exc:
        raise StoreError(f"{path}: not a reference block ({exc})") from None


def check_fits_reference(path, attrs: dict, sample_shapes: dict, reference_attrs: dict, labels: dict | None = None,
                         reference_labels: dict | None = None, what: str = "run") -> None:
    """Refuse (StoreError naming `path`) a run that was not recorded on the study's samples: another
    data set (fingerprint), another number of samples or classes, or (when both are given) other labels,
    i.e. other samples or another order. `sample_shapes`: {split: (samples, classes)} of its arrays."""
    if attrs["fingerprint"] != reference_attrs["fingerprint"]:
        raise StoreError(f"{path}: data set fingerprint {attrs['fingerprint']} differs from the study's "
                         f"{reference_attrs['fingerprint']} ({reference_attrs['dataset']}); the {what} was trained on other data")
    for split in SPLITS:
        expected = (int(reference_attrs[f"n_{split}"]), int(reference_attrs["num_classes"]))
        got = sample_shapes.get(split)
        if got != expected:
            raise StoreError(f"{path}: {split}_probs has (samples, classes) {got}, expected {expected} "
                             f"({reference_attrs['dataset']})")
        if labels is not None and reference_labels is not None:
            differ = np.flatnonzero(np.asarray(labels[split]) != np.asarray(reference_labels[split]))
            if differ.size:
                raise StoreError(f"{path}: its {split} labels differ from the study's ({reference_attrs['dataset']}) at "
                                 f"{differ.size} samples, the first at sample {differ[0]}; recorded on other samples or "
                                 "in another order")


def build_block(out_path, run_paths: list, reference_path, sum_tolerance: float = 1e-3,
                progress_mode: str = "angle", layout: str = "copy") -> None:
    """Gather the checkpoints of `run_paths` into one block file; refuse bad input without output.

    Runs are read and checked one at a time, so memory holds one run, not a block. layout "copy"
    writes their probabilities into the block (:class:`_CopiedProbs`); "virtual" maps them from the
    run files (:class:`_VirtualProbs`, module docstring), which must then stay where they are
    relative to the block. Both layouts write the same datasets in the same order (_write_points).
    """
    if layout not in LAYOUTS:
        raise StoreError(f"{out_path}: layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    ref = read_reference(reference_path)
    ref_attrs = ref["attrs"]
    C = int(ref_attrs["num_classes"])
    labels = {s: ref[f"{s}_labels"] for s in SPLITS}
    headers = _run_headers(run_paths, ref_attrs)  # every file checked before anything is written
    shapes = {s: (sum(k for *_, k in headers), int(ref_attrs[f"n_{s}"]), C) for s in SPLITS}

    def fill(f):
        points = _RunPoints()
        probs = (_CopiedProbs if layout == "copy" else _VirtualProbs)(f, shapes, Path(out_path).parent.resolve())
        for path, rid, k in headers:
            try:
                run = read_run(path)
            except RunFileError as exc:
                raise StoreError(str(exc)) from None
            for split in SPLITS:
                check_probabilities(path, f"{split}_probs", run[f"{split}_probs"], sum_tolerance)
                run[f"{split}_probs"] = run[f"{split}_probs"].astype(np.float32, copy=False)  # once, for both uses
            probs.add(path, run)
            points.add(rid, run, _point_metrics({s: run[f"{s}_probs"] for s in SPLITS}, labels, C, progress_mode))
            log.info("%s: %d checkpoints", rid, k)
        probs.close()
        _write_columns(f, points.columns(), _block_attrs(ref_attrs, progress_mode,
                                                         runs=json.dumps(points.configs, sort_keys=True),
                                                         run_info=json.dumps(points.run_info, sort_keys=True)))

    try:
        write_h5(out_path, fill)
    except RunFileError as exc:
        raise StoreError(str(exc)) from None
    log.info("wrote %s: %d runs, %d points (%s)", out_path, len(headers), shapes["train"][0], layout)


def _run_headers(run_paths, ref_attrs: dict) -> list[tuple[Path, str, int]]:
    """(path, run id, checkpoints) of each run file, in path order, after checking its header against
    the reference (no probabilities read)."""
    headers = []
    for path in sorted(map(Path, run_paths)):
        try:
            f = open_h5(path)
        except RunFileError as exc:
            raise StoreError(str(exc)) from None
        with f:
            attrs = dict(f.attrs)
            if "fingerprint" not in attrs or "step" not in f:
                raise StoreError(f"{path}: not a run file (no fingerprint/step); truncated or written by something else?")
            check_fits_reference(path, attrs, {s: tuple(f[f"{s}_probs"].shape[1:]) if f"{s}_probs" in f else None
                                               for s in SPLITS}, ref_attrs)
            headers.append((path, attrs["run_id"], int(f["step"].shape[0])))
    return headers


class _CopiedProbs:
    """Layout "copy": the runs' probabilities written into the block, run after run."""

    def __init__(self, f, shapes: dict, block_folder: Path):
        self.offset = 0
        self.dsets = {s: create(f, f"{s}_probs", shape=shapes[s], dtype=np.float32,
                                chunks=_probs_chunks(*shapes[s][1:]) if shapes[s][0] else None) for s in SPLITS}

    def add(self, path: Path, run: dict) -> None:
        k = len(run["step"])
        for split in SPLITS:
            self.dsets[split][self.offset:self.offset + k] = run[f"{split}_probs"]
        self.offset += k

    def close(self) -> None:
        pass


class _VirtualProbs:
    """Layout "virtual": HDF5 virtual datasets that map each run file's probabilities, by a path relative
    to the block's folder (recorded in the attribute `sources` for :func:`check_sources`)."""

    def __init__(self, f, shapes: dict, block_folder: Path):
        import h5py

        self.f, self.folder, self.offset, self.sources = f, block_folder, 0, []
        self.layouts = {s: h5py.VirtualLayout(shape=shapes[s], dtype=np.float32) for s in SPLITS}

    def add(self, path: Path, run: dict) -> None:
        import h5py

        k = len(run["step"])
        source = Path(os.path.relpath(path.resolve(), self.folder)).as_posix()
        self.sources.append((source, k))
        for split in SPLITS:
            p = run[f"{split}_probs"]
            self.layouts[split][self.offset:self.offset + k] = h5py.VirtualSource(source, f"{split}_probs",
                                                                                  shape=p.shape, dtype=p.dtype)
        self.offset += k

    def close(self) -> None:
        for split, virtual in self.layouts.items():
            # no timestamps, as for every dataset the store writes: same input, same file
            virtual.dcpl.set_obj_track_times(False)
            # NaN, not 0, where a source is missing: the tiles' probability check refuses it
            self.f.create_virtual_dataset(f"{split}_probs", virtual, fillvalue=np.nan)
        self.f.attrs["sources"] = json.dumps(self.sources)


class _RunPoints:
    """The per-point columns of a block of runs and its runs' configs and infos, gathered run by run."""

    def __init__(self):
        self.meta = {k: [] for k in ("run", "kind", *POINT_FIELDS)}
        self.configs, self.run_info = {}, {}

    def add(self, rid: str, run: dict, metrics: dict) -> None:
        k = len(run["step"])
        self.configs[rid] = run["config"]
        self.run_info[rid] = {"parameters": _optional_int(run["attrs"].get("parameters")),
                              "diverged_at_step": _optional_int(run["attrs"].get("diverged_at_step", -1)),
                              "corner": str(run["attrs"].get("corner", ""))}
        self.meta["run"] += [rid.encode()] * k
        self.meta["kind"] += [b"run"] * k
        self.meta["checkpoint"] += list(range(k))
        self.meta["step"] += list(run["step"])
        self.meta["epoch"] += list(run["epoch"])
        for key in METRICS:
            self.meta[key] += list(run[key])
        self.meta["t"] += [np.nan] * k
        for key, values in metrics.items():
            self.meta[key] += list(values)

    def columns(self) -> dict:
        return {key: np.array(values, dtype="S" if key in ("run", "kind") else
                              np.int64 if key in ("checkpoint", "step") else np.float64)
                for key, values in self.meta.items()}


def check_sources(block_path) -> None:
    """Refuse a virtual block whose run files are missing, unreadable or changed since it was built.

    A copied block (or the reference) passes at once. Checks each source in the block's folder
    joined with the stored relative path, and refuses $HDF5_VDS_PREFIX, which HDF5 would search
    first: one line names the first bad run file. Cost: opening each run file for its attributes and
    shapes, no probabilities.
    """
    block_path = Path(block_path)
    with open_h5(block_path) as f:
        if "sources" not in f.attrs:
            return
        sources = json.loads(f.attrs["sources"])
        fingerprint, C = str(f.attrs["fingerprint"]), int(f.attrs["num_classes"])
        samples = {s: int(f.attrs[f"n_{s}"]) for s in SPLITS}
    if os.environ.get("HDF5_VDS_PREFIX"):
        raise StoreError(f"{block_path}: HDF5_VDS_PREFIX is set ({os.environ['HDF5_VDS_PREFIX']}); HDF5 would look "
                         "for this virtual block's run files there before the block's folder; unset it")
    rebuild = "delete the block and rerun Snakemake, which rebuilds it"
    for relative, k in sources:
        source = block_path.parent / relative
        shown = os.path.normpath(source)
        if not source.exists():
            raise StoreError(f"{block_path}: run file {shown} does not exist; this virtual block reads its "
                             "probabilities from it (restore it, or rerun Snakemake to rebuild it, then the block)")
        try:
            run = open_h5(source)
        except RunFileError as exc:
            raise StoreError(f"{block_path}: {exc}") from None
        with run:
            if str(run.attrs.get("fingerprint")) != fingerprint:
                raise StoreError(f"{block_path}: run file {shown} has data set fingerprint "
                                 f"{run.attrs.get('fingerprint')}, the block {fingerprint}; it changed since the "
                                 f"block was built ({rebuild})")
            for split in SPLITS:
                got = run[f"{split}_probs"].shape if f"{split}_probs" in run else None
                if got != (k, samples[split], C):
                    raise StoreError(f"{block_path}: run file {shown} has {split}_probs of shape {got}, the block "
                                     f"maps {(k, samples[split], C)}; it changed since the block was built ({rebuild})")


def open_block(path):
    """Open a block (either layout, or the reference) to read its probabilities: `check_sources`,
    then the file with HDF5's chunk cache off.

    Readers take sample ranges of whole rows, and no chunk of a block or run file is compressed, so
    without the cache HDF5 reads just the bytes asked for into the result. With its 1 MiB default it
    reads every chunk that fits whole, then copies the range out: a run file's (1, N, C) chunks
    (400 kB at N = 10,000, C = 10) read in 4096-sample ranges move three times the bytes of the data
    (benchmarks/store_layout.py). The setting carries over to the run files a virtual block opens.
    """
    check_sources(path)
    return open_h5(path, rdcc_nbytes=0)


def read_points(path) -> tuple[list[dict], dict, dict]:
    """Per-point metadata rows of a block file, its run configs and its runs' parameter counts and
    divergence steps (no probabilities)."""
    with open_h5(path) as f:
        m = f["run"].shape[0]
        cols = {k: f[k][()] for k in ("run", "kind", *POINT_FIELDS, *CORNER_FIELDS) if k in f}
        configs = json.loads(f.attrs["runs"])
        run_info = json.loads(f.attrs.get("run_info", "{}"))
    rows = []
    for i in range(m):
        row = {k: (text_of(v[i]) if v.dtype.kind in "SUO" else v[i].item()) for k, v in cols.items()}
        rows.append(row)
    return rows, configs, run_info


def write_index(out_path, block_paths: dict) -> None:
    """index.tsv: one row per point in matrix order (blocks in the given order, rows in block order)."""
    rows, all_configs = [], {}
    for block, path in block_paths.items():
        points, configs, run_info = read_points(path)
        all_configs.update(configs)
        flat = {rid: flatten(cfg) for rid, cfg in configs.items()}
        for row_in_block, point in enumerate(points):
            cfg = flat.get(point["run"], {})
            # imported runs carry free-form configs: an `arch`/`optimizer` field of any shape labels them too
            labels = {"arch": str(cfg.get("arch.name", cfg.get("arch", point["run"]))),
                      "optimizer": _optimizer_label(cfg) if "optimizer.name" in cfg
                      else str(cfg.get("optimizer", point["run"])),
                      # where the run started: the default init, or a corner (the corners block's curves
                      # carry their own corner and init)
                      "init": str(cfg.get("init.name", "default")) if point["kind"] == "run" else ""}
            info = run_info.get(point["run"], {})
            rows.append({"point": len(rows), "block": block, "row": row_in_block, "run": point["run"],
                         "kind": point["kind"], **labels, **info, **point, **cfg})
    fields = index_columns(all_configs)  # what the parse-time check of plots.color_by expects
    with atomic_path(out_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter="\t", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, "")) for k in fields})
    log.info("wrote %s: %d points in %d blocks", out_path, len(rows), len(block_paths))


def _optional_int(value):
    return None if value is None else int(value)


def _optimizer_label(cfg: dict) -> str:
    name = cfg.get("optimizer.name", "")
    return "sgd-nesterov" if name == "sgd" and cfg.get("optimizer.nesterov") else name


def _fmt(value):
    if isinstance(value, float):
        return "" if np.isnan(value) else repr(value)
    return value
