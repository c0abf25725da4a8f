"""summary.md: one paragraph per claim, written from the study's numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..configurations import DEFAULT_INIT
from ..errors import ResultsError
from ..study import GEODESIC
from .claims import BETWEEN_SEEDS, CORNER_COLUMNS, TO_DEFAULT


# The values of t at which summary.md reports the corners (the nearest t of the grid).
CORNER_TS = (0.25, 0.5, 0.75)


# --------------------------------------------------------------------------------------------------
# summary.md


def _num(x, digits: int = 3) -> str:
    """A number for prose: 3 significant digits, thousands separators for large ones, 'n/a' for NaN."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def _params(x) -> str:
    """A parameter count: 1.2M, 45.3k, 800."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(x):
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _frame(value) -> pd.DataFrame:
    return value if isinstance(value, pd.DataFrame) else pd.DataFrame()


def _claim_architectures(pairs: pd.DataFrame, factors: pd.DataFrame) -> list[str]:
    lines = ["## 1. Architectures versus other factors", ""]
    text = []
    if {"arch_a", "arch_b", "distance"} <= set(pairs.columns) and len(pairs):
        runs = pairs[(pairs["arch_a"] != GEODESIC) & (pairs["arch_b"] != GEODESIC)]
        same = runs["arch_a"] == runs["arch_b"]
        archs = sorted((set(pairs["arch_a"]) | set(pairs["arch_b"])) - {GEODESIC})
        between, within = runs.loc[~same, "distance"], runs.loc[same, "distance"]
        if len(archs) < 2:
            text.append(f"Only one architecture ({', '.join(archs) or 'none'}) among the kept configurations, "
                        "so architectures cannot be compared with each other.")
        else:
            text.append(f"Median distance between configurations of different architectures: "
                        f"{_num(between.median())} ({len(between)} pairs of configurations, {len(archs)} "
                        f"architectures).")
            if len(within):
                ratio = between.median() / within.median() if within.median() > 0 else np.nan
                text.append(f"Within the same architecture: {_num(within.median())} ({len(within)} pairs)"
                            + (f"; the ratio is {_num(ratio)}." if np.isfinite(ratio) else "."))
            else:
                text.append("No architecture has two configurations, so there is no within-architecture distance.")
    else:
        text.append("Fewer than two configurations: no distances between configurations.")
    lines.append(" ".join(text))
    lines.append("")
    if len(factors) == 0:
        lines.append("No factor of variation varies among the kept runs: no factor ranking.")
    else:
        lines.append("Factors ranked by permutation importance (drop in R\u00b2 of a random forest that predicts the "
                     "distance of two runs from the factors in which they differ; median [q25, q75] of the "
                     "distances of pairs differing in that factor alone):")
        lines.append("")
        for i, r in enumerate(factors.itertuples(index=False), start=1):
            n = int(r.pairs_differing_only_here)
            dist = (f"median {_num(r.median)} [{_num(r.q25)}, {_num(r.q75)}] over {n} pairs" if n
                    else "no pair differs in it alone")
            lines.append(f"{i}. **{r.factor}**: importance {_num(r.importance)} \u00b1 {_num(r.importance_std)}; "
                         f"{dist}")
    lines.append("")
    return lines


def _claim_speed(per_conf: pd.DataFrame) -> list[str]:
    lines = ["## 2. Same way, different speeds", ""]
    cols = [c for c in per_conf.columns if str(c).startswith("epoch_to_")]
    if not len(per_conf) or not cols:
        lines += ["No kept configuration has progress measurements.", ""]
        return lines
    levels = sorted(cols, key=lambda c: float(c.split("_to_", 1)[1]))
    reached = [c for c in levels if per_conf[c].notna().all()]
    if not reached:
        lines += [f"No level of progress ({', '.join(c.split('_to_', 1)[1] for c in levels)}) is reached by every "
                  f"seed of every configuration, so speeds cannot be compared.", ""]
        return lines
    col = reached[-1]
    level = col.split("_to_", 1)[1]
    order = per_conf.sort_values([col, "configuration"], kind="mergesort")
    fast, slow = order.iloc[0], order.iloc[-1]
    text = [f"Highest level of progress reached by every configuration: {level}."]
    if len(order) == 1:
        text.append(f"The only configuration, `{fast['configuration']}` ({_params(fast['parameters'])} parameters), "
                    f"reaches it at epoch {_num(fast[col])}.")
    else:
        text.append(f"Fastest: `{fast['configuration']}` at epoch {_num(fast[col])} ({_params(fast['parameters'])} "
                    f"parameters); slowest: `{slow['configuration']}` at epoch {_num(slow[col])} "
                    f"({_params(slow['parameters'])} parameters).")
    never = [c for c in levels if c not in reached]
    if never:
        missing = per_conf.loc[per_conf[never[-1]].isna(), "configuration"]
        text.append(f"{len(missing)} of {len(per_conf)} configurations do not reach {never[-1].split('_to_', 1)[1]} "
                    "with every seed.")
    data = per_conf[["parameters", col]].astype(float).dropna()
    if len(data) < 3:
        text.append("Fewer than three configurations with parameter counts: no correlation of size and speed.")
    elif data["parameters"].nunique() < 2 or data[col].nunique() < 2:
        text.append("Parameter counts or epochs are all equal: no correlation of size and speed.")
    else:
        from scipy.stats import spearmanr

        rho, p = spearmanr(data["parameters"], data[col])
        text.append(f"Spearman correlation of parameter count and epochs to {level} across {len(data)} "
                    f"configurations: \u03c1 = {_num(rho, 2)} (p = {_num(p, 2)}); negative means larger networks "
                    "get there in fewer epochs.")
    lines += [" ".join(text), ""]
    return lines


def _claim_tubes(tube: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    lines = ["## 3. Near the geodesic, in narrow tubes", ""]
    if not len(tube) or "distance" not in tube.columns:
        lines += ["No configuration has two kept seeds, so tube widths are not measured.", ""]
        return lines
    t = tube["t"].astype(float)
    grid = np.unique(t.to_numpy())
    mid = grid[np.argmin(np.abs(grid - 0.5))]
    at = tube[np.isclose(t, mid)]
    n_conf = tube["configuration"].nunique()
    text = [f"Tube width = distance of a seed from its configuration's seed-mean trajectory, over "
            f"{_count(tube['run'].nunique(), 'run')} in {_count(n_conf, 'configuration')} with two or more seeds. "
            f"Median at t = {_num(mid)}: {_num(at['distance'].median())}; over all t: "
            f"{_num(tube['distance'].median())}."]
    if tube["arch"].nunique() > 1:
        per = at.groupby("arch")["distance"].median()
        text.append("At that t, per architecture: " + ", ".join(f"{a} {_num(v)}" for a, v in per.items()) + ".")
    if {"arch_a", "arch_b", "distance"} <= set(pairs.columns):
        runs = pairs[(pairs["arch_a"] != GEODESIC) & (pairs["arch_b"] != GEODESIC)]
        if len(runs):
            text.append(f"For scale, the median distance between two configurations is "
                        f"{_num(runs['distance'].median())}.")
        geo = pairs[(pairs["arch_a"] == GEODESIC) | (pairs["arch_b"] == GEODESIC)]
        if len(geo):
            text.append(f"The median distance of a configuration from the geodesic (mean over t) is "
                        f"{_num(geo['distance'].median())}.")
    lines += [" ".join(text), ""]
    return lines


def _stress_text(explained_stress) -> str:
    values = [float(v) for v in np.ravel(np.asarray(explained_stress, dtype=float))]
    return ", ".join(f"S({k}) = {_num(v)}" for k, v in enumerate(values[:3], start=1))


def _claim_stress(explained_stress, trajectory_map=None) -> list[str]:
    lines = ["## 4. A low-dimensional manifold", ""]
    if explained_stress is None or not np.size(explained_stress):
        lines += ["No explained stress of the embedding was given.", ""]
    else:
        lines += [f"Explained stress of the embedding of all points by its top components: "
                  f"{_stress_text(explained_stress)}.", ""]
    if trajectory_map is not None:
        lines += _map_paragraph(trajectory_map)
    return lines


def _map_paragraph(trajectory_map: dict) -> list[str]:
    """The map of whole trajectories (trajectory_map.png): how much its top axes explain, and whether
    architectures separate in the distances it embeds."""
    text = (f"The map of whole trajectories (InPCA of the distances at equal progress averaged over t, one point "
            f"per kept trajectory and the geodesic, `trajectory_map.png`) explains "
            f"{_stress_text(trajectory_map['explained_stress'])}.")
    same, chance, silhouette = (float(trajectory_map[k]) for k in ("nn_same_arch", "nn_chance", "silhouette"))
    if math.isnan(same):
        text += " With fewer than two runs, whether architectures separate is not measured."
    elif math.isnan(silhouette):
        text += (f" The nearest run of {100 * same:.0f} % of the runs has their architecture; with one "
                 "architecture, that says nothing about separation.")
    else:
        verdict = ("architectures separate" if same > chance and silhouette > 0
                   else "architectures do not separate clearly")
        text += (f" The nearest other run of {100 * same:.0f} % of the runs has their architecture (chance, from "
                 f"the architecture counts alone: {100 * chance:.0f} %), and the silhouette of the architectures "
                 f"is {_num(silhouette)} (1: apart, 0: overlapping): {verdict}.")
    return [text, ""]


def _pair_mean(rows: pd.DataFrame) -> float:
    """Mean distance over the run pairs behind some rows of the corner table (rows weighted by pairs)."""
    w = rows["pairs"].to_numpy(dtype=float)
    d = rows["distance"].to_numpy(dtype=float)
    return float((w * d).sum() / w.sum()) if len(rows) and w.sum() > 0 else float("nan")


def _claim_corners(corners: pd.DataFrame) -> list[str]:
    lines = ["## 5. Networks that start far from ignorance", ""]
    if not len(corners):
        lines += ["No kept corner-started run has a default-init partner (a kept run at the default "
                  "initialisation with the same configuration apart from the init and the seed), so corners are "
                  "not compared.", ""]
        return lines
    missing = [c for c in CORNER_COLUMNS if c not in corners.columns]
    if missing:
        raise ResultsError(f"corners: missing column(s) {', '.join(missing)} (expected the table of corner_distances)")
    table = corners.assign(t=pd.to_numeric(corners["t"], errors="coerce"), init=corners["init"].astype(str),
                           comparison=corners["comparison"].astype(str),
                           configuration=corners["configuration"].astype(str))
    grid = np.unique(table["t"].dropna().to_numpy(dtype=float))
    if not grid.size:
        raise ResultsError("corners.t: no values of t")
    picked = []
    for target in CORNER_TS:  # a tie (0.25 on a grid of tenths) goes to the smaller t
        t = float(grid[np.argmin(np.round(np.abs(grid - target), 9))])
        if t not in picked:
            picked.append(t)
    seeds = table[table["comparison"] == BETWEEN_SEEDS]
    to_default = table[table["comparison"] == TO_DEFAULT]
    lines += [f"Runs started from a pre-trained or perturbed \"corner\" against the same training from the default "
              f"start (the kept default-init runs whose configuration is the same apart from the init and the seed), "
              f"at equal progress t; for scale, the distance between two seeds of that default-init configuration "
              f"(and between two seeds of the corner); ratio = distance to default-init runs / distance between "
              f"default seeds (1: as close as two seeds of the default training). Means over run pairs, at the t of "
              f"the grid nearest to {', '.join(f'{x:g}' for x in CORNER_TS)}.", "",
              "| init | t | to default-init runs | between default seeds | ratio | between corner seeds |",
              "|---|---|---|---|---|---|"]
    sentences = []
    for init in dict.fromkeys(to_default["init"]):
        mine = to_default[to_default["init"] == init]
        confs = set(mine["configuration"])
        base = seeds[(seeds["init"] == DEFAULT_INIT) & seeds["configuration"].isin(confs)]
        own = seeds[seeds["init"] == init]
        values = []
        begins = (pd.to_numeric(mine["start"], errors="coerce").groupby(mine["configuration"]).first().dropna()
                  if "start" in mine.columns else pd.Series(dtype=float))
        # marked below the latest start: there the runs of at least one configuration are still at the corner
        begin = float(begins.max()) if len(begins) else float("nan")
        for t in picked:
            d = _pair_mean(mine[np.isclose(mine["t"], t)])
            b = _pair_mean(base[np.isclose(base["t"], t)])
            c = _pair_mean(own[np.isclose(own["t"], t)])
            ratio = d / b if np.isfinite(b) and b > 0 else float("nan")
            values.append(d)
            mark = " \u2020" if np.isfinite(begin) and t < begin else ""
            lines.append(f"| {init} | {_num(t)}{mark} | {_num(d)} | {_num(b)} | {_num(ratio)} | {_num(c)} |")
        n_pairs = int(mine.groupby("configuration")["pairs"].first().sum())
        where = ("" if not len(begins) else f", its runs start at t = {_num(begins.min(), 2)}" if
                 _num(begins.min(), 2) == _num(begin, 2) else
                 f", its runs start at t = {_num(begins.min(), 2)} to {_num(begin, 2)} by configuration")
        head = (f"- **{init}** ({_count(len(confs), 'configuration')}, {_count(n_pairs, 'run pair')} to default-init "
                f"runs{where})")
        early, late = values[0], values[-1]
        span = f"from {_num(early)} at t = {_num(picked[0])} to {_num(late)} at t = {_num(picked[-1])}"
        if len(picked) < 2:
            sentences.append(f"{head}: one value of t only, so no trend.")
        elif not (np.isfinite(early) and np.isfinite(late)):
            sentences.append(f"{head}: distances missing, so no trend.")
        elif late < early:
            sentences.append(f"{head}: the distance shrinks {span}.")
        elif late > early:
            sentences.append(f"{head}: the distance does not shrink; it grows {span}.")
        else:
            sentences.append(f"{head}: the distance stays at {_num(early)} from t = {_num(picked[0])} to "
                             f"t = {_num(picked[-1])}.")
    if not (seeds["init"] == DEFAULT_INIT).any():
        sentences.append("- No default-init configuration compared here has two kept seeds, so there is no seed scale.")
    if any("\u2020 |" in line for line in lines):
        sentences.append("- \u2020: t below where the corner's runs start (in at least one configuration); there they "
                         "are still at the corner itself, so the distance is the corner's own from the default-init "
                         "runs at that t.")
    lines += ["", *sentences, ""]
    return lines


def summary_markdown(split: str, *, excluded, configuration_pairs, factors, tube, speed_per_configuration,
                     explained_stress, n_runs: int, corners=None, trajectory_map=None) -> str:
    """The text of `summary.md` for one split: a heading and one short paragraph per claim, with the
    study's numbers (it reports what the data show; it does not assert the paper's conclusions).

    Arguments are the results of this module: ``excluded`` (:func:`select_runs`), ``configuration_pairs``
    (the pairs of :func:`configuration_distances`), ``factors`` (:func:`factor_effects`), ``tube``
    (:func:`tube_widths`), ``speed_per_configuration`` (:func:`speed`), ``explained_stress`` (S(1), S(2),
    ... of the embedding, or None) and ``n_runs`` (runs in the study). Any of the tables may be empty or
    None: the paragraph then says what could not be measured (one architecture, no configuration with
    two seeds, no factor that varies).

    ``trajectory_map`` (the dict of :func:`trajectory_map`, or the same keys) adds to section 4 a paragraph
    on the map of whole trajectories: its explained stress and whether architectures separate.

    ``corners`` (:func:`corner_distances`; give it only in a study with corners) adds a section "5.
    Networks that start far from ignorance" before the excluded runs: for each init, the mean distance
    (over run pairs) to its default-init partners at the t of the grid nearest 0.25, 0.5 and 0.75, next to
    the distance between two seeds of those default configurations and the ratio, and whether the distance
    shrinks from early to late t. None: no such section; an empty table: one sentence saying so.
    """
    try:
        n_runs = int(n_runs)
    except (TypeError, ValueError):
        raise ResultsError(f"n_runs: expected an integer, got {n_runs!r}") from None
    excluded = _frame(excluded)
    n_excluded = len(excluded)
    lines = [f"# Analysis of the {split} split", "",
             f"{_count(n_runs, 'run')} in the study, {n_runs - n_excluded} kept, {n_excluded} excluded "
             "(listed at the end). "
             "Distances are Bhattacharyya distances between trajectories at equal progress t, averaged over t.", ""]
    lines += _claim_architectures(_frame(configuration_pairs), _frame(factors))
    lines += _claim_speed(_frame(speed_per_configuration))
    lines += _claim_tubes(_frame(tube), _frame(configuration_pairs))
    lines += _claim_stress(explained_stress, trajectory_map)
    if corners is not None:
        if not isinstance(corners, pd.DataFrame):
            raise ResultsError(f"corners: expected a pandas DataFrame or None, got {type(corners).__name__}")
        lines += _claim_corners(corners)
    lines += ["## Excluded runs", ""]
    if n_excluded:
        lines += [f"- `{r.run}`: {r.reason}" for r in excluded[["run", "reason"]].itertuples(index=False)]
    else:
        lines.append("none")
    return "\n".join(lines) + "\n"


# The page around summary.html: readable in a browser and in the report's iframe, no outside resources.
_SUMMARY_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; line-height: 1.5; max-width: 50rem; margin: 1.5rem auto; padding: 0 1rem;
       color: #222; background: #fff; }}
code {{ font-size: 0.9em; background: #f3f3f3; padding: 0 0.2em; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
</style>
</head>
<body>
{body}</body>
</html>
"""


def summary_html(markdown_text: str, title: str) -> str:
    """`summary.md` (the text of :func:`summary_markdown`) as a standalone HTML page, the report's entry
    (a browser shows HTML in the report; it only offers a Markdown file for download).

    Raw HTML in the text is escaped, not passed through: run ids and configuration labels in the text
    come from the user's config. Links keep markdown-it's check (no ``javascript:`` URLs).
    """
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return _SUMMARY_PAGE.format(title=html.escape(title), body=body)
