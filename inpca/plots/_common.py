"""What every figure of an embedding shares: loading the embedding and its index, the reference
rows (P0, the geodesic, P*, corners), colours, legends and the labelling of 3-D axes."""


from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config import resolve_column
from ..errors import ResultsError
from ..figures import arch_colors
from ..files import open_h5, read_table, text_of

# Above this many distinct numeric values a colour column gets a colormap and colorbar, not a legend.
MAX_CATEGORIES_NUMERIC = 8
CORNER_IN_COLOR = "black"      # the geodesic P0 -> corner
CORNER_OUT_COLOR = "#555555"   # the geodesic corner -> P*
CORNER_MARKER_COLOR = "black"
MAIN_REFERENCE_RUNS = ("P0", "geodesic", "P*")
CORNER_IN, CORNER_OUT = "P0->corner", "corner->P*"  # directions of a corner curve
CORNER_LABELS = {CORNER_IN: "geodesic P0→corner", CORNER_OUT: "geodesic corner→P*"}
REFERENCE_COLOR = "red"
TIMELIKE_COLOR = "red"
MINUS = "\u2212"  # typographic minus in labels
HOVER_COLUMNS = ("run", "arch", "optimizer", "epoch", "step", "train_error", "test_error")


# --------------------------------------------------------------------------------------------------
# loading


def load(embedding_path, index_path=None):
    """(emb, index): the embedding file as a dict of arrays (+ 'attrs') and index.tsv as a DataFrame
    (index is None when index_path is None: the spectrum needs no index).

    `run` and `kind` are decoded to str arrays. Raises ResultsError (one line naming both files) when the
    row counts differ or the run labels are not in the same order.
    """
    emb: dict = {}
    with open_h5(embedding_path) as f:
        for name in f:
            data = f[name][()]
            if name in ("run", "kind"):
                data = np.array([text_of(v) for v in data], dtype=object)
            emb[name] = data
        emb["attrs"] = {key: (text_of(v) if isinstance(v, (bytes, str, np.bytes_, np.str_)) else
                              (v.item() if isinstance(v, np.generic) else v)) for key, v in f.attrs.items()}
    missing = [n for n in ("coords", "eigenvalues", "explained_stress") if n not in emb]
    if missing:
        raise ResultsError(f"{embedding_path}: missing dataset(s) {', '.join(missing)}; not an embedding file")
    if index_path is None:
        return emb, None
    index_path = Path(index_path)
    if not index_path.exists():
        raise ResultsError(f"{index_path}: file does not exist")
    index = read_table(index_path)
    m = emb["coords"].shape[0]
    if len(index) != m:
        raise ResultsError(f"{embedding_path} has {m} points but {index_path} has {len(index)} rows; "
                         "rerun the store and the embedding")
    if "run" in emb and "run" in index.columns:
        bad = np.flatnonzero(index["run"].astype(str).to_numpy() != emb["run"].astype(str))
        if bad.size:
            i = int(bad[0])
            raise ResultsError(f"{embedding_path} and {index_path} disagree on the run of row {i} "
                             f"({emb['run'][i]!r} vs {index['run'].iloc[i]!r}) and {bad.size - 1} more rows; "
                             "rerun the store and the embedding")
    return emb, index


# --------------------------------------------------------------------------------------------------
# shared helpers


def check_rows(emb: dict, index) -> None:
    m = emb["coords"].shape[0]
    if len(index) != m:
        raise ResultsError(f"the embedding has {m} points but the index has {len(index)} rows")


def split_of(emb: dict) -> str:
    return text_of(emb.get("attrs", {}).get("split", "")) or "?"


def format_lambda(lam: float) -> str:
    sign = "+" if lam >= 0 else MINUS
    return f"{sign}{abs(lam):.3g}"


def axis_labels(eigenvalues) -> list[tuple[str, bool]]:
    """(label, time-like) for the three plotted axes; axes beyond k are padding."""
    out = []
    for i in range(3):
        if i < len(eigenvalues):
            lam = float(eigenvalues[i])
            timelike = lam < 0
            out.append((f"PC{i + 1} (λ={format_lambda(lam)}{', time-like' if timelike else ''})", timelike))
        else:
            out.append((f"PC{i + 1} (none, set to 0)", False))
    return out


def coords3(emb: dict) -> np.ndarray:
    coords = np.asarray(emb["coords"], dtype=float)
    if coords.ndim == 1:
        coords = coords[:, None]
    if coords.shape[1] >= 3:
        return coords[:, :3]
    return np.hstack([coords, np.zeros((coords.shape[0], 3 - coords.shape[1]))])


def stress_at(emb: dict, k: int):
    stress = np.asarray(emb.get("explained_stress", []), dtype=float)
    if len(stress) == 0:
        return None
    return float(stress[min(k, len(stress)) - 1])


def figure_title(emb: dict, title, what: str, color_col: str | None = None) -> str:
    if title:
        return title
    k = np.asarray(emb["coords"]).shape[1] if np.asarray(emb["coords"]).ndim == 2 else 1
    parts = [f"{split_of(emb)} split: {what}"]
    s3 = stress_at(emb, 3)
    if s3 is not None:
        parts.append(f"S({min(k, 3)})={s3:.3f}")
    if color_col:
        parts.append(f"coloured by {color_col}")
    text = ", ".join(parts)
    if k < 3:
        text += f" (only {k} component{'s' if k != 1 else ''}; missing axes set to 0)"
    return text


def colour_column(index, color_by: str) -> str:
    """The index column named `color_by`, or the one config column ending in `.{color_by}` (lr -> optimizer.lr)."""
    return resolve_column(index.columns, color_by)


def corner_direction(run: str) -> str | None:
    """CORNER_IN for "P0->{corner}", CORNER_OUT for "{corner}->P*", None for any other run label."""
    if run.startswith("P0->") and len(run) > 4:
        return CORNER_IN
    if run.endswith("->P*") and len(run) > 4:
        return CORNER_OUT
    return None


def gapped(xyz, run_list, hover=None):
    """Runs concatenated into one plotly trace, separated by None so that lines do not join runs:
    (xs, ys, zs, text), text the rows' `hover` (empty without it)."""
    xs, ys, zs, text = [], [], [], []
    for _, rows in run_list:
        if xs:
            for seq in (xs, ys, zs, text):
                seq.append(None)
        p = xyz[rows]
        xs.extend(p[:, 0].tolist())
        ys.extend(p[:, 1].tolist())
        zs.extend(p[:, 2].tolist())
        text.extend(hover[r] if hover is not None else None for r in rows)
    return xs, ys, zs, (text if hover is not None else [])


def runs_mask(index) -> np.ndarray:
    if "kind" in index.columns:
        return (index["kind"].astype(str) == "run").to_numpy()
    runs = index["run"].astype(str)
    corner_curve = np.array([corner_direction(r) is not None for r in runs], dtype=bool)
    return ~runs.isin(list(MAIN_REFERENCE_RUNS)).to_numpy() & ~corner_curve


def runs_of(index) -> list[tuple[str, np.ndarray]]:
    """(run id, row positions in checkpoint order) for every run, in order of first appearance."""
    import pandas as pd

    mask = runs_mask(index)
    runs = index["run"].astype(str).to_numpy()
    order_col = next((c for c in ("checkpoint", "step", "epoch") if c in index.columns), None)
    order_key = (pd.to_numeric(index[order_col], errors="coerce").to_numpy(dtype=float) if order_col
                 else np.arange(len(index), dtype=float))
    return grouped(runs, np.flatnonzero(mask), order_key)


def grouped(labels: np.ndarray, positions, key: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, its positions ordered by `key`, stably) for each label of `positions`, in order of first
    appearance."""
    members: dict[str, list[int]] = {}
    for pos in positions:
        members.setdefault(labels[pos], []).append(pos)
    return [(label, np.array(rows)[np.argsort(key[rows], kind="stable")]) for label, rows in members.items()]


def references_of(index) -> tuple[np.ndarray, int | None, int | None]:
    """(rows of the main P0→P* geodesic ordered along it, row of P0, row of P*).

    Only reference rows whose run is P0, geodesic or P*: the corner curves are in `corner_curves`.
    """
    import pandas as pd

    runs = index["run"].astype(str).to_numpy()
    mask = ~runs_mask(index) & np.isin(runs, MAIN_REFERENCE_RUNS)
    rows = np.flatnonzero(mask)
    if "t" in index.columns:
        t = pd.to_numeric(index["t"], errors="coerce").to_numpy(dtype=float)[rows]
        # P0 first, P* last when t is missing
        t = np.where(np.isnan(t), np.where(runs[rows] == "P*", np.inf, -np.inf), t)
        rows = rows[np.argsort(t, kind="stable")]
    p0 = next((int(r) for r in rows if runs[r] == "P0"), None)
    pstar = next((int(r) for r in rows if runs[r] == "P*"), None)
    return rows, p0, pstar


class CornerCurve(NamedTuple):
    """One corner curve of the index: its run label, corner id, init name ("" when unknown), direction
    (CORNER_IN "P0->corner" or CORNER_OUT "corner->P*") and row positions ordered by t."""

    run: str
    corner: str
    init: str
    direction: str
    rows: np.ndarray


def label_value(index, column: str, row: int) -> str:
    """The index value as text, "" when the column is missing or the cell is empty."""
    import pandas as pd

    if column not in index.columns:
        return ""
    v = index[column].iloc[row]
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return str(v).strip()


def corner_curves(index) -> list[CornerCurve]:
    """The geodesics P0→corner and corner→P* of the index, in order of first appearance, each with
    its rows ordered by t (index order where t is missing). Empty for an index without corners."""
    import pandas as pd

    runs = index["run"].astype(str).to_numpy()
    candidates = np.flatnonzero(~runs_mask(index) & ~np.isin(runs, MAIN_REFERENCE_RUNS))
    if candidates.size == 0:
        return []
    t = (pd.to_numeric(index["t"], errors="coerce").to_numpy(dtype=float) if "t" in index.columns
         else np.full(len(index), np.nan))
    # references of another kind are not corner curves; rows without t go last
    curves = [pos for pos in candidates if corner_direction(runs[pos]) is not None]
    out = []
    for run, rows in grouped(runs, curves, np.where(np.isnan(t), np.inf, t)):
        direction = corner_direction(run)
        corner = next((c for c in (label_value(index, "corner", r) for r in rows) if c), "")
        if not corner:  # no corner column: the id from the run label
            corner = run[len("P0->"):] if direction == CORNER_IN else run[:-len("->P*")]
        init = next((i for i in (label_value(index, "init", r) for r in rows) if i), "")
        out.append(CornerCurve(run, corner, init, direction, rows))
    return out


def corner_points(index, curves: list[CornerCurve]) -> list[tuple[int, str, str]]:
    """(row, corner id, init) of every corner, once per corner in order of first appearance: the t=1 end
    of its P0→corner curve, else the t=0 end of its corner→P* curve. The init falls back on the runs
    that start from the corner when the curves do not carry it."""
    points: dict[str, list] = {}
    for curve in curves:
        row = int(curve.rows[-1] if curve.direction == CORNER_IN else curve.rows[0])
        if curve.corner not in points:
            points[curve.corner] = [row, curve.init]
        elif curve.direction == CORNER_IN:
            points[curve.corner][0] = row
        if not points[curve.corner][1]:
            points[curve.corner][1] = curve.init
    if "corner" in index.columns and "init" in index.columns and any(not v[1] for v in points.values()):
        run_rows = np.flatnonzero(runs_mask(index))
        for r in run_rows:
            c = label_value(index, "corner", r)
            if c in points and not points[c][1]:
                points[c][1] = label_value(index, "init", r)
    return [(row, corner, init) for corner, (row, init) in points.items()]


def format_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


class RunColours:
    """Colour of every run from one index column: qualitative palette + legend, or colormap + colorbar."""

    def __init__(self, index, runs, column: str):
        import pandas as pd
        from matplotlib import colormaps
        from matplotlib.colors import LogNorm, Normalize, to_hex

        self.column = column
        first = [index[column].iloc[rows[0]] for _, rows in runs]
        present = [v for v in first if not pd.isna(v)]
        numeric = pd.to_numeric(pd.Series(first, dtype=object), errors="coerce").to_numpy(dtype=float)
        all_numeric = (bool(present) and not any(isinstance(v, (bool, np.bool_)) for v in present)
                       and int(np.isfinite(numeric).sum()) == len(present))
        finite = numeric[np.isfinite(numeric)]
        self.continuous = all_numeric and len(np.unique(finite)) > MAX_CATEGORIES_NUMERIC
        self.nan_color = "#9e9e9e"
        if self.continuous:
            lo, hi = float(finite.min()), float(finite.max())
            self.log = lo > 0 and hi / lo >= 100
            self.norm = LogNorm(lo, hi) if self.log else Normalize(lo, hi)
            self.cmap = colormaps["viridis"]
            self.values = numeric
            self.run_color = [to_hex(self.cmap(self.norm(v))) if np.isfinite(v) else self.nan_color for v in numeric]
            self.run_label = [format_value(v) for v in numeric]
            self.categories = []
        else:
            if all_numeric:
                labels = [format_value(float(v)) for v in numeric]
                order = sorted(set(labels), key=lambda s: (s == "n/a", float(s) if s != "n/a" else 0.0))
            else:
                labels = ["n/a" if pd.isna(v) else format_value(v) for v in first]
                order = sorted(set(labels), key=lambda s: (s == "n/a", s))
            n = len(order)
            palette = colormaps["tab10" if n <= 10 else "tab20"]
            if n <= 20:
                colors = [to_hex(palette(i)) for i in range(n)]
            else:
                turbo = colormaps["turbo"]
                colors = [to_hex(turbo(0.05 + 0.9 * i / max(n - 1, 1))) for i in range(n)]
            self.categories = order
            self.category_color = dict(zip(order, colors))
            if column == "arch":  # the same colour per architecture as the analysis figures
                self.category_color.update({k: v for k, v in arch_colors(order).items() if k in order})
            if "n/a" in self.category_color:
                self.category_color["n/a"] = self.nan_color
            self.run_label = labels
            self.run_color = [self.category_color[label] for label in labels]

    def mpl_legend(self, ax, fig):
        if self.continuous:
            from matplotlib.cm import ScalarMappable

            sm = ScalarMappable(norm=self.norm, cmap=self.cmap)
            sm.set_array([])
            fig.colorbar(sm, ax=ax, shrink=0.6, pad=0.1, label=self.column + (" (log scale)" if self.log else ""))
            return None
        return [(self.category_color[c], c) for c in self.categories]


def legend_handles(pairs, marker=None):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=color, lw=2, marker=marker, label=label) for color, label in pairs]


def place_legend(ax, handles, extra, title):
    items = handles + extra
    if not items:
        return
    ncol = max(1, math.ceil(len(items) / 24))
    ax.legend(handles=items, title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
              title_fontsize="small", ncol=ncol, frameon=False)


def label_axes_png(ax, eigenvalues) -> None:
    """Label a 3-D axes with its components' eigenvalues; a time-like axis (λ < 0) in red, its line and
    ticks too (every 3-D figure the same way)."""
    for axis, (label, timelike) in zip("xyz", axis_labels(np.asarray(eigenvalues))):
        getattr(ax, f"set_{axis}label")(label, color=TIMELIKE_COLOR if timelike else "black", labelpad=10)
        if timelike:
            axis_obj = getattr(ax, f"{axis}axis")
            axis_obj.line.set_color(TIMELIKE_COLOR)
            axis_obj.line.set_linewidth(2.0)
            ax.tick_params(axis=axis, colors=TIMELIKE_COLOR)


def scene_layout(eigenvalues) -> dict:
    """The plotly scene's axes, labelled as `label_axes_png` labels them."""
    scene = {}
    for axis, (label, timelike) in zip("xyz", axis_labels(np.asarray(eigenvalues))):
        spec = dict(title=dict(text=label), showline=True)
        if timelike:
            spec.update(title=dict(text=label, font=dict(color=TIMELIKE_COLOR)), color=TIMELIKE_COLOR,
                        linecolor=TIMELIKE_COLOR, linewidth=4)
        scene[f"{axis}axis"] = spec
    return scene
