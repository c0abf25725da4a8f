"""The eigenvalue spectrum with the explained stress, and progress against epochs."""

from __future__ import annotations

import numpy as np

from ..figures import pyplot, save_png
from ..files import text_of
from ._common import (
    REFERENCE_COLOR,
    TIMELIKE_COLOR,
    RunColours,
    check_rows,
    legend_handles,
    place_legend,
    colour_column,
    runs_of,
    split_of,
)

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
    fig.suptitle(f"{split_of(emb)} split: InPCA spectrum" + (f" ({extra})" if extra else ""))
    fig.tight_layout()
    save_png(fig, out_path)


def plot_progress(emb: dict, index, out_path, color_by: str = "arch") -> None:
    """Per run against epochs: progress λ along the P0→P* geodesic and distance to truth P*."""
    import pandas as pd

    column = colour_column(index, color_by)
    check_rows(emb, index)
    plt = pyplot()

    runs = runs_of(index)
    colors = RunColours(index, runs, column)
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
        place_legend(ax2, legend_handles(pairs), [], column)
    fig.suptitle(f"{split_of(emb)} split: progress and distance to truth, coloured by {column}")
    fig.tight_layout()
    save_png(fig, out_path)
