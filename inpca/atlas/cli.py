"""``python -m inpca.atlas place RUN_FILE... --atlas RESULTS``: place recorded runs in an atlas.

Each run is placed checkpoint by checkpoint as if it were being recorded (:meth:`Atlas.trace`); the
command prints each run's last row (where it is, what it is closest to, the forecast of its end),
writes each run's table to ``OUT/<run>.atlas.tsv`` and the figure ``OUT/atlas-<split>.png`` and
``.html``: the atlas' trajectories with the runs drawn over them. Bad input is one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InpcaError


def place_runs(run_files, atlas_path, out, split: str = "train", k: int = 5):
    """Trace every run file in the atlas, write the tables and the figure; returns {run name: table}."""
    from ..files import write_table
    from ..plots import load, plot_atlas_html, plot_atlas_png
    from .atlas import Atlas

    out = Path(out)
    with Atlas.load(atlas_path) as atlas:
        if split not in atlas.splits:
            from .atlas import AtlasError

            raise AtlasError(f"--split {split}: the atlas {atlas_path} embedded {', '.join(atlas.splits)}")
        tables = {}
        for run_file in run_files:
            name = Path(run_file).stem
            tables[name] = atlas.trace(run_file, split=split, k=k)
        for name, table in tables.items():
            write_table(table, out / f"{name}.atlas.tsv")
        emb, index = load(Path(atlas_path) / "embedding" / f"{split}.h5", Path(atlas_path) / "store" / "index.tsv")
        plot_atlas_png(emb, index, tables, out / f"atlas-{split}.png", split=split)
        plot_atlas_html(emb, index, tables, out / f"atlas-{split}.html", split=split)
    return tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inpca.atlas", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    place = commands.add_parser("place", help="place recorded run files in an atlas")
    place.add_argument("runs", nargs="+", metavar="RUN_FILE", help="run files (inpca.record, or a study's runs/)")
    place.add_argument("--atlas", required=True, metavar="RESULTS", help="the results folder of a finished study")
    place.add_argument("--split", default="train", help="the split runs are followed and forecast on (train)")
    place.add_argument("--k", type=int, default=5, help="reference trajectories a forecast uses (5)")
    place.add_argument("--out", default="atlas-placements", help="folder for the tables and figures")
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
    print(f"{'run':<28} {'step':>7} {'epoch':>7} {'progress':>8}  {'nearest configuration':<40} forecast final test error")
    for name, table in tables.items():
        last = table.iloc[-1]
        forecast = (f"{last['forecast_final_test_error']:.3f} [{last['forecast_low']:.3f}, {last['forecast_high']:.3f}]"
                    + ("" if bool(last["forecast_trusted"]) else f" untrusted: {last['forecast_note']}")
                    if last["forecast_final_test_error"] == last["forecast_final_test_error"] else
                    f"none ({last['forecast_note']})")
        print(f"{name[:28]:<28} {int(last['step']):>7} {last['epoch']:>7.3g} {last[f'{args.split}_progress']:>8.3f}  "
              f"{str(last['nearest_configuration'])[:40]:<40} {forecast}")
    print(f"wrote {args.out}/<run>.atlas.tsv and {args.out}/atlas-{args.split}.png, .html")
    return 0
