"""Figures of an embedding: `results/plots/{split}/{trajectories.png,trajectories.html,spectrum.png,progress.png}`.

Inputs: an embedding file `results/embedding/{split}.h5` (coords, signed eigenvalues, explained stress,
progress, distance to truth) and `results/store/index.tsv`, whose rows are the embedding's rows in the
same order. The figures follow Mao et al. (PNAS 2024): trajectories of the runs in the top three InPCA
components coloured by a column of the index, the P0→P* geodesic in black with ignorance P0 and truth
P* in red, time-like axes (λ < 0) marked in red; the eigenvalue spectrum (black λ > 0, red λ < 0) with
the explained stress S(k); progress λ and distance to P* against epochs.

Studies with corners (runs that start far from ignorance: pre-trained on random labels, on a subset, or
perturbed) add to the index, as `kind` = reference rows, the geodesics P0→corner (`run` = "P0->{corner}")
and corner→P* (`run` = "{corner}->P*") with the columns `corner` (the corner id) and `init` (the init
name). The trajectory figures draw them dashed, thinner than the main geodesic (P0→corner black,
corner→P* dark grey), and mark each corner with a black diamond. An index without such rows (or without
the `corner`/`init` columns) gives the same figures as before.

Only the plotting jobs import this module. Matplotlib runs with the Agg backend (no display); the
interactive HTML embeds plotly.js, so it opens offline.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .config import resolve_column
from .errors import ConfigError, ResultsError
from .figures import GEODESIC_COLOR, arch_colors, pyplot, save_html, save_png
from .files import text_of

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
    from .files import open_h5, read_table

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


def _check_rows(emb: dict, index) -> None:
    m = emb["coords"].shape[0]
    if len(index) != m:
        raise ResultsError(f"the embedding has {m} points but the index has {len(index)} rows")


def _split(emb: dict) -> str:
    return text_of(emb.get("attrs", {}).get("split", "")) or "?"


def _fmt_lambda(lam: float) -> str:
    sign = "+" if lam >= 0 else MINUS
    return f"{sign}{abs(lam):.3g}"


def _axis_labels(eigenvalues) -> list[tuple[str, bool]]:
    """(label, time-like) for the three plotted axes; axes beyond k are padding."""
    out = []
    for i in range(3):
        if i < len(eigenvalues):
            lam = float(eigenvalues[i])
            timelike = lam < 0
            out.append((f"PC{i + 1} (λ={_fmt_lambda(lam)}{', time-like' if timelike else ''})", timelike))
        else:
            out.append((f"PC{i + 1} (none, set to 0)", False))
    return out


def _coords3(emb: dict) -> np.ndarray:
    coords = np.asarray(emb["coords"], dtype=float)
    if coords.ndim == 1:
        coords = coords[:, None]
    if coords.shape[1] >= 3:
        return coords[:, :3]
    return np.hstack([coords, np.zeros((coords.shape[0], 3 - coords.shape[1]))])


def _stress_at(emb: dict, k: int):
    stress = np.asarray(emb.get("explained_stress", []), dtype=float)
    if len(stress) == 0:
        return None
    return float(stress[min(k, len(stress)) - 1])


def _title(emb: dict, title, what: str, color_col: str | None = None) -> str:
    if title:
        return title
    k = np.asarray(emb["coords"]).shape[1] if np.asarray(emb["coords"]).ndim == 2 else 1
    parts = [f"{_split(emb)} split: {what}"]
    s3 = _stress_at(emb, 3)
    if s3 is not None:
        parts.append(f"S({min(k, 3)})={s3:.3f}")
    if color_col:
        parts.append(f"coloured by {color_col}")
    text = ", ".join(parts)
    if k < 3:
        text += f" (only {k} component{'s' if k != 1 else ''}; missing axes set to 0)"
    return text


def _resolve_column(index, color_by: str) -> str:
    """The index column named `color_by`, or the one config column ending in `.{color_by}` (lr -> optimizer.lr)."""
    return resolve_column(index.columns, color_by)


def _corner_direction(run: str) -> str | None:
    """CORNER_IN for "P0->{corner}", CORNER_OUT for "{corner}->P*", None for any other run label."""
    if run.startswith("P0->") and len(run) > 4:
        return CORNER_IN
    if run.endswith("->P*") and len(run) > 4:
        return CORNER_OUT
    return None


def _gapped(xyz, run_list, hover=None):
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


def _run_mask(index) -> np.ndarray:
    if "kind" in index.columns:
        return (index["kind"].astype(str) == "run").to_numpy()
    runs = index["run"].astype(str)
    corner_curve = np.array([_corner_direction(r) is not None for r in runs], dtype=bool)
    return ~runs.isin(list(MAIN_REFERENCE_RUNS)).to_numpy() & ~corner_curve


def _runs(index) -> list[tuple[str, np.ndarray]]:
    """(run id, row positions in checkpoint order) for every run, in order of first appearance."""
    import pandas as pd

    mask = _run_mask(index)
    runs = index["run"].astype(str).to_numpy()
    order_col = next((c for c in ("checkpoint", "step", "epoch") if c in index.columns), None)
    order_key = (pd.to_numeric(index[order_col], errors="coerce").to_numpy(dtype=float) if order_col
                 else np.arange(len(index), dtype=float))
    return _grouped(runs, np.flatnonzero(mask), order_key)


def _grouped(labels: np.ndarray, positions, key: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, its positions ordered by `key`, stably) for each label of `positions`, in order of first
    appearance."""
    members: dict[str, list[int]] = {}
    for pos in positions:
        members.setdefault(labels[pos], []).append(pos)
    return [(label, np.array(rows)[np.argsort(key[rows], kind="stable")]) for label, rows in members.items()]


def _references(index) -> tuple[np.ndarray, int | None, int | None]:
    """(rows of the main P0→P* geodesic ordered along it, row of P0, row of P*).

    Only reference rows whose run is P0, geodesic or P*: the corner curves are in `_corner_curves`.
    """
    import pandas as pd

    runs = index["run"].astype(str).to_numpy()
    mask = ~_run_mask(index) & np.isin(runs, MAIN_REFERENCE_RUNS)
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


def _label_value(index, column: str, row: int) -> str:
    """The index value as text, "" when the column is missing or the cell is empty."""
    import pandas as pd

    if column not in index.columns:
        return ""
    v = index[column].iloc[row]
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return str(v).strip()


def _corner_curves(index) -> list[CornerCurve]:
    """The geodesics P0→corner and corner→P* of the index, in order of first appearance, each with
    its rows ordered by t (index order where t is missing). Empty for an index without corners."""
    import pandas as pd

    runs = index["run"].astype(str).to_numpy()
    candidates = np.flatnonzero(~_run_mask(index) & ~np.isin(runs, MAIN_REFERENCE_RUNS))
    if candidates.size == 0:
        return []
    t = (pd.to_numeric(index["t"], errors="coerce").to_numpy(dtype=float) if "t" in index.columns
         else np.full(len(index), np.nan))
    # references of another kind are not corner curves; rows without t go last
    curves = [pos for pos in candidates if _corner_direction(runs[pos]) is not None]
    out = []
    for run, rows in _grouped(runs, curves, np.where(np.isnan(t), np.inf, t)):
        direction = _corner_direction(run)
        corner = next((c for c in (_label_value(index, "corner", r) for r in rows) if c), "")
        if not corner:  # no corner column: the id from the run label
            corner = run[len("P0->"):] if direction == CORNER_IN else run[:-len("->P*")]
        init = next((i for i in (_label_value(index, "init", r) for r in rows) if i), "")
        out.append(CornerCurve(run, corner, init, direction, rows))
    return out


def _corner_points(index, curves: list[CornerCurve]) -> list[tuple[int, str, str]]:
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
        run_rows = np.flatnonzero(_run_mask(index))
        for r in run_rows:
            c = _label_value(index, "corner", r)
            if c in points and not points[c][1]:
                points[c][1] = _label_value(index, "init", r)
    return [(row, corner, init) for corner, (row, init) in points.items()]


def _fmt_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


class _Colors:
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
            self.run_label = [_fmt_value(v) for v in numeric]
            self.categories = []
        else:
            if all_numeric:
                labels = [_fmt_value(float(v)) for v in numeric]
                order = sorted(set(labels), key=lambda s: (s == "n/a", float(s) if s != "n/a" else 0.0))
            else:
                labels = ["n/a" if pd.isna(v) else _fmt_value(v) for v in first]
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


def _legend_handles(pairs, marker=None):
    from matplotlib.lines import Line2D

    return [Line2D([], [], color=color, lw=2, marker=marker, label=label) for color, label in pairs]


def _place_legend(ax, handles, extra, title):
    items = handles + extra
    if not items:
        return
    ncol = max(1, math.ceil(len(items) / 24))
    ax.legend(handles=items, title=title, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small",
              title_fontsize="small", ncol=ncol, frameon=False)


def _label_axes_png(ax, eigenvalues) -> None:
    """Label a 3-D axes with its components' eigenvalues; a time-like axis (λ < 0) in red, its line and
    ticks too (every 3-D figure the same way)."""
    for axis, (label, timelike) in zip("xyz", _axis_labels(np.asarray(eigenvalues))):
        getattr(ax, f"set_{axis}label")(label, color=TIMELIKE_COLOR if timelike else "black", labelpad=10)
        if timelike:
            axis_obj = getattr(ax, f"{axis}axis")
            axis_obj.line.set_color(TIMELIKE_COLOR)
            axis_obj.line.set_linewidth(2.0)
            ax.tick_params(axis=axis, colors=TIMELIKE_COLOR)


def _scene(eigenvalues) -> dict:
    """The plotly scene's axes, labelled as `_label_axes_png` labels them."""
    scene = {}
    for axis, (label, timelike) in zip("xyz", _axis_labels(np.asarray(eigenvalues))):
        spec = dict(title=dict(text=label), showline=True)
        if timelike:
            spec.update(title=dict(text=label, font=dict(color=TIMELIKE_COLOR)), color=TIMELIKE_COLOR,
                        linecolor=TIMELIKE_COLOR, linewidth=4)
        scene[f"{axis}axis"] = spec
    return scene


# --------------------------------------------------------------------------------------------------
# trajectories


def plot_trajectories_png(emb: dict, index, out_path, color_by: str = "arch", title=None) -> None:
    """3-D plot of the top three components: runs coloured by `color_by`, geodesic, P0 and P*."""
    column = _resolve_column(index, color_by)
    _check_rows(emb, index)
    plt = pyplot()
    from matplotlib.lines import Line2D

    xyz = _coords3(emb)
    runs = _runs(index)
    colors = _Colors(index, runs, column)
    many = len(runs) > 50
    fig = plt.figure(figsize=(10, 7.5))
    ax = fig.add_subplot(projection="3d")
    for i, (rid, rows) in enumerate(runs):
        p = xyz[rows]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=colors.run_color[i], lw=0.8 if many else 1.3, alpha=0.85,
                marker=None if many else "o", ms=2.0)
        ax.scatter(*p[-1], color=colors.run_color[i], s=8 if many else 14, depthshade=False)  # final checkpoint
    refs, p0, pstar = _references(index)
    extra = []
    if len(refs) > 1:
        g = xyz[refs]
        ax.plot(g[:, 0], g[:, 1], g[:, 2], color=GEODESIC_COLOR, lw=2.2, zorder=5)
        extra.append(Line2D([], [], color=GEODESIC_COLOR, lw=2.2, label="geodesic P0→P*"))
    extra.extend(_draw_corners_png(ax, xyz, index))
    for row, name in ((p0, "P0 (ignorance)"), (pstar, "P* (truth)")):
        if row is None:
            continue
        ax.scatter(*xyz[row], color=REFERENCE_COLOR, s=70, marker="o", edgecolor="black", depthshade=False, zorder=6)
        ax.text(*xyz[row], "  " + name.split()[0], color=REFERENCE_COLOR, fontsize=11, fontweight="bold", zorder=7)
    if p0 is not None or pstar is not None:
        extra.append(Line2D([], [], color=REFERENCE_COLOR, marker="o", lw=0, markeredgecolor="black",
                            label="P0 ignorance, P* truth"))
    _label_axes_png(ax, emb["eigenvalues"])
    pairs = colors.mpl_legend(ax, fig)
    _place_legend(ax, _legend_handles(pairs or []), extra, column if pairs else None)
    ax.set_box_aspect(None, zoom=0.88)
    ax.set_title(_title(emb, title, "InPCA trajectories", column), fontsize=11)
    save_png(fig, out_path)


def _draw_corners_png(ax, xyz, index) -> list:
    """Draw the corner curves (dashed, thinner than the main geodesic) and the corner points (black
    diamonds, labelled with their init); legend handles, one per kind of item present."""
    from matplotlib.lines import Line2D

    curves = _corner_curves(index)
    if not curves:
        return []
    colors = {CORNER_IN: CORNER_IN_COLOR, CORNER_OUT: CORNER_OUT_COLOR}
    handles = {}
    for curve in curves:
        if len(curve.rows) < 2:
            continue
        g = xyz[curve.rows]
        ax.plot(g[:, 0], g[:, 1], g[:, 2], color=colors[curve.direction], lw=1.3, ls="--", zorder=4)
        handles[curve.direction] = Line2D([], [], color=colors[curve.direction], lw=1.3, ls="--",
                                          label=CORNER_LABELS[curve.direction])
    out = [handles[d] for d in (CORNER_IN, CORNER_OUT) if d in handles]
    points = _corner_points(index, curves)
    for row, _, init in points:
        ax.scatter(*xyz[row], color=CORNER_MARKER_COLOR, s=45, marker="D", edgecolor="white", linewidths=0.6,
                   depthshade=False, zorder=6)
        if init:
            ax.text(*xyz[row], "  " + init, color=CORNER_MARKER_COLOR, fontsize=8, zorder=7)
    if points:
        out.append(Line2D([], [], color=CORNER_MARKER_COLOR, marker="D", lw=0, markeredgecolor="white",
                          label="corner"))
    return out


def _hover(index, rows, progress) -> list[str]:
    import pandas as pd

    out = []
    for r in rows:
        parts = []
        for col in HOVER_COLUMNS:
            if col in index.columns:
                v = index[col].iloc[r]
                if pd.isna(v):
                    continue
                if col in ("train_error", "test_error") and isinstance(v, (float, np.floating)):
                    parts.append(f"{col}: {float(v):.4f}")
                elif col == "epoch" and isinstance(v, (float, np.floating)):
                    parts.append(f"{col}: {float(v):.3g}")
                else:
                    parts.append(f"{col}: {_fmt_value(v)}")
        corner = _label_value(index, "corner", r)
        if corner:  # a run that starts from a corner
            parts.append(f"corner: {corner}")
            init = _label_value(index, "init", r)
            if init:
                parts.append(f"init: {init}")
        if progress is not None and np.isfinite(progress[r]):
            parts.append(f"progress λ: {progress[r]:.4f}")
        out.append("<br>".join(parts))
    return out


def _draw_corners_html(fig, go, xyz, index) -> None:
    """The corner curves as one dashed trace per direction (one legend entry each, curves separated by
    None gaps) and the corners as one trace of black diamonds with the corner id and init on hover."""
    curves = _corner_curves(index)
    if not curves:
        return
    has_t = "t" in index.columns
    colors = {CORNER_IN: CORNER_IN_COLOR, CORNER_OUT: CORNER_OUT_COLOR}
    for direction in (CORNER_IN, CORNER_OUT):
        xs, ys, zs, text = [], [], [], []
        for curve in curves:
            if curve.direction != direction or len(curve.rows) < 2:
                continue
            if xs:
                for seq in (xs, ys, zs, text):
                    seq.append(None)
            g = xyz[curve.rows]
            xs.extend(g[:, 0].tolist())
            ys.extend(g[:, 1].tolist())
            zs.extend(g[:, 2].tolist())
            name = f"geodesic P0→{curve.corner}" if direction == CORNER_IN else f"geodesic {curve.corner}→P*"
            init = f" ({curve.init})" if curve.init else ""
            for r in curve.rows:
                t = index["t"].iloc[r] if has_t else float("nan")
                text.append(f"{name}{init}" + (f"<br>t={float(t):.3g}" if not _isnan(t) else ""))
        if not xs:
            continue
        fig.add_trace(go.Scatter3d(
            x=xs, y=ys, z=zs, mode="lines", name=CORNER_LABELS[direction], legendgroup=direction,
            line=dict(color=colors[direction], width=3, dash="dash"), text=text, hoverinfo="text",
            connectgaps=False))
    points = _corner_points(index, curves)
    if points:
        fig.add_trace(go.Scatter3d(
            x=[xyz[r, 0] for r, _, _ in points], y=[xyz[r, 1] for r, _, _ in points],
            z=[xyz[r, 2] for r, _, _ in points], mode="markers", name="corner", legendgroup="corner",
            marker=dict(size=6, symbol="diamond", color=CORNER_MARKER_COLOR, line=dict(color="white", width=1)),
            hovertext=[f"corner: {c}" + (f"<br>init: {i}" if i else "") for _, c, i in points], hoverinfo="text"))


def _isnan(v) -> bool:
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


# the id of the plotly div in trajectories.html (one figure per page, so it need not be unique)
TRAJECTORIES_DIV_ID = "inpca-trajectories"


def plot_trajectories_html(emb: dict, index, out_path, color_by: str = "arch", title=None) -> None:
    """The trajectories as a self-contained interactive plotly page (plotly.js embedded, opens offline)."""
    column = _resolve_column(index, color_by)
    _check_rows(emb, index)
    import plotly.graph_objects as go

    xyz = _coords3(emb)
    runs = _runs(index)
    colors = _Colors(index, runs, column)
    progress = np.asarray(emb["progress"], dtype=float) if "progress" in emb else None
    hover_all = _hover(index, range(len(index)), progress)
    fig = go.Figure()

    if colors.continuous:
        # one trace per run keeps None gaps out of the colour array; one shared colorbar
        cvals = np.log10(colors.values) if colors.log else colors.values
        finite = cvals[np.isfinite(cvals)]
        cmin, cmax = float(finite.min()), float(finite.max())
        for i, (rid, rows) in enumerate(runs):
            p = xyz[rows]
            fig.add_trace(go.Scatter3d(
                x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines+markers", name=rid, legendgroup="runs",
                showlegend=False, line=dict(color=colors.run_color[i], width=3),
                marker=dict(size=2.5, color=colors.run_color[i]),
                text=[hover_all[r] for r in rows], hoverinfo="text"))
        fig.add_trace(go.Scatter3d(
            x=[None], y=[None], z=[None], mode="markers", name=column, showlegend=False, hoverinfo="skip",
            marker=dict(size=0.1, color=[cmin], cmin=cmin, cmax=cmax, colorscale="Viridis", showscale=True,
                        colorbar=dict(title=f"log10 {column}" if colors.log else column, len=0.6))))
    else:
        for category in colors.categories:
            members = [run for i, run in enumerate(runs) if colors.run_label[i] == category]
            xs, ys, zs, text = _gapped(xyz, members, hover_all)
            fig.add_trace(go.Scatter3d(
                x=xs, y=ys, z=zs, mode="lines+markers", name=category, legendgroup=category,
                line=dict(color=colors.category_color[category], width=3),
                marker=dict(size=2.5, color=colors.category_color[category]),
                text=text, hoverinfo="text", connectgaps=False))
    refs, p0, pstar = _references(index)
    if len(refs) > 1:
        g = xyz[refs]
        fig.add_trace(go.Scatter3d(
            x=g[:, 0], y=g[:, 1], z=g[:, 2], mode="lines", name="geodesic P0→P*", legendgroup="geodesic",
            line=dict(color=GEODESIC_COLOR, width=6),
            text=[f"geodesic t={index['t'].iloc[r]:.3g}" if "t" in index.columns else "geodesic" for r in refs],
            hoverinfo="text"))
    _draw_corners_html(fig, go, xyz, index)
    ends = [(r, n) for r, n in ((p0, "P0"), (pstar, "P*")) if r is not None]
    if ends:
        fig.add_trace(go.Scatter3d(
            x=[xyz[r, 0] for r, _ in ends], y=[xyz[r, 1] for r, _ in ends], z=[xyz[r, 2] for r, _ in ends],
            mode="markers+text", name="P0 ignorance, P* truth", text=[n for _, n in ends],
            textposition="top center", textfont=dict(color=REFERENCE_COLOR, size=14),
            marker=dict(size=7, color=REFERENCE_COLOR, line=dict(color="black", width=1)),
            hovertext=["P0: ignorance (uniform predictions)" if n == "P0" else "P*: truth (one-hot labels)"
                       for _, n in ends], hoverinfo="text"))
    fig.update_layout(title=dict(text=_title(emb, title, "InPCA trajectories", column)),
                      scene=_scene(emb["eigenvalues"]), legend=dict(title=dict(text=column), itemsizing="constant"),
                      margin=dict(l=0, r=0, t=50, b=0), template="plotly_white")
    save_html(fig, out_path, div_id=TRAJECTORIES_DIV_ID)


# --------------------------------------------------------------------------------------------------
# spectrum and progress


def plot_spectrum(emb: dict, out_path) -> None:
    """|λ| by rank on a log scale (black λ > 0 space-like, red λ < 0 time-like) and explained stress S(k)."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    lam = np.asarray(emb["eigenvalues"], dtype=float)
    stress = np.asarray(emb["explained_stress"], dtype=float)
    k = np.arange(1, len(lam) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    pos, neg = lam > 0, lam < 0
    nonzero = np.abs(lam[lam != 0])
    floor = nonzero.min() / 2 if nonzero.size else 0.0
    for mask, color in ((pos, "black"), (neg, TIMELIKE_COLOR)):
        if mask.any():
            ax1.vlines(k[mask], floor, np.abs(lam[mask]), color=color, lw=1, alpha=0.4)
            ax1.scatter(k[mask], np.abs(lam[mask]), color=color, s=28, zorder=3)
    if (lam != 0).any():
        ax1.set_yscale("log")
    ax1.legend(handles=[Line2D([], [], color="black", marker="o", lw=0, label="space-like (λ>0)"),
                        Line2D([], [], color=TIMELIKE_COLOR, marker="o", lw=0, label="time-like (λ<0)")],
               fontsize="small")
    ax1.set_xlabel("component")
    ax1.set_ylabel("|λ|")
    ax1.set_title("eigenvalues")
    if len(k) <= 20:
        ax1.set_xticks(k)
    ax2.plot(np.arange(1, len(stress) + 1), stress, color="black", marker="o", ms=4)
    for j in (1, 3, 10):
        if j <= len(stress):
            ax2.scatter([j], [stress[j - 1]], color="tab:blue", s=40, zorder=3)
            ax2.annotate(f"S({j})={stress[j - 1]:.3f}", (j, stress[j - 1]), textcoords="offset points",
                         xytext=(6, -14), fontsize="small", color="tab:blue")
    ax2.set_ylim(0, 1.05)
    ax2.set_xlabel("number of components k")
    ax2.set_ylabel("explained stress S(k)")
    ax2.set_title("explained stress")
    if len(stress) <= 20:
        ax2.set_xticks(np.arange(1, len(stress) + 1))
    ax2.grid(alpha=0.3)
    attrs = emb.get("attrs", {})
    extra = ", ".join(f"{key} {text_of(attrs[key])}" for key in ("metric", "solver", "n_points") if key in attrs)
    fig.suptitle(f"{_split(emb)} split: InPCA spectrum" + (f" ({extra})" if extra else ""))
    fig.tight_layout()
    save_png(fig, out_path)


def plot_progress(emb: dict, index, out_path, color_by: str = "arch") -> None:
    """Per run against epochs: progress λ along the P0→P* geodesic and distance to truth P*."""
    import pandas as pd

    column = _resolve_column(index, color_by)
    _check_rows(emb, index)
    plt = pyplot()

    runs = _runs(index)
    colors = _Colors(index, runs, column)
    progress = np.asarray(emb["progress"], dtype=float)
    dist = np.asarray(emb["dist_truth"], dtype=float)
    if "epoch" in index.columns:
        x, xlabel = pd.to_numeric(index["epoch"], errors="coerce").to_numpy(dtype=float), "epoch"
    else:
        x, xlabel = pd.to_numeric(index["checkpoint"], errors="coerce").to_numpy(dtype=float), "checkpoint"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    many = len(runs) > 50
    for i, (_, rows) in enumerate(runs):
        kw = dict(color=colors.run_color[i], lw=0.8 if many else 1.3, alpha=0.85)
        ax1.plot(x[rows], progress[rows], **kw)
        ax2.plot(x[rows], dist[rows], **kw)
    for level, label in ((0.0, "P0"), (1.0, "P*")):
        ax1.axhline(level, color=REFERENCE_COLOR, ls="--", lw=0.8)
        ax1.annotate(label, (1.0, level), xycoords=("axes fraction", "data"), xytext=(3, 0),
                     textcoords="offset points", color=REFERENCE_COLOR, va="center", fontsize="small")
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel("progress λ on the P0→P* geodesic")
    ax1.set_title("progress")
    run_rows = np.concatenate([rows for _, rows in runs]) if runs else np.array([], dtype=int)
    d = dist[run_rows]
    d = d[np.isfinite(d) & (d > 0)]
    if d.size and d.max() / d.min() >= 100:
        ax2.set_yscale("log")
    ax2.set_xlabel(xlabel)
    ax2.set_ylabel("Bhattacharyya distance to P*")
    ax2.set_title("distance to truth")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    pairs = colors.mpl_legend(ax2, fig)
    if pairs:
        _place_legend(ax2, _legend_handles(pairs), [], column)
    fig.suptitle(f"{_split(emb)} split: progress and distance to truth, coloured by {column}")
    fig.tight_layout()
    save_png(fig, out_path)


# --------------------------------------------------------------------------------------------------
# the map of whole trajectories

MAP_HOVER_COLUMNS = ("run", "configuration", "arch", "optimizer", "final_train_error", "final_test_error")


def _map_colour_column(table, color_by: str) -> str:
    """plots.color_by if the trajectory table has it (a run's config field), else arch: a point of the
    map is a whole trajectory, so a checkpoint's column (epoch, errors) does not colour it."""
    try:
        return _resolve_column(table, color_by)
    except ConfigError:
        return "arch"


def _map_points(table):
    """(runs, geodesic rows) of the map's table, one row per trajectory."""
    return _runs(table), np.flatnonzero(~_run_mask(table))


def plot_trajectory_map_png(trajectory_map: dict, table, out_path, color_by: str = "arch") -> None:
    """The map of whole trajectories in its top three components: one point per kept trajectory,
    coloured by `color_by` (a config field; else arch), the geodesic a black star.
    `trajectory_map`: coords, eigenvalues, explained_stress, split; `table`: the kept trajectories' rows."""
    from matplotlib.lines import Line2D

    column = _map_colour_column(table, color_by)
    xyz = _coords3(trajectory_map)
    runs, geodesic = _map_points(table)
    plt = pyplot()
    fig = plt.figure(figsize=(9, 7))
    ax = fig.add_subplot(projection="3d")
    colors = _Colors(table, runs, column) if runs else None
    if runs:  # one point per trajectory, all in one scatter (thousands of runs at the paper's scale)
        first = xyz[[rows[0] for _, rows in runs]]
        ax.scatter(first[:, 0], first[:, 1], first[:, 2], c=colors.run_color, s=40, edgecolor="black",
                   linewidths=0.3, depthshade=False)
    extra = []
    for row in geodesic:
        ax.scatter(*xyz[row], color=GEODESIC_COLOR, s=160, marker="*", depthshade=False, zorder=6)
        extra.append(Line2D([], [], color=GEODESIC_COLOR, marker="*", lw=0, ms=12, label="geodesic P0→P*"))
    _label_axes_png(ax, trajectory_map["eigenvalues"])
    pairs = colors.mpl_legend(ax, fig) if colors else None
    _place_legend(ax, _legend_handles(pairs or [], marker="o"), extra, column if pairs else None)
    ax.set_box_aspect(None, zoom=0.88)
    ax.set_title(_title(trajectory_map, None, "InPCA of whole trajectories (mean distance at equal progress)",
                        column), fontsize=10)
    save_png(fig, out_path)


def plot_trajectory_map_html(trajectory_map: dict, table, out_path, color_by: str = "arch") -> None:
    """The map of whole trajectories as a self-contained interactive plotly page; hover shows the run,
    its configuration and final errors."""
    import plotly.graph_objects as go

    column = _map_colour_column(table, color_by)
    xyz = _coords3(trajectory_map)
    runs, geodesic = _map_points(table)

    def hover(row):
        return "<br>".join(f"{c}: {_fmt_value(table[c].iloc[row])}" for c in MAP_HOVER_COLUMNS if c in table.columns)

    fig = go.Figure()
    if runs:
        colors = _Colors(table, runs, column)
        groups = [(category, [i for i, label in enumerate(colors.run_label) if label == category])
                  for category in colors.categories] if not colors.continuous else [(column, list(range(len(runs))))]
        for name, members in groups:
            rows = [runs[i][1][0] for i in members]
            fig.add_trace(go.Scatter3d(
                x=xyz[rows, 0], y=xyz[rows, 1], z=xyz[rows, 2], mode="markers", name=name,
                marker=dict(size=5, color=[colors.run_color[i] for i in members], line=dict(color="black", width=0.5)),
                text=[hover(r) for r in rows], hoverinfo="text"))
    for row in geodesic:
        fig.add_trace(go.Scatter3d(
            x=[xyz[row, 0]], y=[xyz[row, 1]], z=[xyz[row, 2]], mode="markers", name="geodesic P0→P*",
            marker=dict(size=9, color=GEODESIC_COLOR, symbol="diamond"), text=["geodesic P0→P*"], hoverinfo="text"))
    fig.update_layout(title=dict(text=_title(trajectory_map, None, "InPCA of whole trajectories", column)),
                      scene=_scene(trajectory_map["eigenvalues"]),
                      legend=dict(title=dict(text=column), itemsizing="constant"),
                      margin=dict(l=0, r=0, t=50, b=0), template="plotly_white")
    save_html(fig, out_path, div_id="inpca-trajectory-map")


# --------------------------------------------------------------------------------------------------
# runs placed in an atlas

#: Colours of runs placed in an atlas, in the order the runs are given: dark or vivid, each at least
#: 25 (CIELAB ΔE) from every colour a reference family can have (the architectures' palette of
#: :func:`inpca.figures.arch_colors`, tab10 + Dark2, the grey of a missing value, the geodesic's black),
#: so a placed run is never read as a family of the atlas (the navy comes after the others: the first
#: architectures are tab10's blue and orange). Past the sixth run the colours come round again with the
#: next marker.
PLACED_COLORS = ("#ff00ff", "#004400", "#661144", "#0000bb", "#554400", "#770000")
PLACED_MARKERS = (("o", "circle"), ("s", "square"), ("D", "diamond"), ("P", "cross"))
PLACED_LABEL_SIZE = 9  # points; labels of placed runs are stacked at least 1.4 of this apart


class PlacedStyle(NamedTuple):
    color: str
    marker: str  # matplotlib's marker
    symbol: str  # plotly's marker symbol of the same shape


def placed_styles(names) -> dict[str, PlacedStyle]:
    """The colour and marker of each placed run (in the order given), the same in the atlas' PNG and
    HTML: colours from :data:`PLACED_COLORS`, none of a reference family's."""
    styles = {}
    for j, name in enumerate(names):
        marker, symbol = PLACED_MARKERS[(j // len(PLACED_COLORS)) % len(PLACED_MARKERS)]
        styles[name] = PlacedStyle(PLACED_COLORS[j % len(PLACED_COLORS)], marker, symbol)
    return styles


def _placed_xyz(rows, split: str) -> np.ndarray:
    return np.column_stack([rows.get(f"{split}_pc{i}", np.zeros(len(rows))) for i in (1, 2, 3)]).astype(float)


def _stacked(ys, gap: float) -> np.ndarray:
    """Heights as close to `ys` as a gap of at least `gap` between neighbours allows (the order kept,
    the stack centred on the points)."""
    ys = np.asarray(ys, dtype=float)
    if not len(ys):
        return ys
    order = np.argsort(ys, kind="stable")
    out = ys[order].copy()
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    out -= np.mean(out - ys[order])
    result = np.empty_like(out)
    result[order] = out
    return result


def _label_placed_png(ax, fig, ends: dict, styles: dict) -> None:
    """Name each placed run beside its last checkpoint (to its left in the right part of the axes, away
    from the axis labels), the labels on each side stacked so none overlaps another (a thin line in the
    run's colour leads from a moved label to its point)."""
    from mpl_toolkits.mplot3d import proj3d

    if not ends:
        return
    fig.canvas.draw()  # the view and limits as they will be drawn
    points = {name: proj3d.proj_transform(*p, ax.get_proj())[:2] for name, p in ends.items()}
    pixels = {name: ax.transData.transform(xy) for name, xy in points.items()}
    box = ax.get_window_extent()
    to_points = 72.0 / fig.dpi
    for left in (False, True):
        names = [n for n in ends if (pixels[n][0] > box.x0 + 0.55 * box.width) == left]
        ys = np.array([pixels[n][1] * to_points for n in names])
        for name, y, target in zip(names, ys, _stacked(ys, 1.4 * PLACED_LABEL_SIZE)):
            color = styles[name].color
            moved = abs(target - y) > 0.5 * PLACED_LABEL_SIZE
            ax.annotate(name, xy=points[name], xycoords="data", xytext=(-14 if left else 14, target - y),
                        textcoords="offset points", color=color, fontsize=PLACED_LABEL_SIZE, fontweight="bold",
                        va="center", ha="right" if left else "left", zorder=9,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.75),
                        arrowprops=dict(arrowstyle="-", color=color, lw=0.8, shrinkA=0, shrinkB=3) if moved else None)


def plot_atlas_png(emb: dict, index, placed: dict, out_path, split: str = "train") -> None:
    """The atlas' trajectories (thin, coloured by architecture) with placed runs drawn over them (bold,
    one colour each, none of a reference family's; their last checkpoint marked and labelled, the labels
    stacked so none overlaps another). `placed`: {name: the run's atlas table}."""
    from matplotlib.lines import Line2D

    _check_rows(emb, index)
    xyz = _coords3(emb)
    runs = _runs(index)
    colors = _Colors(index, runs, "arch")
    plt = pyplot()
    fig = plt.figure(figsize=(10, 7.5))
    ax = fig.add_subplot(projection="3d")
    for i, (_, rows) in enumerate(runs):
        p = xyz[rows]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=colors.run_color[i], lw=0.7, alpha=0.45)
    refs, _, _ = _references(index)
    if len(refs) > 1:
        g = xyz[refs]
        ax.plot(g[:, 0], g[:, 1], g[:, 2], color=GEODESIC_COLOR, lw=2.0)
    styles = placed_styles(placed)
    handles = [Line2D([], [], color=c, lw=1.5, alpha=0.6, label=f"atlas: {label}")
               for c, label in (colors.mpl_legend(ax, fig) or [])]
    ends = {}
    for name, rows in placed.items():
        p = _placed_xyz(rows, split)
        style = styles[name]
        ax.plot(p[:, 0], p[:, 1], p[:, 2], color=style.color, lw=2.4, marker=style.marker, ms=3, zorder=8)
        ax.plot(*p[-1:].T, color=style.color, marker=style.marker, ms=7, mec="white", mew=0.8, ls="none", zorder=9)
        ends[name] = p[-1]
        handles.append(Line2D([], [], color=style.color, lw=2.4, marker=style.marker, ms=3, label=name))
    _label_axes_png(ax, emb["eigenvalues"])
    _place_legend(ax, handles, [Line2D([], [], color=GEODESIC_COLOR, lw=2, label="geodesic P0→P*")], None)
    ax.set_box_aspect(None, zoom=0.88)
    ax.set_title(f"{split} split: runs placed in the atlas ({len(placed)} over {len(runs)} reference runs)",
                 fontsize=11)
    _label_placed_png(ax, fig, ends, styles)
    save_png(fig, out_path)


def plot_atlas_html(emb: dict, index, placed: dict, out_path, split: str = "train") -> None:
    """The atlas with placed runs as an interactive page, each placed run in the colour and marker it has
    in the PNG (:func:`placed_styles`), its last checkpoint larger; hovering a placed checkpoint shows its
    step, epoch, progress, nearest configuration and the forecast of the run's end."""
    import plotly.graph_objects as go

    _check_rows(emb, index)
    xyz = _coords3(emb)
    runs = _runs(index)
    colors = _Colors(index, runs, "arch")
    fig = go.Figure()
    for category in colors.categories:
        xs, ys, zs, _ = _gapped(xyz, [run for i, run in enumerate(runs) if colors.run_label[i] == category])
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", name=f"atlas: {category}", opacity=0.45,
                                   line=dict(color=colors.category_color[category], width=2), hoverinfo="skip"))
    refs, _, _ = _references(index)
    if len(refs) > 1:
        g = xyz[refs]
        fig.add_trace(go.Scatter3d(x=g[:, 0], y=g[:, 1], z=g[:, 2], mode="lines", name="geodesic P0→P*",
                                   line=dict(color=GEODESIC_COLOR, width=5), hoverinfo="skip"))
    styles = placed_styles(placed)
    for name, rows in placed.items():
        p = _placed_xyz(rows, split)
        style = styles[name]
        hover = []
        for r in rows.to_dict("records"):
            forecast = (f"forecast final test error {r['forecast_final_test_error']:.3f} "
                        f"[{r['forecast_low']:.3f}, {r['forecast_high']:.3f}]"
                        if np.isfinite(r.get("forecast_final_test_error", np.nan)) else "no forecast yet")
            note = "" if r.get("forecast_trusted", True) in (True, "True") else " (untrusted)"
            hover.append(f"{name}<br>step {r['step']}, epoch {r['epoch']:.3g}<br>progress "
                         f"{r.get(f'{split}_progress', np.nan):.3f}<br>nearest: {r.get('nearest_configuration', '')}"
                         f"<br>{forecast}{note}")
        fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines+markers", name=name,
                                   line=dict(width=6, color=style.color),
                                   marker=dict(size=[3] * (len(p) - 1) + [6], color=style.color,
                                               symbol=style.symbol), text=hover,
                                   hoverinfo="text"))
    fig.update_layout(title=dict(text=f"{split} split: runs placed in the atlas"), scene=_scene(emb["eigenvalues"]),
                      margin=dict(l=0, r=0, t=50, b=0), template="plotly_white")
    save_html(fig, out_path, div_id="inpca-atlas")
