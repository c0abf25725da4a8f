"""``python -m inpca.atlas place RUN_FILE... --atlas RESULTS``: place recorded runs in an atlas.

Each run is placed checkpoint by checkpoint as if it were being recorded (:meth:`Atlas.trace`); the
command prints each run's last row (where it is, what it is closest to, the forecast of its end),
writes each run's table to ``DIR/<run file name>.atlas.tsv`` (``A.h5`` -> ``A.h5.atlas.tsv``, the name
the recorder gives it beside the run file) and the figure ``DIR/atlas-<split>.png`` and ``.html``: the
atlas' trajectories with the runs drawn over them. Bad input is one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InpcaError
from ..files import write_table
from ..plots import load, plot_atlas_html, plot_atlas_png
from ..recording_folder import PARTIAL_SUFFIX
from ..runfile import read_run
from .atlas import Atlas, AtlasError

DEFAULT_OUT = "atlas-placements"
TABLE_SUFFIX = ".atlas.tsv"  # after the run file's name, as inpca.record.Recorder.atlas_table


def table_name(run_file) -> str:
    """The name of a run file's table: the run file's name and ``.atlas.tsv`` (the recorder's)."""
    return Path(run_file).name + TABLE_SUFFIX


def check_run_files(run_files) -> list[Path]:
    """The run files, each once (the same file given twice is placed once); one line (AtlasError) for a
    folder (a recording in progress), a missing file, or two files whose tables would have one name."""
    files = list(dict.fromkeys(Path(p).resolve() for p in run_files))
    shown = {Path(p).resolve(): str(p) for p in reversed(run_files)}  # as the user typed them
    for path in files:
        name = shown[path]
        if path.is_dir():
            if path.name.endswith(PARTIAL_SUFFIX):
                finished = path.with_name(path.name[:-len(PARTIAL_SUFFIX)])
                steps = sorted(int(p.stem) for p in path.glob("*.h5") if p.stem.isdigit())
                count = f"{len(steps)} checkpoints" + (f", steps {steps[0]}..{steps[-1]}" if steps else "")
                live = finished.with_name(table_name(finished))
                so_far = (f"its checkpoints so far are placed in {live}" if live.exists() else
                          f"a recording with an atlas, Recorder.for_atlas, places its checkpoints so far in {live}")
                raise AtlasError(f"{name}: is a folder: a recording in progress ({count}); place it when it is "
                                 f"finished, as {finished} ({so_far})")
            raise AtlasError(f"{name}: is a folder; expected a run file (.h5: inpca.record, or a study's runs/)")
        if not path.exists():
            partial = path.with_name(path.name + PARTIAL_SUFFIX)
            if partial.is_dir():
                raise AtlasError(f"{name}: no such file yet: {partial} is a recording in progress; place it when it "
                                 "is finished")
            raise AtlasError(f"{name}: no such file; expected a run file (.h5: inpca.record, or a study's runs/)")
    by_name: dict[str, Path] = {}
    for path in files:
        other = by_name.setdefault(table_name(path), path)
        if other != path:
            raise AtlasError(f"{shown[other]} and {shown[path]}: both would be written to {table_name(path)} (and "
                             "drawn under one name); place them with separate --out folders, or rename one")
    return files


def place_runs(run_files, atlas_path, out, split: str = "train", k: int = 5):
    """Trace every run file in the atlas, write the tables and the figure; returns {table name: table},
    in the order of `run_files` (each file once)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AtlasError(f"--out {out}: a file, not a folder; give a folder for the tables and figures (made if need "
                         f"be; default {DEFAULT_OUT})")
    files = check_run_files(run_files)
    with Atlas.load(atlas_path) as atlas:
        if split not in atlas.splits:
            raise AtlasError(f"--split {split}: the atlas {atlas_path} embedded {', '.join(atlas.splits)}")
        references = len(atlas.outcomes)
        if k > references:
            # refused, not clamped: a forecast from all the references is their plain average, not the
            # nearest runs', and the table would not say that it used fewer than asked
            raise AtlasError(f"--k {k}: the atlas {atlas_path} has {references} reference runs; give at most "
                             f"{references} (a few: the forecast is the mean of the k nearest runs' outcomes)")
        for path in files:  # every file checked before any is placed: a bad one is named at once
            atlas.check_run(read_run(path))
        tables = {table_name(path)[:-len(TABLE_SUFFIX)]: atlas.trace(path, split=split, k=k) for path in files}
        for name, table in tables.items():
            write_table(table, out / f"{name}{TABLE_SUFFIX}")
        emb, index = load(Path(atlas_path) / "embedding" / f"{split}.h5", Path(atlas_path) / "store" / "index.tsv")
        plot_atlas_png(emb, index, tables, out / f"atlas-{split}.png", split=split)
        plot_atlas_html(emb, index, tables, out / f"atlas-{split}.html", split=split)
    return tables


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value!r}")
    return number


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inpca.atlas",
                                     description="Place recorded runs in an atlas (a finished study).")
    commands = parser.add_subparsers(dest="command", required=True)
    place = commands.add_parser(
        "place", help="place recorded run files in an atlas",
        description="Place each run file in the atlas checkpoint by checkpoint, as if it were being recorded; "
                    "print each run's last row, write DIR/<run file name>.atlas.tsv (A.h5 -> A.h5.atlas.tsv) and "
                    "the figure DIR/atlas-<split>.png and .html. Bad input is one line, exit 2.")
    place.add_argument("runs", nargs="+", metavar="RUN_FILE", help="run files (inpca.record, or a study's runs/)")
    place.add_argument("--atlas", required=True, metavar="RESULTS", help="the results folder of a finished study")
    place.add_argument("--split", default="train", help="the split runs are followed and forecast on (default: train)")
    place.add_argument("--k", type=positive_int, default=5,
                       help="reference runs a forecast averages, nearest first (default: 5)")
    place.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"folder for the tables and figures, made if need be (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        tables = place_runs(args.runs, args.atlas, args.out, split=args.split, k=args.k)
    except InpcaError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused a write (no such folder, permission, disk full)
        if exc.filename is None:
            raise
        print(f"error: {exc.filename}: {exc.strerror or exc}; choose another --out than {args.out} or fix that and "
              "run this again (no file is left half-written: each is written whole or not at all)", file=sys.stderr)
        return 2
    print(f"{'run':<28} {'step':>7} {'epoch':>7} {'progress':>8}  {'nearest configuration':<40} "
          "forecast final test error")
    for name, table in tables.items():
        last = table.iloc[-1]
        forecast = (f"{last['forecast_final_test_error']:.3f} [{last['forecast_low']:.3f}, {last['forecast_high']:.3f}]"
                    + ("" if bool(last["forecast_trusted"]) else f" untrusted: {last['forecast_note']}")
                    if last["forecast_final_test_error"] == last["forecast_final_test_error"] else
                    f"none ({last['forecast_note']})")
        print(f"{name[:28]:<28} {int(last['step']):>7} {last['epoch']:>7.3g} {last[f'{args.split}_progress']:>8.3f}  "
              f"{str(last['nearest_configuration'])[:40]:<40} {forecast}")
    print(f"wrote {args.out}/<run file name>{TABLE_SUFFIX} and {args.out}/atlas-{args.split}.png, .html")
    return 0
