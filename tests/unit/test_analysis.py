"""The analysis of a split (inpca.analysis, its figures inpca.analysis.plots) on synthetic studies built with numpy:
a planted factor effect (architecture >> optimizer > learning rate > seed), hand-built examples of the
arithmetic, and degenerate studies (one architecture, one seed, no factor that varies)."""

import math

import numpy as np
import pandas as pd
import pytest

from inpca import analysis
from inpca.analysis import plots as analysis_plots
from inpca.errors import ResultsError

ARCHS = ["fc", "allcnn", "wrn"]
OPTIMIZERS = ["sgd-nesterov", "adam"]
LRS = [0.05, 0.1]
SEEDS = [0, 1, 2]
T = 10
TS = np.arange(T) / T
PARAMS = {"fc": 5_000, "allcnn": 40_000, "wrn": 300_000}
ARCH_EFFECT, OPT_EFFECT, LR_EFFECT, NOISE = 1.0, 0.1, 0.04, 0.005


def run_row(run, arch, opt, lr, seed, **extra):
    row = {"run": run, "kind": "run", "arch": arch, "optimizer": opt, "parameters": PARAMS.get(arch, 1000),
           "final_train_error": 0.01, "final_test_error": 0.05, "diverged": False, "diverged_at_step": -1,
           "arch.name": arch, "arch.widths": "[64,64]" if arch == "fc" else np.nan,
           "arch.width": 0.25 if arch == "allcnn" else np.nan, "arch.depth": 10 if arch == "wrn" else np.nan,
           "optimizer.name": "sgd" if opt.startswith("sgd") else opt, "optimizer.lr": lr,
           "optimizer.momentum": 0.9 if opt.startswith("sgd") else np.nan,
           "optimizer.nesterov": True if opt == "sgd-nesterov" else np.nan,
           "optimizer.betas": "[0.9,0.999]" if opt == "adam" else np.nan,
           "batch_size": 64, "weight_decay": 0.0, "augment": False, "epochs": 12, "seed": seed,
           "lr_schedule": "cosine", "warmup_epochs": 0.0, "precision": "fp32", "dataset.name": "digits",
           "checkpoints.schedule": "paper"}
    row.update(extra)
    return row


def geodesic_row(columns):
    row = {c: np.nan for c in columns}
    row.update({"run": "geodesic", "kind": "geodesic", "arch": "geodesic", "optimizer": "geodesic",
                "diverged": False, "diverged_at_step": -1})
    return row


def synthetic_study(seed=0):
    """3 architectures x 2 optimizers x 2 learning rates x 3 seeds + the geodesic (last row), with
    dists[k, i, j] = w_k (|a_i - a_j| big + |o_i - o_j| small + |l_i - l_j| smaller + noise), mean w_k = 1."""
    rows, codes = [], []
    for a, arch in enumerate(ARCHS):
        for o, opt in enumerate(OPTIMIZERS):
            for l, lr in enumerate(LRS):
                for s in SEEDS:
                    rows.append(run_row(f"{arch}-{opt}-lr{lr}-s{s}", arch, opt, lr, s))
                    codes.append((a, o, l))
    trajectories = pd.DataFrame(rows)
    trajectories = pd.concat([trajectories, pd.DataFrame([geodesic_row(trajectories.columns)])], ignore_index=True)
    codes = np.array(codes, dtype=float)
    R = len(trajectories)
    rng = np.random.default_rng(seed)
    base = np.zeros((R, R))
    n = len(codes)
    base[:n, :n] = (np.abs(codes[:, None, 0] - codes[None, :, 0]) * ARCH_EFFECT
                    + np.abs(codes[:, None, 1] - codes[None, :, 1]) * OPT_EFFECT
                    + np.abs(codes[:, None, 2] - codes[None, :, 2]) * LR_EFFECT)
    base[:n, n] = base[n, :n] = 3.0 + 0.1 * codes[:, 0]  # the geodesic: far from all runs
    weights = 2 * (np.arange(T) + 0.5) / T
    dists = np.empty((T, R, R))
    for k in range(T):
        noise = np.abs(rng.normal(0, NOISE, (R, R)))
        d = weights[k] * (base + np.triu(noise, 1) + np.triu(noise, 1).T)
        np.fill_diagonal(d, 0.0)
        dists[k] = d
    return dists, trajectories


def synthetic_points(trajectories):
    """progress_train = 1 - exp(-epoch / tau) with tau smaller for larger networks (and adam)."""
    rows = []
    for r in trajectories[trajectories["kind"] == "run"].itertuples(index=False):
        tau = {"fc": 4.0, "allcnn": 2.5, "wrn": 1.5}[r.arch] * (0.8 if r.optimizer == "adam" else 1.0)
        for c, epoch in enumerate(np.linspace(0, 12, 25)):
            p = 1 - math.exp(-epoch / tau)
            rows.append({"run": r.run, "kind": "run", "checkpoint": c, "step": int(epoch * 20), "epoch": epoch,
                         "progress_train": p, "progress_test": 0.95 * p, "train_error": 0.9 * (1 - p),
                         "test_error": 0.9 * (1 - p) + 0.02, "arch.name": r.arch})
    rows.append({"run": "P0", "kind": "reference", "checkpoint": -1, "step": -1, "epoch": np.nan,
                 "progress_train": 0.0, "progress_test": 0.0})
    return pd.DataFrame(rows)


def bhattacharyya(P, Q):
    """(M, N, C), (M', N, C) -> (M, M'): -mean_n log sum_c sqrt(p q)."""
    P, Q = np.asarray(P, dtype=float), np.asarray(Q, dtype=float)
    bc = np.einsum("anc,bnc->abn", np.sqrt(P), np.sqrt(Q))
    return -np.log(np.clip(bc, 1e-300, 1.0)).mean(axis=2)


@pytest.fixture(scope="module")
def study():
    dists, trajectories = synthetic_study()
    keep, excluded = analysis.select_runs(trajectories, 0.1)
    return dists, trajectories, keep, excluded


# --------------------------------------------------------------------------------------------------
# select_runs


def test_select_runs_excludes_diverged_and_unfit_runs_with_reasons():
    rows = [run_row("ok", "fc", "adam", 0.1, 0), run_row("div", "fc", "adam", 0.1, 1),
            run_row("unfit", "fc", "adam", 0.1, 2), run_row("edge", "fc", "adam", 0.1, 3)]
    rows[1].update(diverged=True, diverged_at_step=120, final_train_error=0.9)
    rows[2].update(final_train_error=0.35)
    rows[3].update(final_train_error=0.1)  # exactly at the threshold: kept
    trajectories = pd.DataFrame(rows)
    trajectories = pd.concat([trajectories, pd.DataFrame([geodesic_row(trajectories.columns)])], ignore_index=True)
    keep, excluded = analysis.select_runs(trajectories, 0.1)
    assert keep.tolist() == [True, False, False, True, True]
    assert excluded.columns.tolist() == ["run", "reason"]
    assert excluded.to_dict("records") == [{"run": "div", "reason": "diverged at step 120"},
                                           {"run": "unfit", "reason": "final train error 0.35 > 0.1"}]
    keep, excluded = analysis.select_runs(trajectories, None)
    assert keep.tolist() == [True, False, True, True, True] and excluded["run"].tolist() == ["div"]
    # read back from TSV: booleans as text
    as_text = trajectories.assign(diverged=trajectories["diverged"].map(str))
    assert analysis.select_runs(as_text, 0.1)[0].tolist() == [True, False, False, True, True]
    with pytest.raises(ValueError, match="max_final_train_error"):
        analysis.select_runs(trajectories, "a lot")


# --------------------------------------------------------------------------------------------------
# configurations


def test_configuration_labels_share_seeds_and_name_varying_fields(study):
    _, trajectories, _, _ = study
    labels = analysis.configuration_labels(trajectories)
    assert labels.index.equals(trajectories.index)
    assert labels.iloc[-1] == "geodesic"
    runs = trajectories["kind"] == "run"
    assert labels[runs].nunique() == len(ARCHS) * len(OPTIMIZERS) * len(LRS)
    key = trajectories["run"].str.replace(r"-s\d+$", "", regex=True)
    assert (labels[runs].groupby(key[runs]).nunique() == 1).all()  # seeds share a label
    assert labels.iloc[0] == "fc \u00b7 sgd-nesterov lr 0.05"
    assert set(labels[trajectories["arch"] == "allcnn"]) == {"allcnn \u00b7 sgd-nesterov lr 0.05",
                                                            "allcnn \u00b7 sgd-nesterov lr 0.1",
                                                            "allcnn \u00b7 adam lr 0.05", "allcnn \u00b7 adam lr 0.1"}
    # only the seed varies: one configuration named by architecture and optimizer
    one = pd.DataFrame([run_row(f"r{s}", "fc", "adam", 0.1, s) for s in range(3)])
    assert analysis.configuration_labels(one).tolist() == ["fc \u00b7 adam"] * 3
    # a varying size of one architecture is shown; values read back as text compare equal
    two = pd.DataFrame([run_row("a", "fc", "adam", 0.1, 0),
                        run_row("b", "fc", "adam", 0.1, 1, **{"arch.widths": "[32, 32]"}),
                        run_row("c", "fc", "adam", "0.1", 2, **{"arch.widths": "[32,32]"})])
    assert analysis.configuration_labels(two).tolist() == ["fc [64,64]", "fc [32,32]", "fc [32,32]"]


def test_configuration_distance_arithmetic_on_a_tiny_example():
    rows = [run_row("a0", "fc", "adam", 0.1, 0), run_row("a1", "fc", "adam", 0.1, 1),
            run_row("b0", "allcnn", "adam", 0.1, 0)]
    trajectories = pd.DataFrame(rows)
    trajectories = pd.concat([trajectories, pd.DataFrame([geodesic_row(trajectories.columns)])], ignore_index=True)
    d0 = np.array([[0, 1, 2, 5], [1, 0, 4, 6], [2, 4, 0, 7], [5, 6, 7, 0]], dtype=float)
    d1 = np.array([[0, 3, 6, 1], [3, 0, 8, 2], [6, 8, 0, 3], [1, 2, 3, 0]], dtype=float)
    dists = np.stack([d0, d1])
    labels, D, pairs = analysis.configuration_distances(dists, trajectories, np.ones(4, bool))
    assert labels == ["allcnn", "fc", "geodesic"]
    A, F, G = 0, 1, 2
    assert D[F, F] == pytest.approx((1 + 3) / 2)  # one seed pair (a0, a1), mean over k
    assert D[A, A] == 0.0  # one seed
    assert D[G, G] == 0.0
    assert D[A, F] == D[F, A] == pytest.approx((2 + 4 + 6 + 8) / 4)
    assert D[F, G] == pytest.approx((5 + 6 + 1 + 2) / 4)
    assert D[A, G] == pytest.approx((7 + 3) / 2)
    assert pairs.columns.tolist() == ["a", "b", "distance", "arch_a", "arch_b", "same_arch"]
    assert len(pairs) == 3 and not pairs["same_arch"].any()
    row = pairs[(pairs["a"] == "allcnn") & (pairs["b"] == "fc")].iloc[0]
    assert row["distance"] == pytest.approx(5.0) and row["arch_a"] == "allcnn" and row["arch_b"] == "fc"
    # dropping a seed changes the means
    keep = np.array([True, False, True, True])
    labels, D, _ = analysis.configuration_distances(dists, trajectories, keep)
    assert D[1, 1] == 0.0 and D[0, 1] == pytest.approx((2 + 6) / 2)
    assert analysis.configuration_archs(trajectories, labels) == ["allcnn", "fc", "geodesic"]
    with pytest.raises(ValueError, match="dists"):
        analysis.configuration_distances(dists[:, :3, :3], trajectories, np.ones(4, bool))
    with pytest.raises(ValueError, match="keep"):
        analysis.configuration_distances(dists, trajectories, np.ones(3, bool))


def test_dendrogram_clusters_recover_the_planted_architectures(study):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    dists, trajectories, keep, _ = study
    labels, D, pairs = analysis.configuration_distances(dists, trajectories, keep)
    assert len(labels) == 13 and labels[-1] == "geodesic"
    assert np.allclose(D, D.T)
    archs = analysis.configuration_archs(trajectories, labels)
    runs = [i for i, l in enumerate(labels) if l != "geodesic"]
    sub = D[np.ix_(runs, runs)]
    clusters = fcluster(linkage(squareform(sub, checks=False), method="complete"), 3, criterion="maxclust")
    by_cluster = {}
    for i, c in zip(runs, clusters):
        by_cluster.setdefault(c, set()).add(archs[i])
    assert sorted(map(sorted, by_cluster.values())) == [["allcnn"], ["fc"], ["wrn"]]
    assert len(pairs) == 13 * 12 // 2
    same = pairs[pairs["same_arch"]]
    assert len(same) == 3 * (4 * 3 // 2)
    assert same["distance"].max() < pairs.loc[~pairs["same_arch"] & (pairs["b"] != "geodesic"), "distance"].min()


# --------------------------------------------------------------------------------------------------
# factors


def test_factor_effects_rank_the_planted_architecture_first(study):
    dists, trajectories, keep, _ = study
    pairs = analysis.run_pairs(dists, trajectories, keep)
    assert len(pairs) == 36 * 35 // 2
    factors = analysis.factor_effects(dists, trajectories, keep, random_state=0)
    assert factors.columns.tolist() == ["factor", "median", "q25", "q75", "pairs_differing_only_here",
                                        "importance", "importance_std"]
    assert set(factors["factor"]) == {"architecture", "optimizer", "learning rate", "seed"}
    assert factors["factor"].iloc[0] == "architecture"
    assert factors["importance"].is_monotonic_decreasing
    stats = factors.set_index("factor")
    # pairs differing in one factor alone: arch (3 pairs of archs x 12 (opt, lr, seed)), optimizer, lr, seed
    assert stats.loc["architecture", "pairs_differing_only_here"] == 3 * 12
    assert stats.loc["optimizer", "pairs_differing_only_here"] == 3 * 2 * 3
    assert stats.loc["seed", "pairs_differing_only_here"] == 12 * 3
    med = stats["median"]
    assert med["seed"] < med["learning rate"] < med["optimizer"] < med["architecture"]
    # |a_i - a_j| is 1 for 24 of the 36 pairs and 2 for 12
    assert med["architecture"] == pytest.approx(ARCH_EFFECT, rel=0.05)
    assert stats.loc["architecture", "q75"] == pytest.approx(2 * ARCH_EFFECT, rel=0.05)
    assert med["optimizer"] == pytest.approx(OPT_EFFECT, abs=3 * NOISE)
    assert (stats["q25"] <= stats["median"]).all() and (stats["median"] <= stats["q75"]).all()
    # the same pair table gives the same answer
    again = analysis.factor_effects(dists, trajectories, keep, random_state=0, pairs=pairs)
    pd.testing.assert_frame_equal(again, factors)


def test_factor_effects_on_degenerate_studies():
    rows = [run_row(f"r{s}", "fc", "adam", 0.1, 0) for s in range(2)]  # identical configs and seeds
    trajectories = pd.DataFrame(rows)
    dists = np.zeros((3, 2, 2))
    factors = analysis.factor_effects(dists, trajectories, np.ones(2, bool))
    assert factors.empty and factors.columns.tolist()[0] == "factor"
    # width differs only between runs of the same architecture; fc vs allcnn differ in architecture alone
    rows = [run_row("f", "fc", "adam", 0.1, 0), run_row("g", "fc", "adam", 0.1, 0, **{"arch.widths": "[8]"}),
            run_row("c", "allcnn", "adam", 0.1, 0)]
    pairs = analysis.run_pairs(np.ones((2, 3, 3)), pd.DataFrame(rows), None)
    assert pairs["differs_only"].tolist() == ["width/depth", "architecture", "architecture"]
    factors = analysis.factor_effects(np.ones((2, 3, 3)), pd.DataFrame(rows), None)
    assert set(factors["factor"]) == {"architecture", "width/depth"}
    assert factors.set_index("factor").loc["width/depth", "pairs_differing_only_here"] == 1


# --------------------------------------------------------------------------------------------------
# geodesic and tubes


def test_distance_to_geodesic_reads_the_geodesic_row(study):
    dists, trajectories, keep, _ = study
    table = analysis.distance_to_geodesic(dists, trajectories, ts=TS)
    assert table.columns.tolist() == ["run", "configuration", "arch", "t", "distance"]
    assert len(table) == 36 * T
    first = table[table["run"] == trajectories["run"].iloc[0]]
    assert np.allclose(first["t"], TS)
    assert np.allclose(first["distance"], dists[:, 36, 0])
    assert set(table["arch"]) == set(ARCHS)
    with pytest.raises(ValueError, match="geodesic"):
        analysis.distance_to_geodesic(dists[:, :36, :36], trajectories.iloc[:36])


def test_tube_widths_zero_for_identical_seeds_and_known_for_known_offsets():
    rows = [run_row("a0", "fc", "adam", 0.1, 0), run_row("a1", "fc", "adam", 0.1, 1),
            run_row("b0", "allcnn", "adam", 0.1, 0), run_row("b1", "allcnn", "adam", 0.1, 1),
            run_row("c0", "wrn", "adam", 0.1, 0)]  # one seed: no tube
    trajectories = pd.DataFrame(rows)
    trajectories = pd.concat([trajectories, pd.DataFrame([geodesic_row(trajectories.columns)])], ignore_index=True)
    ts = np.array([0.0, 0.5, 1.0])
    N = 4
    same = np.full((len(ts), N, 2), 0.5, dtype=np.float32)
    same[:, :, 0] = np.array([0.3, 0.6, 0.5])[:, None]
    same[:, :, 1] = 1 - same[:, :, 0]
    probs = {0: same, 1: same.copy()}
    lo = np.tile(np.array([0.9, 0.1], dtype=np.float32), (len(ts), N, 1))
    probs[2], probs[3] = lo, lo[..., ::-1].copy()  # mean is (0.5, 0.5) at every t
    calls = []

    def read_probs(rows):
        calls.append(list(rows))
        return np.stack([probs[r] for r in rows])

    table = analysis.tube_widths(trajectories, np.ones(6, bool), ts, read_probs, bhattacharyya)
    assert sorted(calls) == [[0, 1], [2, 3]]  # one read per configuration with two seeds
    assert table.columns.tolist() == ["configuration", "arch", "run", "t", "distance"]
    assert len(table) == 4 * len(ts)
    fc = table[table["arch"] == "fc"]
    assert np.allclose(fc["distance"], 0.0, atol=1e-12)
    expected = -math.log(math.sqrt(0.9 * 0.5) + math.sqrt(0.1 * 0.5))
    allcnn = table[table["arch"] == "allcnn"]
    assert np.allclose(allcnn["distance"], expected, rtol=1e-6)
    assert set(allcnn["run"]) == {"b0", "b1"} and np.allclose(np.sort(allcnn["t"].unique()), ts)
    # dropping a seed leaves that configuration without a tube
    keep = np.array([True, False, True, True, True, True])
    table = analysis.tube_widths(trajectories, keep, ts, read_probs, bhattacharyya)
    assert set(table["arch"]) == {"allcnn"}
    empty = analysis.tube_widths(trajectories, np.array([True, False, True, False, True, True]), ts, read_probs,
                                 bhattacharyya)
    assert empty.empty and empty.columns.tolist() == ["configuration", "arch", "run", "t", "distance"]
    with pytest.raises(ValueError, match="read_probs"):
        analysis.tube_widths(trajectories, np.ones(6, bool), ts[:2], read_probs, bhattacharyya)


# --------------------------------------------------------------------------------------------------
# speed


def test_speed_interpolates_and_marks_never_as_nan():
    rows = [run_row("fast", "fc", "adam", 0.1, 0, parameters=1000),
            run_row("slow", "fc", "adam", 0.1, 1, parameters=1000),
            run_row("big", "wrn", "adam", 0.1, 0, parameters=9000),
            run_row("bad", "wrn", "adam", 0.1, 1, parameters=9000)]
    trajectories = pd.DataFrame(rows)
    points = pd.DataFrame([
        # fast: 0.4 at epoch 1, 0.6 at epoch 2 -> 0.5 at 1.5 (steps 10, 20 -> 15); 0.9 never
        *[{"run": "fast", "kind": "run", "epoch": e, "step": 10 * e, "progress_train": p}
          for e, p in [(0, 0.0), (1, 0.4), (2, 0.6), (3, 0.85)]],
        # slow: listed out of order; reaches 0.5 exactly at epoch 4, 0.8 between 4 and 6 (at 5), 0.9 at 5.5 (6: 1.0)
        *[{"run": "slow", "kind": "run", "epoch": e, "step": 10 * e, "progress_train": p}
          for e, p in [(6, 1.0), (0, 0.0), (4, 0.5), (2, 0.2)]],
        # big: already above every level at its first checkpoint (epoch 0.5)
        *[{"run": "big", "kind": "run", "epoch": e, "step": 10 * e, "progress_train": p}
          for e, p in [(0.5, 0.95), (1, 0.99)]],
        {"run": "P0", "kind": "reference", "epoch": np.nan, "step": -1, "progress_train": 0.0},
    ])
    keep = np.array([True, True, True, False])
    per_run, per_conf = analysis.speed(points, trajectories, keep, "train", levels=(0.5, 0.8, 0.9))
    r = per_run.set_index("run")
    assert r.loc["fast", "epoch_to_0.5"] == pytest.approx(1.5)
    assert r.loc["fast", "step_to_0.5"] == pytest.approx(15.0)
    assert r.loc["fast", "epoch_to_0.8"] == pytest.approx(2 + 0.2 / 0.25)
    assert math.isnan(r.loc["fast", "epoch_to_0.9"]) and math.isnan(r.loc["fast", "step_to_0.9"])
    assert r.loc["slow", "epoch_to_0.5"] == pytest.approx(4.0)
    assert r.loc["slow", "epoch_to_0.8"] == pytest.approx(5.2)
    assert r.loc["slow", "epoch_to_0.9"] == pytest.approx(5.6)
    assert r.loc["big", "epoch_to_0.5"] == r.loc["big", "epoch_to_0.9"] == 0.5
    assert r.loc["big", "step_to_0.9"] == 5.0
    assert r["epoch_to_0.5"].isna()["bad"]  # no points at all
    assert r["included"].tolist() == [True, True, True, False]
    for c in ("configuration", "arch", "parameters", "final_train_error", "final_test_error"):
        assert c in per_run.columns
    # per configuration: mean over kept seeds, NaN when a seed never reached; fastest first
    assert per_conf["configuration"].tolist() == ["wrn", "fc"]
    assert per_conf["rank"].tolist() == [1, 2]
    c = per_conf.set_index("configuration")
    assert c.loc["fc", "n_seeds"] == 2 and c.loc["wrn", "n_seeds"] == 1
    assert c.loc["fc", "epoch_to_0.5"] == pytest.approx((1.5 + 4.0) / 2)
    assert math.isnan(c.loc["fc", "epoch_to_0.9"])
    assert c.loc["wrn", "parameters"] == 9000
    with pytest.raises(ValueError, match="progress_test"):
        analysis.speed(points, trajectories, keep, "test")


# --------------------------------------------------------------------------------------------------
# summary


def full_analysis(dists, trajectories, keep):
    labels, D, pairs = analysis.configuration_distances(dists, trajectories, keep)
    factors = analysis.factor_effects(dists, trajectories, keep)
    points = synthetic_points(trajectories)
    per_run, per_conf = analysis.speed(points, trajectories, keep, "train")
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1, (len(trajectories), T, 20, 3))  # (rows, T, N, C), seeds scattered

    def read_probs(rows):
        p = np.exp(logits[rows])
        return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)

    tube = analysis.tube_widths(trajectories, keep, TS, read_probs, bhattacharyya)
    return labels, D, pairs, factors, points, per_run, per_conf, tube


def test_summary_markdown_reports_ranking_and_exclusions(study):
    dists, trajectories, _, _ = study
    trajectories = trajectories.copy()
    trajectories.loc[0, ["diverged", "diverged_at_step"]] = [True, 77]
    trajectories.loc[1, "final_train_error"] = 0.4
    keep, excluded = analysis.select_runs(trajectories, 0.1)
    labels, D, pairs, factors, points, per_run, per_conf, tube = full_analysis(dists, trajectories, keep)
    text = analysis.summary_markdown("train", excluded=excluded, configuration_pairs=pairs, factors=factors,
                                     tube=tube, speed_per_configuration=per_conf,
                                     explained_stress=[0.61234, 0.8, 0.9, 0.95], n_runs=36)
    assert text.startswith("# Analysis of the train split")
    assert "36 runs in the study, 34 kept, 2 excluded" in text
    assert "1. **architecture**: importance" in text
    for f in ("optimizer", "learning rate", "seed"):
        assert f"**{f}**" in text
    assert text.index("**architecture**") < text.index("**seed**")
    assert f"- `{trajectories['run'][0]}`: diverged at step 77" in text
    assert f"- `{trajectories['run'][1]}`: final train error 0.4 > 0.1" in text
    assert "S(1) = 0.612, S(2) = 0.8, S(3) = 0.9" in text
    assert "Spearman" in text and "Fastest: `wrn" in text and "slowest: `fc" in text
    assert "different architectures" in text and "Median at t = 0.5" in text
    for heading in ("## 1.", "## 2.", "## 3.", "## 4.", "## Excluded runs"):
        assert heading in text


def test_summary_markdown_handles_a_degenerate_study():
    trajectories = pd.DataFrame([run_row("only", "fc", "adam", 0.1, 0)])
    trajectories = pd.concat([trajectories, pd.DataFrame([geodesic_row(trajectories.columns)])], ignore_index=True)
    dists = np.zeros((T, 2, 2))
    dists[:, 0, 1] = dists[:, 1, 0] = 0.5
    keep, excluded = analysis.select_runs(trajectories, 0.1)
    _, _, pairs = analysis.configuration_distances(dists, trajectories, keep)
    factors = analysis.factor_effects(dists, trajectories, keep)
    tube = analysis.tube_widths(trajectories, keep, TS, lambda rows: None, bhattacharyya)
    _, per_conf = analysis.speed(pd.DataFrame(columns=["run", "kind", "step", "epoch", "progress_train"]),
                                 trajectories, keep, "train")
    text = analysis.summary_markdown("test", excluded=excluded, configuration_pairs=pairs, factors=factors,
                                     tube=tube, speed_per_configuration=per_conf, explained_stress=None, n_runs=1)
    assert "Only one architecture (fc)" in text
    assert "No factor of variation varies" in text
    assert "No configuration has two kept seeds" in text
    assert "No level of progress" in text
    assert "No explained stress" in text
    assert text.rstrip().endswith("none")
    # everything missing at once
    text = analysis.summary_markdown("train", excluded=None, configuration_pairs=None, factors=None, tube=None,
                                     speed_per_configuration=None, explained_stress=[], n_runs=0)
    assert "Fewer than two configurations" in text and "No kept configuration has progress" in text


def test_summary_html_renders_the_text_and_escapes_html_that_came_from_the_config():
    """The report shows summary.html; run ids and labels in it come from the user's config."""
    excluded = pd.DataFrame({"run": ["fc-<img src=x onerror=alert(1)>-s0"], "reason": ["diverged at step 3"]})
    text = analysis.summary_markdown("train", excluded=excluded, configuration_pairs=None, factors=None, tube=None,
                                     speed_per_configuration=None, explained_stress=[0.5, 0.7], n_runs=2)
    text += "\n| a | b |\n| --- | --- |\n| <b>x</b> | [l](javascript:alert(1)) |\n"
    page = analysis.summary_html(text, "inpca: <i>train</i>")
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
    assert "<title>inpca: &lt;i&gt;train&lt;/i&gt;</title>" in page
    assert "<h1>Analysis of the train split</h1>" in page and "<h2>Excluded runs</h2>" in page
    assert "<code>fc-&lt;img src=x onerror=alert(1)&gt;-s0</code>: diverged at step 3" in page
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>" in page and "<table>" in page
    assert "<img" not in page and "<b>" not in page and 'href="javascript' not in page


# --------------------------------------------------------------------------------------------------
# figures


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    return data


def test_every_figure_writes_a_png(study, tmp_path):
    dists, trajectories, keep, _ = study
    labels, D, pairs, factors, points, per_run, per_conf, tube = full_analysis(dists, trajectories, keep)
    archs = analysis.configuration_archs(trajectories, labels)
    analysis_plots.plot_dendrogram(labels, D, archs, tmp_path / "dendrogram.png")
    analysis_plots.plot_dendrogram(labels, D, dict(zip(labels, archs)), tmp_path / "dendrogram_map.png")
    run_pair_table = analysis.run_pairs(dists, trajectories, keep)
    analysis_plots.plot_factors(factors, run_pair_table, tmp_path / "factors.png")
    analysis_plots.plot_factors(factors, tmp_path / "factors_quartiles.png")  # boxes from the quartiles
    table = analysis.distance_to_geodesic(dists, trajectories, ts=TS)
    analysis_plots.plot_distance_to_geodesic(table, tmp_path / "geodesic.png")
    analysis_plots.plot_tube_widths(tube, TS, tmp_path / "tubes.png")
    per_run.loc[0, "included"] = False
    analysis_plots.plot_speed(points, per_run, "train", tmp_path / "speed.png")
    for name in ("dendrogram", "dendrogram_map", "factors", "factors_quartiles", "geodesic", "tubes", "speed"):
        _png(tmp_path / f"{name}.png")
    assert not list(tmp_path.glob("*.tmp"))


def test_figures_of_a_degenerate_study(tmp_path):
    empty_tube = pd.DataFrame(columns=["configuration", "arch", "run", "t", "distance"])
    analysis_plots.plot_tube_widths(empty_tube, TS, tmp_path / "tubes.png")
    analysis_plots.plot_dendrogram(["fc \u00b7 adam"], np.zeros((1, 1)), ["fc"], tmp_path / "one.png")
    analysis_plots.plot_dendrogram(["fc \u00b7 adam", "geodesic"], np.array([[0, 2.0], [2.0, 0]]), ["fc", "geodesic"],
                                   tmp_path / "two.png")
    analysis_plots.plot_factors(pd.DataFrame(columns=list(analysis.FACTOR_COLUMNS)), None, tmp_path / "factors.png")
    one_factor = pd.DataFrame([{"factor": "seed", "median": np.nan, "q25": np.nan, "q75": np.nan,
                                "pairs_differing_only_here": 0, "importance": np.nan, "importance_std": np.nan}])
    analysis_plots.plot_factors(one_factor, {"seed": []}, tmp_path / "factors_nan.png")
    analysis_plots.plot_distance_to_geodesic(pd.DataFrame(columns=["run", "configuration", "arch", "t", "distance"]),
                                             tmp_path / "geodesic.png")
    analysis_plots.plot_speed(pd.DataFrame(), pd.DataFrame(), "train", tmp_path / "speed.png")
    for name in ("tubes", "one", "two", "factors", "factors_nan", "geodesic", "speed"):
        _png(tmp_path / f"{name}.png")
    with pytest.raises(ValueError, match="D"):
        analysis_plots.plot_dendrogram(["a", "b"], np.zeros((3, 3)), ["fc", "fc"], tmp_path / "bad.png")


def test_arch_colors_are_fixed_for_known_architectures():
    a = analysis_plots.arch_colors(["fc", "wrn"])
    b = analysis_plots.arch_colors(["wrn", "allcnn", "fc", "mystery"])
    assert a["fc"] == b["fc"] and a["wrn"] == b["wrn"]
    assert len(set(b.values())) == len(b) and b["geodesic"] == "black"


def test_bad_inputs_are_one_line_errors(study):
    dists, trajectories, keep, _ = study
    for call, name in [
        (lambda: analysis.configuration_labels("not a frame"), "trajectories"),
        (lambda: analysis.configuration_labels(trajectories.assign(kind="reference")), "trajectories.kind"),
        (lambda: analysis.factor_effects(dists[0], trajectories, keep), "dists"),
        (lambda: analysis.distance_to_geodesic(dists, trajectories, ts=TS[:3]), "ts"),
        (lambda: analysis.speed("points", trajectories, keep, "train"), "points"),
        (lambda: analysis.summary_markdown("train", excluded=None, configuration_pairs=None, factors=None, tube=None,
                                           speed_per_configuration=None, explained_stress=None, n_runs="many"),
         "n_runs"),
    ]:
        with pytest.raises(ResultsError) as info:
            call()
        assert str(info.value).startswith(name) and "\n" not in str(info.value)


def test_a_table_read_back_from_tsv_groups_as_in_memory(study, tmp_path):
    dists, trajectories, keep, _ = study
    path = tmp_path / "trajectories.tsv"
    trajectories.to_csv(path, sep="\t", index=False, float_format="%.6g")
    back = pd.read_csv(path, sep="\t", dtype={c: str for c in ("run", "kind", "arch", "optimizer")})
    assert analysis.configuration_labels(back).tolist() == analysis.configuration_labels(trajectories).tolist()
    assert analysis.select_runs(back, 0.1)[0].tolist() == keep.tolist()
    pd.testing.assert_frame_equal(analysis.factor_effects(dists, back, keep),
                                  analysis.factor_effects(dists, trajectories, keep))


# --------------------------------------------------------------------------------------------------
# corners: runs started from a pre-trained or perturbed init

RANDOM_LABELS = {"init.name": "random_labels", "init.epochs": 30, "init.seed": 0, "init.batch_size": 128,
                 "init.weight_decay": 0.0, "init.optimizer.name": "sgd", "init.optimizer.lr": 0.1,
                 "init.optimizer.momentum": 0.9, "init.optimizer.nesterov": True}
SUBSAMPLE = {**RANDOM_LABELS, "init.name": "subsample", "init.samples": 100, "init.epochs": 50}
PERTURBED = {"init.name": "perturbed", "init.scale": 0.1, "init.seed": 0}
CORNER_OFFSET = {"default": 0.0, "random_labels": 0.5, "subsample": 1.0, "perturbed": 0.3}
SEED_STEP = 0.01


def corner_study():
    """fc + adam, two configurations (lr 0.1 and 0.05, two seeds each) from the default init and from a
    random-label corner, a subsample corner for lr 0.1 only, a default run with bs 128 (no corner) and a
    perturbed run with bs 256 (no default partner), and the geodesic. Run i sits at
    x_i(t) = lr code + corner offset * (1 - t) + 0.01 * seed and dists[k, i, j] = |x_i(t_k) - x_j(t_k)|:
    a corner's distance to its default partners is its offset * (1 - t), two seeds are 0.01 apart."""
    rows, pos = [], []
    for l, lr in enumerate((0.1, 0.05)):
        for init, extra in (("default", {}), ("random_labels", RANDOM_LABELS), ("subsample", SUBSAMPLE)):
            if init == "subsample" and lr != 0.1:
                continue
            for s in (0, 1):
                rows.append(run_row(f"{init}-lr{lr}-s{s}", "fc", "adam", lr, s, **extra))
                pos.append((l * 5.0, CORNER_OFFSET[init], s))
    rows.append(run_row("default-bs128-s0", "fc", "adam", 0.1, 0, batch_size=128))
    pos.append((20.0, 0.0, 0))
    rows.append(run_row("perturbed-bs256-s0", "fc", "adam", 0.1, 0, batch_size=256, **PERTURBED))
    pos.append((40.0, CORNER_OFFSET["perturbed"], 0))
    trajectories = pd.DataFrame(rows)
    trajectories = pd.concat([trajectories, pd.DataFrame([geodesic_row(trajectories.columns)])], ignore_index=True)
    x = np.array([[base + offset * (1 - t) + SEED_STEP * s for t in TS] for base, offset, s in pos])  # (R-1, T)
    x = np.vstack([x, np.full(T, 100.0)])  # the geodesic, far away
    dists = np.abs(x.T[:, :, None] - x.T[:, None, :])
    return dists, trajectories


def test_configuration_labels_tell_default_init_from_corners():
    dists, trajectories = corner_study()
    labels = dict(zip(trajectories["run"], analysis.configuration_labels(trajectories)))
    assert labels["default-lr0.1-s0"] == labels["default-lr0.1-s1"] == "lr 0.1 \u00b7 bs 64 \u00b7 default init"
    assert labels["random_labels-lr0.1-s0"] == "lr 0.1 \u00b7 bs 64 \u00b7 random_labels"
    assert labels["subsample-lr0.1-s1"] == "lr 0.1 \u00b7 bs 64 \u00b7 subsample 100"
    assert labels["perturbed-bs256-s0"] == "lr 0.1 \u00b7 bs 256 \u00b7 perturbed 0.1"
    assert labels["default-bs128-s0"] == "lr 0.1 \u00b7 bs 128 \u00b7 default init"
    # init fields that tell no two corners of one training apart (epochs of random_labels vs subsample,
    # optimizer, seed of the corner) stay out of the labels
    assert not any(" ep" in l or "mom" in l or "corner s" in l or "init." in l for l in labels.values())
    # corners that differ in their seed, learning rate or optimizer say so, compactly
    rows = [run_row("d", "fc", "adam", 0.1, 0), run_row("c0", "fc", "adam", 0.1, 0, **RANDOM_LABELS),
            run_row("c1", "fc", "adam", 0.1, 0, **{**RANDOM_LABELS, "init.seed": 1, "init.optimizer.lr": 0.05}),
            run_row("c2", "fc", "adam", 0.1, 0, **{**RANDOM_LABELS, "init.optimizer.name": "adam",
                                                   "init.optimizer.momentum": np.nan,
                                                   "init.optimizer.nesterov": np.nan})]
    assert analysis.configuration_labels(pd.DataFrame(rows)).tolist() == [
        "default init", "random_labels \u00b7 init sgd-nesterov \u00b7 corner s0 \u00b7 init lr 0.1",
        "random_labels \u00b7 init sgd-nesterov \u00b7 corner s1 \u00b7 init lr 0.05",
        "random_labels \u00b7 init adam \u00b7 corner s0 \u00b7 init lr 0.1"]
    # a corner pre-trained with the run's own optimizer and batch size (the default): not repeated
    rows = [run_row("sgd", "fc", "sgd-nesterov", 0.1, 0, **RANDOM_LABELS),
            run_row("adam", "fc", "adam", 0.001, 0, batch_size=32,
                    **{**RANDOM_LABELS, "init.optimizer.name": "adam", "init.optimizer.lr": 0.001,
                       "init.optimizer.momentum": np.nan, "init.optimizer.nesterov": np.nan,
                       "init.optimizer.betas": "[0.9,0.999]", "init.batch_size": 32}),
            run_row("d", "fc", "adam", 0.001, 0, batch_size=32)]
    assert analysis.configuration_labels(pd.DataFrame(rows)).tolist() == [
        "sgd-nesterov lr 0.1 \u00b7 bs 64 \u00b7 random_labels", "adam lr 0.001 \u00b7 bs 32 \u00b7 random_labels",
        "adam lr 0.001 \u00b7 bs 32 \u00b7 default init"]
    # read back from TSV (empty init cells of default runs): the same labels
    back = pd.read_csv(pd.io.common.StringIO(trajectories.to_csv(sep="\t", index=False)), sep="\t",
                       dtype={c: str for c in ("run", "kind", "arch", "optimizer")})
    assert analysis.configuration_labels(back).tolist() == analysis.configuration_labels(trajectories).tolist()


def test_initialization_is_a_factor_of_variation():
    dists, trajectories = corner_study()
    assert analysis.FACTORS.index("initialization") == len(analysis.FACTORS) - 2
    pairs = analysis.run_pairs(dists, trajectories, None)
    assert "differs:initialization" in pairs.columns
    only = pairs[pairs["differs_only"] == "initialization"]
    # same lr, bs and seed, different init: (default, rl) x 2 lrs x 2 seeds + (default, sub), (rl, sub) x 2 seeds
    assert len(only) == 2 * 2 + 2 * 2
    assert set(zip(only["run_a"], only["run_b"])) >= {("default-lr0.1-s0", "random_labels-lr0.1-s0"),
                                                       ("random_labels-lr0.1-s1", "subsample-lr0.1-s1")}
    factors = analysis.factor_effects(dists, trajectories, None)
    assert "initialization" in set(factors["factor"])
    stats = factors.set_index("factor")
    assert stats.loc["initialization", "pairs_differing_only_here"] == 8
    # the mean over t of 0.5 (1 - t) or 1.0 (1 - t) (or 0.5 (1 - t) between the two corners)
    mean_w = float(np.mean(1 - TS))
    assert stats.loc["initialization", "median"] == pytest.approx(0.5 * mean_w)
    # a study without init columns has no such factor
    plain = analysis.run_pairs(*synthetic_study()[:2], None)
    assert "differs:initialization" not in plain.columns


def test_corner_distances_compare_corners_with_their_default_partners():
    dists, trajectories = corner_study()
    table = analysis.corner_distances(dists, trajectories, None, ts=TS)
    assert table.columns.tolist() == ["configuration", "arch", "init", "comparison", "t", "distance", "pairs", "start"]
    lr01, lr005 = "lr 0.1 \u00b7 bs 64 \u00b7 default init", "lr 0.05 \u00b7 bs 64 \u00b7 default init"
    rl, sub = "random_labels", "subsample 100"
    # partners only among default runs of the same config but init and seed: not bs 128, nothing for bs 256
    assert set(table["configuration"]) == {lr01, lr005}
    assert set(table["arch"]) == {"fc"}
    groups = table.groupby(["configuration", "init", "comparison"], sort=False).size()
    assert list(groups.index) == [(lr005, "default", "between seeds"), (lr005, rl, "to default"),
                                  (lr005, rl, "between seeds"), (lr01, "default", "between seeds"),
                                  (lr01, rl, "to default"), (lr01, rl, "between seeds"), (lr01, sub, "to default"),
                                  (lr01, sub, "between seeds")]
    assert (groups == T).all()
    for (conf, init, comparison), g in table.groupby(["configuration", "init", "comparison"]):
        assert np.allclose(g["t"], TS)
        if comparison == "between seeds":
            assert np.allclose(g["distance"], SEED_STEP) and (g["pairs"] == 1).all()
        else:  # 2 x 2 pairs; the seed offsets cancel in the mean
            offset = CORNER_OFFSET[init.split()[0]]
            assert np.allclose(g["distance"], offset * (1 - TS)) and (g["pairs"] == 4).all()
    assert table["start"].isna().all()
    # where each corner's runs start (their index value at the first checkpoint): the mean over its runs
    start = np.where(trajectories["run"].str.startswith("subsample"), 0.8, 0.0)
    start[(trajectories["run"] == "subsample-lr0.1-s1").to_numpy()] = 0.6
    started = analysis.corner_distances(dists, trajectories, None, ts=TS, start=start)
    assert started.loc[started["init"] == sub, "start"].tolist() == pytest.approx([0.7] * (2 * T))
    assert (started.loc[started["init"] != sub, "start"] == 0).all()
    # leaving out a default seed: no default seed scale for lr 0.1, half the pairs
    keep = (trajectories["run"] != "default-lr0.1-s1").to_numpy()
    kept = analysis.corner_distances(dists, trajectories, keep, ts=TS)
    mine = kept[kept["configuration"] == lr01]
    assert not ((mine["init"] == "default") & (mine["comparison"] == "between seeds")).any()
    rows = mine[(mine["init"] == rl) & (mine["comparison"] == "to default")]
    assert (rows["pairs"] == 2).all()
    # random_labels seed s vs default seed 0: 0.5 (1 - t) + 0.01 s
    assert np.allclose(rows["distance"], 0.5 * (1 - TS) + SEED_STEP / 2)
    # the default t grid is k / T
    assert np.allclose(analysis.corner_distances(dists, trajectories, None)["t"].unique(), TS)
    # two random-label corners (init seeds 0 and 1) of one training: one line each
    rows = [run_row("d0", "fc", "adam", 0.1, 0), run_row("d1", "fc", "adam", 0.1, 1),
            run_row("a0", "fc", "adam", 0.1, 0, **RANDOM_LABELS),
            run_row("b0", "fc", "adam", 0.1, 0, **{**RANDOM_LABELS, "init.seed": 1}),
            run_row("b1", "fc", "adam", 0.1, 1, **{**RANDOM_LABELS, "init.seed": 1})]
    d = np.arange(25, dtype=float).reshape(5, 5)
    d = np.stack([d + d.T] * 2)
    np.einsum("kii->ki", d)[:] = 0
    two = analysis.corner_distances(d, pd.DataFrame(rows), None, ts=[0.0, 0.5])
    got = {(r.init, r.comparison): (r.distance, r.pairs) for r in two[two["t"] == 0.5].itertuples()}
    assert got == {("default", "between seeds"): (d[0, 0, 1], 1),
                   ("random_labels \u00b7 corner s0", "to default"): ((d[0, 2, 0] + d[0, 2, 1]) / 2, 2),
                   ("random_labels \u00b7 corner s1", "to default"): (d[0, 3:5, 0:2].mean(), 4),
                   ("random_labels \u00b7 corner s1", "between seeds"): (d[0, 3, 4], 1)}


def test_corner_distances_empty_without_corners_or_partners():
    columns = ["configuration", "arch", "init", "comparison", "t", "distance", "pairs", "start"]
    dists, trajectories = synthetic_study()
    empty = analysis.corner_distances(dists, trajectories, None, ts=TS)  # no init columns at all
    assert empty.empty and empty.columns.tolist() == columns
    dists, trajectories = corner_study()
    no_default = (trajectories["kind"] == "geodesic") | trajectories["init.name"].notna()
    empty = analysis.corner_distances(dists, trajectories, no_default.to_numpy(), ts=TS)  # no partner is kept
    assert empty.empty and empty.columns.tolist() == columns
    only_default = (trajectories["kind"] == "geodesic") | trajectories["init.name"].isna()
    assert analysis.corner_distances(dists, trajectories, only_default.to_numpy()).empty
    for call, name in [(lambda: analysis.corner_distances(dists[0], trajectories, None), "dists"),
                       (lambda: analysis.corner_distances(dists, trajectories, None, ts=TS[:3]), "ts"),
                       (lambda: analysis.corner_distances(dists, trajectories, np.ones(3, bool)), "keep"),
                       (lambda: analysis.corner_distances(dists * np.nan, trajectories, None), "dists"),
                       (lambda: analysis.corner_distances(dists, "table", None), "trajectories")]:
        with pytest.raises(ResultsError) as info:
            call()
        assert str(info.value).startswith(name) and "\n" not in str(info.value)


def summary_of(corners):
    return analysis.summary_markdown("train", excluded=None, configuration_pairs=None, factors=None, tube=None,
                                     speed_per_configuration=None, explained_stress=None, n_runs=13, corners=corners)


def test_summary_markdown_reports_corners_at_three_values_of_t(tmp_path):
    dists, trajectories = corner_study()
    table = analysis.corner_distances(dists, trajectories, None, ts=TS)
    text = summary_of(table)
    assert "## 5. Networks that start far from ignorance" in text
    assert text.index("## 4.") < text.index("## 5.") < text.index("## Excluded runs")
    # random_labels: 0.5 (1 - t) at t = 0.2, 0.5, 0.7 (0.25 and 0.75 are ties on the k/10 grid: the smaller t);
    # seeds 0.01 apart
    assert "| random_labels | 0.2 | 0.4 | 0.01 | 40 | 0.01 |" in text
    assert "| random_labels | 0.5 | 0.25 | 0.01 | 25 | 0.01 |" in text
    assert "| random_labels | 0.7 | 0.15 | 0.01 | 15 | 0.01 |" in text
    assert "| subsample 100 | 0.5 | 0.5 | 0.01 | 50 | 0.01 |" in text
    assert ("**random_labels** (2 configurations, 8 run pairs to default-init runs): the distance "
            "shrinks from 0.4 at t = 0.2 to 0.15 at t = 0.7.") in text
    assert "**subsample 100** (1 configuration, 4 run pairs" in text
    # the grid t nearest 0.25 / 0.5 / 0.75 exactly on a finer grid; read back from TSV
    ts = np.arange(20) / 20
    fine = analysis.corner_distances(np.repeat(dists, 2, axis=0), trajectories, None, ts=ts)
    fine.to_csv(tmp_path / "corners.tsv", sep="\t", index=False, float_format="%.6g")
    from inpca.files import read_table

    text = summary_of(read_table(tmp_path / "corners.tsv"))
    for t in ("0.25", "0.5", "0.75"):
        assert f"| random_labels | {t} |" in text
    # a corner moving away from its default partners does not shrink
    grows = table.assign(distance=np.where(table["comparison"] == "to default", table["t"], table["distance"]))
    assert "does not shrink; it grows from 0.2 at t = 0.2 to 0.7 at t = 0.7" in summary_of(grows)


def test_summary_markdown_without_corners_is_unchanged():
    text = summary_of(None)
    assert "## 5." not in text and "corner" not in text.lower()
    empty = analysis.corner_distances(*synthetic_study(), None)
    text = summary_of(empty)
    assert "## 5. Networks that start far from ignorance" in text
    assert "No kept corner-started run has a default-init partner" in text
    with pytest.raises(ResultsError, match="^corners"):
        summary_of(pd.DataFrame({"init": ["x"]}))
    with pytest.raises(ResultsError, match="^corners"):
        summary_of("corners.tsv")


def test_corner_figure(tmp_path):
    dists, trajectories = corner_study()
    table = analysis.corner_distances(dists, trajectories, None, ts=TS)
    analysis_plots.plot_corner_distances(table, tmp_path / "corners.png")
    analysis_plots.plot_corner_distances(table.iloc[:0], tmp_path / "corners_empty.png")
    # many configurations: one panel per architecture
    many = pd.concat([table.assign(configuration=table["configuration"] + f" #{i}") for i in range(6)],
                     ignore_index=True)
    analysis_plots.plot_corner_distances(many, tmp_path / "corners_arch.png")
    for name in ("corners", "corners_empty", "corners_arch"):
        _png(tmp_path / f"{name}.png")
    with pytest.raises(ResultsError, match="^table"):
        analysis_plots.plot_corner_distances(table.drop(columns="pairs"), tmp_path / "bad.png")


def test_corner_steps_write_the_table_and_the_summary_section(tmp_path):
    from inpca.analysis import steps as analysis_steps
    from inpca.files import create, write_h5

    dists, trajectories = corner_study()
    trajectories = trajectories.drop(columns="diverged")
    index = tmp_path / "index.tsv"
    trajectories.to_csv(index, sep="\t", index=False)

    def fill(f):
        create(f, "D", dists.astype(np.float32))
        create(f, "t", TS)
        create(f, "run", np.array([r.encode() for r in trajectories["run"]]))

    write_h5(tmp_path / "equal_progress.h5", fill)
    write_h5(tmp_path / "embedding.h5", lambda f: create(f, "explained_stress", np.array([0.5, 0.7, 0.8, 0.9])))
    analysis_steps.write_corners(tmp_path / "equal_progress.h5", index, tmp_path / "corners.tsv",
                                 tmp_path / "corners.png", max_final_train_error=0.1)
    from inpca.files import read_table

    table = read_table(tmp_path / "corners.tsv")
    assert table.columns.tolist() == ["configuration", "arch", "init", "comparison", "t", "distance", "pairs", "start"]
    assert len(table) == 8 * T
    _png(tmp_path / "corners.png")
    for name in ("configurations", "factors", "tube", "speed"):
        pd.DataFrame(columns=["unused"]).to_csv(tmp_path / f"{name}.tsv", sep="\t", index=False)  # header only
    args = ("train", index, *(tmp_path / f"{n}.tsv" for n in ("configurations", "factors", "tube", "speed")),
            tmp_path / "embedding.h5")
    analysis_steps.write_summary(*args, tmp_path / "summary.md", max_final_train_error=0.1,
                                 corners_tsv=tmp_path / "corners.tsv", out_html=tmp_path / "summary.html")
    text = (tmp_path / "summary.md").read_text()
    assert "## 5. Networks that start far from ignorance" in text
    page = (tmp_path / "summary.html").read_text(encoding="utf-8")
    assert "<h2>5. Networks that start far from ignorance</h2>" in page and "<td>random_labels</td>" in page
    assert "| random_labels | 0.5 | 0.25 | 0.01 | 25 | 0.01 |" in text
    analysis_steps.write_summary(*args, tmp_path / "plain.md", max_final_train_error=0.1)
    assert "## 5." not in (tmp_path / "plain.md").read_text()
    # no corner-started run kept: a header-only table and a figure that says so
    strict = trajectories.assign(final_train_error=np.where(trajectories["init.name"].notna(), 0.5, 0.01))
    strict.to_csv(index, sep="\t", index=False)
    analysis_steps.write_corners(tmp_path / "equal_progress.h5", index, tmp_path / "none.tsv", tmp_path / "none.png",
                                 max_final_train_error=0.1)
    assert read_table(tmp_path / "none.tsv").empty
    _png(tmp_path / "none.png")
    analysis_steps.write_summary(*args, tmp_path / "none.md", max_final_train_error=0.1,
                                 corners_tsv=tmp_path / "none.tsv")
    assert "No kept corner-started run has a default-init partner" in (tmp_path / "none.md").read_text()


# --- the map of whole trajectories ---------------------------------------------------------------------------

def test_the_map_of_whole_trajectories_embeds_the_mean_distances_and_sees_architectures_separate():
    dists, trajectories = synthetic_study()
    keep, _ = analysis.select_runs(trajectories, None)
    result = analysis.trajectory_map(dists, trajectories, keep, n_components=3)
    assert list(result["rows"]) == list(range(len(trajectories)))  # every run and the geodesic
    mean = dists.mean(axis=0)
    exact = analysis_embedding(mean)
    np.testing.assert_allclose(result["eigenvalues"], exact.eigenvalues_[:3], rtol=1e-10)
    assert np.all(np.diff(result["explained_stress"]) >= 0) and 0 < result["explained_stress"][-1] <= 1
    assert result["nn_same_arch"] == 1.0 and result["nn_chance"] == pytest.approx(11 / 35)
    assert result["silhouette"] > 0.5  # the architecture effect dominates the planted distances
    weighted = analysis.trajectory_map(dists, trajectories, keep, n_components=3, geodesic_weight="authors")
    assert weighted["geodesic_weight"] == pytest.approx(len(trajectories) / 10)
    assert not np.allclose(weighted["eigenvalues"], result["eigenvalues"])  # the geodesic now counts 3.7 times


def analysis_embedding(D):
    from inpca.embedding import InPCA

    return InPCA(n_components=3, solver="dense").fit(D)


def test_when_architectures_do_not_separate_the_map_says_so():
    dists, trajectories = synthetic_study()
    rng = np.random.default_rng(1)
    shuffled = trajectories.copy()
    runs = shuffled["kind"] == "run"
    shuffled.loc[runs, "arch"] = rng.permutation(shuffled.loc[runs, "arch"].to_numpy())
    keep, _ = analysis.select_runs(shuffled, None)
    result = analysis.trajectory_map(dists, shuffled, keep)
    assert result["nn_same_arch"] < 0.8 and result["silhouette"] < 0.2
    text = analysis.summary_markdown("train", excluded=None, configuration_pairs=None, factors=None, tube=None,
                                     speed_per_configuration=None, explained_stress=[0.9, 0.95, 0.97], n_runs=36,
                                     trajectory_map=result)
    assert "The map of whole trajectories" in text and "architectures do not separate clearly" in text
