"""Figures of the analysis of one split: `results/analysis/{split}/*.png`.

Each function draws the numbers of one function of :mod:`inpca.analysis` into one PNG:

* :func:`plot_dendrogram`: complete-linkage dendrogram of the configurations (do architectures form
  the top-level clusters?), leaf labels coloured by architecture, the geodesic in black.
* :func:`plot_factors`: per factor of variation, the distances of run pairs that differ in it alone,
  and its permutation importance.
* :func:`plot_distance_to_geodesic`: distance from the geodesic against progress t, one line per
  configuration.
* :func:`plot_tube_widths`: tube widths (distance of a seed from its configuration's seed-mean) at
  about six values of t, per architecture.
* :func:`plot_speed`: progress against epochs, one line per run, with the levels of :func:`speed`.
* :func:`plot_corner_distances`: distance of corner-started runs from the same training at the
  default init against t, one panel per default configuration, with the seed-to-seed distance.

Every figure colours architectures the same way (:func:`inpca.figures.arch_colors`). A panel without data shows a
sentence saying why (e.g. "no configuration has two seeds") instead of failing. Matplotlib runs with
the Agg backend and is imported inside the functions; PNGs are saved by :func:`inpca.figures.save_png`.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from ..configurations import DEFAULT_INIT, SEP
from ..errors import ResultsError
from ..figures import EXCLUDED_COLOR, arch_colors, pyplot, save_png
from ..study import GEODESIC
from .claims import BETWEEN_SEEDS, TO_DEFAULT

TUBE_TARGETS = (0.1, 0.25, 0.4, 0.55, 0.7, 0.9)
SEED_COLOR = "#7f7f7f"
# Above this many default configurations, the corner figure has one panel per architecture instead.
MAX_CORNER_PANELS = 9


def _arch_legend(ax, colors: dict, archs, **kwargs):
    from matplotlib.lines import Line2D

    names = [a for a in sorted({str(a) for a in archs}, key=lambda a: (a == GEODESIC, a))]
    handles = [Line2D([], [], color=colors[a], lw=2.5, label=a) for a in names]
    if handles:
        ax.legend(handles=handles, title="architecture", fontsize=8, title_fontsize=9, **kwargs)


def _empty(ax, sentence: str) -> None:
    ax.text(0.5, 0.5, sentence, ha="center", va="center", fontsize=11, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _blank_figure(title: str, sentence: str, out_png) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.set_title(title)
    _empty(ax, sentence)
    save_png(fig, out_png)


# --------------------------------------------------------------------------------------------------


def plot_dendrogram(labels: Sequence[str], D, archs, out_png) -> None:
    """Complete-linkage dendrogram (optimal leaf order) of the (G, G) configuration distance matrix D.

    ``labels`` (G) name the leaves; ``archs`` is the architecture of each label (a sequence aligned with
    ``labels`` or a mapping label -> architecture); leaf labels are coloured by architecture and the
    geodesic is black. Fewer than two configurations give a figure that says so.
    """
    from scipy.cluster.hierarchy import dendrogram, linkage
    from scipy.spatial.distance import squareform

    labels = [str(l) for l in labels]
    D = np.asarray(D, dtype=float)
    if D.shape != (len(labels), len(labels)):
        raise ResultsError(f"D: expected shape ({len(labels)}, {len(labels)}) (one row per label), got {D.shape}")
    if isinstance(archs, Mapping):
        archs = [archs.get(l, GEODESIC if l == GEODESIC else "?") for l in labels]
    archs = [str(a) for a in archs]
    if len(archs) != len(labels):
        raise ResultsError(f"archs: expected {len(labels)} architectures (one per label), got {len(archs)}")
    title = "Configurations clustered by distance between their trajectories"
    if len(labels) < 2:
        _blank_figure(title, "only one configuration: nothing to cluster", out_png)
        return
    plt = pyplot()
    colors = arch_colors(archs)
    condensed = squareform((D + D.T) / 2, checks=False)
    Z = linkage(condensed, method="complete", optimal_ordering=True)
    g = len(labels)
    height = min(40.0, max(3.0, 0.26 * g + 1.5))
    fig, ax = plt.subplots(figsize=(9, height))
    dendrogram(Z, labels=labels, orientation="left", ax=ax, color_threshold=0,
               above_threshold_color="#555555", leaf_font_size=max(5, min(10, 400 / g)))
    arch_of = dict(zip(labels, archs))
    for tick in ax.get_yticklabels():
        tick.set_color(colors.get(arch_of.get(tick.get_text(), GEODESIC), "black"))
        if arch_of.get(tick.get_text()) == GEODESIC:
            tick.set_fontweight("bold")
    ax.set_xlabel("distance between configurations (complete linkage; mean Bhattacharyya distance over t)")
    ax.set_title(title)
    _arch_legend(ax, colors, archs, loc="upper left", bbox_to_anchor=(0.0, -0.1 * 3.0 / height - 0.05),
                 ncol=min(6, len(set(archs))), frameon=False)
    save_png(fig, out_png)


def _horizontal() -> dict:
    """Keyword for horizontal box plots: `orientation` since Matplotlib 3.10, `vert` before."""
    import matplotlib

    major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _distributions(factors, pairs) -> dict[str, np.ndarray]:
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): np.asarray(v, dtype=float) for k, v in pairs.items()}
    missing = [c for c in ("differs_only", "distance") if c not in getattr(pairs, "columns", ())]
    if missing:
        raise ResultsError(f"pair_table_or_distributions: expected the table of analysis.run_pairs or a mapping "
                           f"factor -> distances; missing column(s) {', '.join(missing)}")
    only = pairs["differs_only"].astype(str).to_numpy()
    dist = pairs["distance"].to_numpy(dtype=float)
    return {f: dist[only == f] for f in factors}


def plot_factors(factors, pair_table_or_distributions=None, out_png=None) -> None:
    """Two panels per factor of variation (rows of :func:`inpca.analysis.factor_effects`, in its order).

    Left: box plot of the distances of run pairs that differ in that factor alone. The second argument
    is the pair table of :func:`inpca.analysis.run_pairs` (its ``differs_only`` and ``distance``
    columns) or a mapping factor -> distances; None draws each box from the median and quartiles in
    ``factors`` (whiskers at the quartiles). ``plot_factors(factors, out_png)`` is the same as
    ``plot_factors(factors, None, out_png)``. Right: permutation importance with its std as error bar.
    """
    if out_png is None:
        if not isinstance(pair_table_or_distributions, (str, os.PathLike)):
            raise ResultsError("out_png: the path of the figure is missing")
        pair_table_or_distributions, out_png = None, pair_table_or_distributions
    title = "Which factor separates trajectories"
    if factors is None or len(factors) == 0:
        _blank_figure(title, "no factor of variation varies among the kept runs", out_png)
        return
    plt = pyplot()
    names = [str(f) for f in factors["factor"]]
    dists = _distributions(names, pair_table_or_distributions)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(3.0, 0.55 * len(names) + 1.5)), sharey=True)
    ypos = np.arange(len(names))[::-1]
    stats = []
    for name, row in zip(names, factors.itertuples(index=False)):
        d = dists.get(name)
        if d is not None and len(d):
            q1, med, q3 = np.quantile(d, [0.25, 0.5, 0.75])
            stats.append({"label": name, "med": med, "q1": q1, "q3": q3, "whislo": d.min(), "whishi": d.max(),
                          "fliers": []})
        elif d is None and np.isfinite(row.median):
            stats.append({"label": name, "med": row.median, "q1": row.q25, "q3": row.q75, "whislo": row.q25,
                          "whishi": row.q75, "fliers": []})
        else:
            stats.append(None)
    present = [i for i, s in enumerate(stats) if s is not None]
    if present:
        ax1.bxp([stats[i] for i in present], positions=ypos[present], widths=0.6, patch_artist=True,
                boxprops={"facecolor": "#9ecae1"}, medianprops={"color": "black"}, **_horizontal())
    for i, s in enumerate(stats):
        if s is None:
            ax1.text(0.02, ypos[i], "no pair differs in this alone", va="center", fontsize=8, color="#555555",
                     transform=ax1.get_yaxis_transform())
        else:
            n = len(dists[names[i]]) if names[i] in dists else int(factors["pairs_differing_only_here"].iloc[i])
            ax1.text(1.0, ypos[i], f" n={n}", va="center", fontsize=8, transform=ax1.get_yaxis_transform())
    ax1.set_yticks(ypos)
    ax1.set_yticklabels(names)
    ax1.set_xlabel("distance of run pairs differing in this factor alone")
    ax1.set_title("pair distances")
    imp = factors["importance"].to_numpy(dtype=float)
    err = factors["importance_std"].to_numpy(dtype=float)
    ok = np.isfinite(imp)
    if ok.any():
        ax2.barh(ypos[ok], imp[ok], xerr=np.where(np.isfinite(err[ok]), err[ok], 0), color="#fdae6b",
                 edgecolor="black", capsize=3)
        ax2.axvline(0, color="black", lw=0.8)
    else:
        _empty(ax2, "too few run pairs for an importance")
    ax2.set_xlabel("permutation importance (drop in R\u00b2)")
    ax2.set_title("importance for predicting pair distance")
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, out_png)


def plot_distance_to_geodesic(table, out_png) -> None:
    """Distance from the geodesic against t: one line per configuration (mean over its seeds),
    coloured by architecture. ``table``: :func:`inpca.analysis.distance_to_geodesic`."""
    title = "Distance from the geodesic P0 \u2192 P*"
    if table is None or len(table) == 0:
        _blank_figure(title, "no run to compare with the geodesic", out_png)
        return
    plt = pyplot()
    colors = arch_colors(table["arch"].astype(str))
    mean = table.groupby(["configuration", "arch", "t"], sort=True)["distance"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(8, 5))
    n_conf = mean["configuration"].nunique()
    for (conf, arch), g in mean.groupby(["configuration", "arch"], sort=True):
        ax.plot(g["t"], g["distance"], color=colors[str(arch)], lw=1.0 if n_conf > 20 else 1.6, alpha=0.8)
    ax.set_xlabel("progress t (0 = ignorance P0, 1 = truth P*)")
    ax.set_ylabel("Bhattacharyya distance to the geodesic at t")
    ax.set_title(f"{title}: {n_conf} configurations (mean over seeds)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _arch_legend(ax, colors, mean["arch"], loc="best")
    save_png(fig, out_png)


def _tube_ts(grid: np.ndarray) -> list[float]:
    picked = []
    for target in TUBE_TARGETS:
        t = grid[np.argmin(np.abs(grid - target))]
        if t not in picked:
            picked.append(t)
    return picked


def plot_tube_widths(table, ts, out_png) -> None:
    """Box plots of tube widths (:func:`inpca.analysis.tube_widths`) at the values of the t grid ``ts``
    closest to 0.1, 0.25, 0.4, 0.55, 0.7 and 0.9, one box per architecture at each t."""
    title = "Tube widths: distance of each seed from its configuration's seed-mean"
    if table is None or len(table) == 0:
        _blank_figure(title, "no configuration has two seeds", out_png)
        return
    plt = pyplot()
    grid = np.unique(np.asarray(ts, dtype=float)) if ts is not None and len(ts) else np.unique(table["t"])
    chosen = _tube_ts(grid)
    t_table = table["t"].to_numpy(dtype=float)
    archs = sorted(table["arch"].astype(str).unique())
    colors = arch_colors(archs)
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(chosen) * max(1, len(archs)) ** 0.5), 4.5))
    width = 0.8 / len(archs)
    for a, arch in enumerate(archs):
        data, pos = [], []
        for j, t in enumerate(chosen):
            d = table.loc[np.isclose(t_table, t) & (table["arch"].astype(str) == arch).to_numpy(), "distance"]
            if len(d):
                data.append(d.to_numpy(dtype=float))
                pos.append(j - 0.4 + width * (a + 0.5))
        if data:
            ax.boxplot(data, positions=pos, widths=width * 0.85, patch_artist=True, manage_ticks=False,
                       boxprops={"facecolor": colors[arch], "alpha": 0.6}, medianprops={"color": "black"},
                       flierprops={"markersize": 3})
    ax.set_xticks(range(len(chosen)))
    ax.set_xticklabels([f"{t:.2f}" for t in chosen])
    ax.set_xlim(-0.6, len(chosen) - 0.4)
    ax.set_xlabel("progress t")
    ax.set_ylabel("distance from the seed-mean trajectory")
    ax.set_title(f"{title}\n({table['configuration'].nunique()} configurations with two or more seeds)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    _arch_legend(ax, colors, archs, loc="best")
    save_png(fig, out_png)


def plot_speed(points, per_run, split: str, out_png) -> None:
    """Progress on ``split`` against epochs, one line per run coloured by architecture (excluded runs
    grey and dashed), with the levels of :func:`inpca.analysis.speed` (columns ``epoch_to_<L>`` of
    ``per_run``) as dotted horizontal lines and each kept run's crossing marked."""
    title = f"Progress on the {split} split"
    column = f"progress_{split}"
    if points is None or len(points) == 0 or column not in points.columns or per_run is None or len(per_run) == 0:
        _blank_figure(title, "no progress measurements", out_png)
        return
    plt = pyplot()
    pts = points
    if "kind" in pts.columns:
        pts = pts[pts["kind"].astype(str) == "run"]
    pts = pts.assign(run=pts["run"].astype(str))
    by_run = dict(tuple(pts.groupby("run", sort=False)))
    colors = arch_colors(per_run["arch"].astype(str))
    levels = sorted(float(c.split("_to_", 1)[1]) for c in per_run.columns if str(c).startswith("epoch_to_"))
    fig, ax = plt.subplots(figsize=(8, 5))
    many = len(per_run) > 30
    drawn_excluded = False
    for r in per_run.itertuples(index=False):
        g = by_run.get(str(r.run))
        if g is None:
            continue
        g = g.sort_values(["step", "epoch"], kind="mergesort")
        included = bool(getattr(r, "included", True))
        if included:
            ax.plot(g["epoch"], g[column], color=colors[str(r.arch)], lw=0.8 if many else 1.3, alpha=0.75)
        else:
            ax.plot(g["epoch"], g[column], color=EXCLUDED_COLOR, lw=0.8, ls="--", alpha=0.8)
            drawn_excluded = True
    for level in levels:
        ax.axhline(level, color="black", ls=":", lw=1)
        ax.text(1.0, level, f" {level:g}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
        col = f"epoch_to_{level:g}"
        kept = per_run[per_run["included"]] if "included" in per_run.columns else per_run
        x = kept[col].to_numpy(dtype=float)
        ok = np.isfinite(x)
        ax.scatter(x[ok], np.full(ok.sum(), level), s=10, c=[colors[str(a)] for a in kept["arch"][ok]], zorder=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"progress t on {split} (0 = ignorance, 1 = truth)")
    ax.set_title(f"{title}: {len(per_run)} runs; dotted lines are the levels of the speed table")
    ax.grid(alpha=0.3)
    _arch_legend(ax, colors, per_run.loc[per_run["included"], "arch"] if "included" in per_run.columns
                 else per_run["arch"], loc="lower right")
    if drawn_excluded:
        from matplotlib.lines import Line2D

        legend = ax.get_legend()
        handles = list(legend.legend_handles) if legend is not None else []
        handles.append(Line2D([], [], color=EXCLUDED_COLOR, ls="--", label="excluded"))
        ax.legend(handles=handles, title="architecture", fontsize=8, title_fontsize=9, loc="lower right")
    save_png(fig, out_png)


def _weighted(table):
    """Rows of the corner table averaged over run pairs per (panel, init, comparison, t)."""
    w = table["pairs"].astype(float)
    grouped = table.assign(_wd=w * table["distance"].astype(float), _w=w).groupby(
        ["panel", "init", "comparison", "t"], sort=True)[["_wd", "_w"]].sum().reset_index()
    grouped["distance"] = grouped["_wd"] / grouped["_w"]
    return grouped


def _panel_title(configuration: str, arch: str) -> str:
    parts = [p for p in str(configuration).split(SEP) if p != "default init"]
    return SEP.join(parts) or str(arch)


def plot_corner_distances(table, out_png) -> None:
    """Distance against t of runs started from a corner to the same training from the default start.

    ``table``: :func:`inpca.analysis.corner_distances`. One panel per default configuration (per
    architecture, averaged over run pairs, when there are more than 9); in each, one solid line per init
    for "to default" (a colour per init, the same in every panel), a thin dotted line of that colour for
    the distance between two seeds of the corner, and the distance between two seeds of the default
    configuration as a dashed grey baseline. An empty table gives a figure that says why.
    """
    title = "Runs started from a corner against the same training from the default start"
    if table is None or len(table) == 0:
        _blank_figure(title, "no corner-started run has a default-init partner", out_png)
        return
    missing = [c for c in ("configuration", "arch", "init", "comparison", "t", "distance", "pairs")
               if c not in table.columns]
    if missing:
        raise ResultsError(f"table: missing column(s) {', '.join(missing)} (expected analysis.corner_distances)")
    plt = pyplot()
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    table = table.assign(init=table["init"].astype(str), comparison=table["comparison"].astype(str),
                         arch=table["arch"].astype(str), configuration=table["configuration"].astype(str),
                         t=table["t"].astype(float))
    confs = list(dict.fromkeys(zip(table["arch"], table["configuration"])))
    by_arch = len(confs) > MAX_CORNER_PANELS
    if by_arch:
        table = table.assign(panel=table["arch"])
        panels = sorted(set(table["arch"]))
        titles = {a: f"{a} (mean over {sum(1 for x, _ in confs if x == a)} configurations)" for a in panels}
    else:
        table = table.assign(panel=table["configuration"])
        panels = [c for _, c in confs]
        titles = {c: _panel_title(c, a) for a, c in confs}
    mean = _weighted(table)
    starts = ({} if "start" not in table.columns else
              table.assign(start=table["start"].astype(float))
              .groupby(["panel", "init"])["start"].mean().to_dict())
    inits = sorted(set(table["init"]) - {DEFAULT_INIT})
    palette = list(colormaps["tab10"].colors)
    # tab10 from its second colour: the trajectory plots coloured by init give the first to "default",
    # then the corners in sorted order, so a study's inits keep their colours across both figures
    colors = {init: palette[(i + 1) % len(palette)] for i, init in enumerate(inits)}
    n = len(panels)
    cols = n if n <= 3 else 2 if n == 4 else 3
    rows = -(-n // cols)
    height = 3.4 * rows + 0.9
    fig, axes = plt.subplots(rows, cols, figsize=(max(7.5, 4.6 * cols), height), sharex=True, sharey=True,
                             squeeze=False)
    top = float(mean["distance"].max()) if len(mean) else 1.0
    for ax, panel in zip(axes.ravel(), panels):
        g = mean[mean["panel"] == panel]
        base = g[(g["comparison"] == BETWEEN_SEEDS) & (g["init"] == DEFAULT_INIT)]
        if len(base):
            ax.plot(base["t"], base["distance"], color=SEED_COLOR, ls="--", lw=1.6, zorder=4)
        for init in inits:
            line = g[(g["comparison"] == TO_DEFAULT) & (g["init"] == init)]
            if len(line):
                ax.plot(line["t"], line["distance"], color=colors[init], lw=2.0)
            seeds = g[(g["comparison"] == BETWEEN_SEEDS) & (g["init"] == init)]
            if len(seeds):
                ax.plot(seeds["t"], seeds["distance"], color=colors[init], ls=":", lw=1.2, alpha=0.9)
            begin = starts.get((panel, init), np.nan)
            if np.isfinite(begin) and begin > 0:  # below it the corner's runs are still at the corner
                ax.axvline(begin, color=colors[init], ls="-.", lw=0.9, alpha=0.8)
        ax.set_title(titles[panel], fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, top * 1.05 if top > 0 else 1.0)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for c in range(cols):  # the lowest panel of each column carries the t axis
        ax = axes[max(r for r in range(rows) if r * cols + c < n), c]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("progress t (0 = ignorance, 1 = truth)")
    for ax in axes[:, 0]:
        ax.set_ylabel("Bhattacharyya distance at equal t")
    handles = [Line2D([], [], color=colors[i], lw=2.0, label=f"{i}: to default-init runs") for i in inits]
    if (table["comparison"] == BETWEEN_SEEDS).any():
        handles.append(Line2D([], [], color=SEED_COLOR, ls="--", lw=1.6, label="default init: between seeds"))
        if ((table["comparison"] == BETWEEN_SEEDS) & (table["init"] != DEFAULT_INIT)).any():
            handles.append(Line2D([], [], color="black", ls=":", lw=1.2, label="corner: between seeds (its colour)"))
    if any(np.isfinite(v) and v > 0 for v in starts.values()):
        handles.append(Line2D([], [], color="black", ls="-.", lw=0.9, label="where the corner's runs start"))
    fig.suptitle(title)
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, (0.15 + 0.22 * -(-len(handles) // 3)) / height, 1, 1))
    save_png(fig, out_png)
