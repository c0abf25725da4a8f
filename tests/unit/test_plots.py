"""Figures of an embedding: every plotting function on a small fake embedding + index."""

import base64
import re

import numpy as np
import pandas as pd
import pytest

from inpca import plots
from inpca.plots import atlas as plots_atlas
from inpca.figures import pyplot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUNS = ["run-a1", "run-b2", "run-c3"]
ARCHS = ["fc", "resnet", "fc"]
LRS = [0.1, 0.01, 0.001]
N_CKPT = 5


def fake_index() -> pd.DataFrame:
    rows = []
    ref = [("P0", 0.0), ("geodesic", 0.25), ("geodesic", 0.5), ("geodesic", 0.75), ("P*", 1.0)]
    for name, t in ref:
        rows.append({"run": name, "kind": "reference", "arch": name, "optimizer": name, "checkpoint": -1, "step": -1,
                     "epoch": np.nan, "train_loss": np.nan, "train_error": np.nan, "test_loss": np.nan,
                     "test_error": np.nan, "t": t, "arch.name": np.nan, "arch.width": np.nan,
                     "optimizer.name": np.nan, "optimizer.lr": np.nan, "seed": np.nan})
    for r, (rid, arch, lr) in enumerate(zip(RUNS, ARCHS, LRS)):
        for c in range(N_CKPT):
            err = 0.9 * (1 - c / N_CKPT)
            rows.append({"run": rid, "kind": "run", "arch": arch, "optimizer": "sgd", "checkpoint": c, "step": 10 * c,
                         "epoch": float(c), "train_loss": 2 * err, "train_error": err, "test_loss": 2 * err + 0.1,
                         "test_error": err + 0.05, "t": np.nan, "arch.name": arch, "arch.width": 64.0,
                         "optimizer.name": "sgd", "optimizer.lr": lr, "seed": float(r)})
    df = pd.DataFrame(rows)
    df.insert(0, "point", np.arange(len(df)))
    df.insert(1, "block", "b0")
    df.insert(2, "row", np.arange(len(df)))
    for split in ("train", "test"):
        prog = np.where(df["kind"] == "run", df["checkpoint"] / (N_CKPT - 1) * 0.9, df["t"])
        df[f"progress_{split}"] = prog
        df[f"dist_truth_{split}"] = 1.0 - 0.9 * prog + 0.01
    return df


def fake_emb(index: pd.DataFrame, k: int = 4) -> dict:
    rng = np.random.default_rng(0)
    m = len(index)
    coords = rng.normal(size=(m, k))
    t = index["progress_train"].to_numpy()
    coords[:, 0] = 3 * t
    eigenvalues = np.array([8.24, -0.65, 0.31, 0.05])[:k]
    stress = np.array([0.7, 0.78, 0.83, 0.84])[:k]
    return {"coords": coords, "eigenvalues": eigenvalues, "explained_stress": stress,
            "progress": index["progress_train"].to_numpy(), "dist_truth": index["dist_truth_train"].to_numpy(),
            "run": index["run"].to_numpy(dtype=object), "kind": index["kind"].to_numpy(dtype=object),
            "attrs": {"split": "train", "metric": "bhattacharyya", "solver": "dense", "frobenius_norm": 10.0,
                      "n_points": m}}


@pytest.fixture(scope="module")
def data():
    index = fake_index()
    return fake_emb(index), index


def assert_png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = plt.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


@pytest.mark.parametrize("color_by", ["arch", "optimizer.lr"])
def test_trajectories_png(data, tmp_path, color_by):
    emb, index = data
    out = tmp_path / "sub" / "trajectories.png"
    plots.plot_trajectories_png(emb, index, out, color_by=color_by)
    assert_png(out)


def test_trajectories_png_continuous_colormap(tmp_path):
    """Many numeric values -> colormap and colorbar instead of a legend."""
    index = fake_index()
    index.loc[index["kind"] == "run", "optimizer.lr"] = np.repeat(np.logspace(-3, 0, 3), N_CKPT)
    colors = plots.RunColours(index, plots.runs_of(index), "optimizer.lr")
    assert not colors.continuous  # 3 values: still categorical
    one_run = index[index["run"] == RUNS[0]]
    many = pd.concat([index[index["kind"] == "reference"]]
                     + [one_run.assign(run=f"lr-{i}", **{"optimizer.lr": 10.0 ** -(i / 3)}) for i in range(10)],
                     ignore_index=True)
    emb_many = fake_emb(many)
    colors = plots.RunColours(many, plots.runs_of(many), "optimizer.lr")
    assert colors.continuous and colors.log
    plots.plot_trajectories_png(emb_many, many, tmp_path / "t.png", color_by="optimizer.lr")
    plots.plot_progress(emb_many, many, tmp_path / "p.png", color_by="optimizer.lr")
    plots.plot_trajectories_html(emb_many, many, tmp_path / "t.html", color_by="optimizer.lr")
    assert_png(tmp_path / "t.png")
    assert_png(tmp_path / "p.png")
    assert "colorbar" in (tmp_path / "t.html").read_text()


def test_trajectories_png_fewer_than_three_components(tmp_path):
    index = fake_index()
    emb = fake_emb(index, k=2)
    assert "missing axes set to 0" in plots.figure_title(emb, None, "InPCA trajectories")
    plots.plot_trajectories_png(emb, index, tmp_path / "t.png")
    plots.plot_trajectories_html(emb, index, tmp_path / "t.html")
    assert_png(tmp_path / "t.png")
    assert "missing axes set to 0" in (tmp_path / "t.html").read_text()


def test_runs_in_checkpoint_order_and_references_along_geodesic():
    index = fake_index()
    shuffled = pd.concat([index.iloc[:5], index.iloc[5:].iloc[::-1]], ignore_index=True)
    runs = plots.runs_of(shuffled)
    assert [rid for rid, _ in runs] == RUNS[::-1]
    for _, rows in runs:
        assert list(shuffled["checkpoint"].iloc[rows]) == list(range(N_CKPT))
    refs, p0, pstar = plots.references_of(index)
    assert list(index["t"].iloc[refs]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert index["run"].iloc[p0] == "P0" and index["run"].iloc[pstar] == "P*"


def test_axis_labels_mark_time_like():
    labels = plots.axis_labels(np.array([8.24, -0.65, 0.31]))
    assert labels[0] == ("PC1 (λ=+8.24)", False)
    assert labels[1] == ("PC2 (λ=\u22120.65, time-like)", True)
    assert labels[2] == ("PC3 (λ=+0.31)", False)


def test_every_3d_figure_marks_a_time_like_axis_the_same_way():
    """The trajectories, the map of whole trajectories and the atlas share one labelling: a time-like
    axis (λ < 0) has a red label, line and ticks in the PNG and a red title and line in the HTML."""
    from matplotlib.colors import to_hex

    fig = pyplot().figure()
    ax = fig.add_subplot(projection="3d")
    plots.label_axes_png(ax, [8.24, -0.65, 0.31])
    red = to_hex(plots.TIMELIKE_COLOR)
    assert to_hex(ax.yaxis.label.get_color()) == red and to_hex(ax.yaxis.line.get_color()) == red
    assert to_hex(ax.xaxis.label.get_color()) != red and to_hex(ax.zaxis.line.get_color()) != red
    assert ax.yaxis.label.get_text() == "PC2 (λ=\u22120.65, time-like)"
    pyplot().close(fig)
    scene = plots.scene_layout([8.24, -0.65, 0.31])
    assert scene["yaxis"]["linecolor"] == plots.TIMELIKE_COLOR
    assert scene["yaxis"]["title"]["font"]["color"] == plots.TIMELIKE_COLOR
    assert "linecolor" not in scene["xaxis"] and scene["zaxis"]["title"]["text"] == "PC3 (λ=+0.31)"


def test_trajectories_html(data, tmp_path):
    emb, index = data
    out = tmp_path / "trajectories.html"
    plots.plot_trajectories_html(emb, index, out, color_by="arch")
    html = out.read_text()
    assert "plotly" in html.lower()
    for rid in RUNS:
        assert rid in html
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?https?:", html, flags=re.I)
    assert "PC2 (λ=\u22120.65, time-like)" in html or "PC2 (\\u03bb=\\u22120.65, time-like)" in html
    assert "time-like" in html
    # one legend entry per colour value (fc, resnet), not one per run
    import json

    spec = json.loads(re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", html, flags=re.S).group(1))
    legend = [tr["name"] for tr in spec if tr.get("showlegend", True) and tr.get("legendgroup") in ("fc", "resnet")]
    assert sorted(legend) == ["fc", "resnet"]


def test_trajectories_html_is_byte_identical_across_renders_of_the_same_input(data, tmp_path):
    """plotly gives its div a random id unless told one: a rebuild must not change the file's bytes."""
    emb, index = data
    plots.plot_trajectories_html(emb, index, tmp_path / "a.html", color_by="arch")
    plots.plot_trajectories_html(emb, index, tmp_path / "b.html", color_by="arch")
    a, b = (tmp_path / "a.html").read_bytes(), (tmp_path / "b.html").read_bytes()
    assert len(a) > 1000 and a == b


def test_spectrum(data, tmp_path):
    emb, _ = data
    out = tmp_path / "spectrum.png"
    plots.plot_spectrum(emb, out)
    assert_png(out)


def test_progress(data, tmp_path):
    emb, index = data
    out = tmp_path / "progress.png"
    plots.plot_progress(emb, index, out, color_by="arch")
    assert_png(out)


@pytest.mark.parametrize("fn", [plots.plot_trajectories_png, plots.plot_trajectories_html, plots.plot_progress])
def test_bad_color_by(data, tmp_path, fn):
    emb, index = data
    with pytest.raises(ValueError, match="no_such_column") as exc:
        fn(emb, index, tmp_path / "x.out", color_by="no_such_column")
    assert "arch" in str(exc.value) and "optimizer.lr" in str(exc.value)
    assert not (tmp_path / "x.out").exists()


def test_color_by_suffix_of_config_column(data):
    _, index = data
    assert plots.colour_column(index, "lr") == "optimizer.lr"
    assert plots.colour_column(index, "arch") == "arch"


def write_h5(path, emb, n=None):
    import h5py

    n = len(emb["coords"]) if n is None else n
    with h5py.File(path, "w") as f:
        for name in ("coords", "progress", "dist_truth"):
            f.create_dataset(name, data=emb[name][:n])
        for name in ("eigenvalues", "explained_stress"):
            f.create_dataset(name, data=emb[name])
        f.create_dataset("run", data=np.array([s.encode() for s in emb["run"][:n]]))
        f.create_dataset("kind", data=np.array([s.encode() for s in emb["kind"][:n]]))
        f.attrs.update({k: v for k, v in emb["attrs"].items()})


def test_load(data, tmp_path):
    emb, index = data
    h5, tsv = tmp_path / "train.h5", tmp_path / "index.tsv"
    write_h5(h5, emb)
    index.to_csv(tsv, sep="\t", index=False, na_rep="")
    got, idx = plots.load(h5, tsv)
    assert got["coords"].shape == emb["coords"].shape
    np.testing.assert_allclose(got["coords"], emb["coords"])
    assert list(got["run"][:2]) == ["P0", "geodesic"] and got["kind"][-1] == "run"
    assert got["attrs"]["split"] == "train" and got["attrs"]["n_points"] == len(index)
    assert list(idx.columns) == list(index.columns) and len(idx) == len(index)
    assert np.isnan(idx["epoch"].iloc[0])
    # the loaded pair plots
    plots.plot_trajectories_png(got, idx, tmp_path / "t.png")
    assert_png(tmp_path / "t.png")


def test_load_keeps_numeric_looking_run_ids_as_text(data, tmp_path):
    emb, index = data
    index = index.assign(run=index["run"].replace({RUNS[0]: "0123"}))
    emb = {**emb, "run": index["run"].to_numpy(dtype=object)}
    h5, tsv = tmp_path / "train.h5", tmp_path / "index.tsv"
    write_h5(h5, emb)
    index.to_csv(tsv, sep="\t", index=False, na_rep="")
    _, idx = plots.load(h5, tsv)
    assert "0123" in set(idx["run"])


def test_load_row_count_mismatch(data, tmp_path):
    emb, index = data
    h5, tsv = tmp_path / "train.h5", tmp_path / "index.tsv"
    write_h5(h5, emb, n=len(index) - 2)
    index.to_csv(tsv, sep="\t", index=False, na_rep="")
    with pytest.raises(ValueError) as exc:
        plots.load(h5, tsv)
    msg = str(exc.value)
    assert "\n" not in msg and str(h5) in msg and str(tsv) in msg


def test_load_run_order_mismatch(data, tmp_path):
    emb, index = data
    h5, tsv = tmp_path / "train.h5", tmp_path / "index.tsv"
    write_h5(h5, emb)
    index.iloc[::-1].to_csv(tsv, sep="\t", index=False, na_rep="")
    with pytest.raises(ValueError, match="disagree on the run"):
        plots.load(h5, tsv)


# --------------------------------------------------------------------------------------------------
# corners: geodesics P0 -> corner and corner -> P*, runs that start from a corner

CORNERS = [("allcnn-randlabels-s0-1a2b3c4d", "random_labels"), ("allcnn-subsample-s0-9f8e7d6c", "subsample")]
CORNER_T = [0.0, 0.5, 1.0]


def fake_corner_index() -> pd.DataFrame:
    """fake_index + for each corner its two curves (rows out of t order) and one run starting from it."""
    base = fake_index().assign(init=lambda d: d["kind"].eq("run").map({True: "default", False: np.nan}),
                               corner=np.nan)
    blank = {c: np.nan for c in base.columns}
    rows = []
    for j, (cid, init) in enumerate(CORNERS):
        for run in (f"P0->{cid}", f"{cid}->P*"):
            for t in (CORNER_T[2], CORNER_T[0], CORNER_T[1]):  # stored out of order on purpose
                rows.append({**blank, "run": run, "kind": "reference", "arch": "reference", "optimizer": "reference",
                             "checkpoint": -1, "step": -1, "t": t, "corner": cid, "init": init})
        for c in range(N_CKPT):
            err = 0.9 * (1 - c / N_CKPT)
            rows.append({**blank, "run": f"run-corner{j}", "kind": "run", "arch": "fc", "optimizer": "sgd",
                         "checkpoint": c, "step": 10 * c, "epoch": float(c), "train_error": err,
                         "test_error": err + 0.05, "arch.name": "fc", "optimizer.lr": 0.1, "seed": 0.0,
                         "corner": cid, "init": init})
    df = pd.concat([base, pd.DataFrame(rows)], ignore_index=True)
    df["point"] = np.arange(len(df))
    df["row"] = np.arange(len(df))
    df["block"] = "b0"
    is_run = (df["kind"] == "run").to_numpy()
    to_corner = df["run"].str.startswith("P0->").to_numpy()
    t = df["t"].to_numpy(dtype=float)
    prog = np.where(is_run, df["checkpoint"].to_numpy(dtype=float) / (N_CKPT - 1) * 0.9,
                    np.where(to_corner, 0.3 * t, t))
    for split in ("train", "test"):
        df[f"progress_{split}"] = prog
        df[f"dist_truth_{split}"] = 1.0 - 0.9 * prog + 0.01
    return df


def fake_corner_emb(index: pd.DataFrame) -> dict:
    """fake_emb, with each corner run's first checkpoint on its corner (the t=1 end of P0->corner)."""
    emb = fake_emb(index)
    for j, (cid, _) in enumerate(CORNERS):
        corner = np.flatnonzero((index["run"] == f"P0->{cid}").to_numpy() & (index["t"] == 1.0).to_numpy())[0]
        start = np.flatnonzero((index["run"] == f"run-corner{j}").to_numpy() & (index["checkpoint"] == 0).to_numpy())[0]
        emb["coords"][start] = emb["coords"][corner]
    return emb


@pytest.fixture(scope="module")
def corner_data():
    index = fake_corner_index()
    return fake_corner_emb(index), index


def test_references_exclude_corner_curves(corner_data):
    _, index = corner_data
    refs, p0, pstar = plots.references_of(index)
    assert set(index["run"].iloc[refs]) == {"P0", "geodesic", "P*"}
    assert list(index["t"].iloc[refs]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert index["run"].iloc[p0] == "P0" and index["run"].iloc[pstar] == "P*"
    # the runs are the runs, whether told by kind or by the run label
    assert [rid for rid, _ in plots.runs_of(index)] == RUNS + ["run-corner0", "run-corner1"]
    assert [rid for rid, _ in plots.runs_of(index.drop(columns="kind"))] == RUNS + ["run-corner0", "run-corner1"]
    refs_nokind, _, _ = plots.references_of(index.drop(columns="kind"))
    assert list(refs_nokind) == list(refs)


def test_corner_curves_rows_in_t_order(corner_data):
    _, index = corner_data
    curves = plots.corner_curves(index)
    expected = [e for cid, init in CORNERS for e in ((f"P0->{cid}", cid, init, "P0->corner"),
                                                     (f"{cid}->P*", cid, init, "corner->P*"))]
    assert [(c.run, c.corner, c.init, c.direction) for c in curves] == expected
    for curve in curves:
        assert list(index["t"].iloc[curve.rows]) == CORNER_T
        assert set(index["run"].iloc[curve.rows]) == {curve.run}
        assert set(index["kind"].iloc[curve.rows]) == {"reference"}
    # the corner point: the t=1 end of P0->corner
    points = plots.corner_points(index, curves)
    assert [(c, i) for _, c, i in points] == CORNERS
    for (row, cid, _), curve in zip(points, curves[::2]):
        assert row == curve.rows[-1] and index["t"].iloc[row] == 1.0 and index["run"].iloc[row] == f"P0->{cid}"


def test_corner_curves_without_corner_columns(corner_data):
    """Corner id from the run label when the index has no corner/init columns; none in an old index."""
    _, index = corner_data
    curves = plots.corner_curves(index.drop(columns=["corner", "init"]))
    assert [(c.corner, c.init, c.direction) for c in curves] == [
        (cid, "", d) for cid, _ in CORNERS for d in ("P0->corner", "corner->P*")]
    assert plots.corner_curves(fake_index()) == []
    assert plots.corner_points(fake_index(), []) == []


@pytest.mark.parametrize("color_by", ["arch", "init"])
def test_trajectories_png_with_corners(corner_data, tmp_path, color_by):
    emb, index = corner_data
    out = tmp_path / "trajectories.png"
    plots.plot_trajectories_png(emb, index, out, color_by=color_by)
    assert_png(out)


def plotly_traces(html: str) -> list[dict]:
    import json

    return json.loads(re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", html, flags=re.S).group(1))


def test_trajectories_html_with_corners(corner_data, tmp_path):
    emb, index = corner_data
    out = tmp_path / "trajectories.html"
    plots.plot_trajectories_html(emb, index, out, color_by="init")
    html = out.read_text()
    traces = plotly_traces(html)
    names = [tr.get("name") for tr in traces if tr.get("showlegend", True)]
    # one legend entry per kind of corner item, however many corners
    for name in ("geodesic P0→P*", "geodesic P0→corner", "geodesic corner→P*", "corner"):
        assert names.count(name) == 1, name
    # one entry per init value among the runs
    assert sorted(n for n in names if n in ("default", "random_labels", "subsample")) == [
        "default", "random_labels", "subsample"]
    by_name = {tr["name"]: tr for tr in traces}
    for name in ("geodesic P0→corner", "geodesic corner→P*"):
        assert by_name[name]["line"]["dash"] == "dash"
        assert by_name[name]["line"]["width"] < by_name["geodesic P0→P*"]["line"]["width"]
    corner = by_name["corner"]
    assert corner["marker"]["symbol"] == "diamond" and len(corner["x"]) == len(CORNERS)
    for (cid, init), hover in zip(CORNERS, corner["hovertext"]):
        assert cid in hover and init in hover
    hover_curves = " ".join(t for name in ("geodesic P0→corner", "geodesic corner→P*")
                            for t in by_name[name]["text"] if t)
    for cid, _ in CORNERS:
        assert f"geodesic P0→{cid}" in hover_curves and f"geodesic {cid}→P*" in hover_curves
    # a run from a corner names it on hover; the main geodesic keeps only its own rows
    assert any(f"corner: {CORNERS[0][0]}" in t for t in by_name["random_labels"]["text"] if t)
    x = by_name["geodesic P0→P*"]["x"]  # plotly stores numpy arrays as base64 "bdata"
    assert (len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize if isinstance(x, dict) else len(x)) == 5


def test_trajectories_html_without_corners_has_no_corner_traces(data, tmp_path):
    emb, index = data
    out = tmp_path / "trajectories.html"
    plots.plot_trajectories_html(emb, index, out)
    names = {tr.get("name") for tr in plotly_traces(out.read_text())}
    assert not names & {"geodesic P0→corner", "geodesic corner→P*", "corner"}


def test_load_with_corners(corner_data, tmp_path):
    """Through index.tsv: empty corner cells of default runs read back as missing; the figures draw."""
    emb, index = corner_data
    h5, tsv = tmp_path / "train.h5", tmp_path / "index.tsv"
    write_h5(h5, emb)
    index.to_csv(tsv, sep="\t", index=False, na_rep="")
    got, idx = plots.load(h5, tsv)
    curves = plots.corner_curves(idx)
    assert [c.corner for c in curves[::2]] == [cid for cid, _ in CORNERS]
    plots.plot_trajectories_png(got, idx, tmp_path / "t.png", color_by="init")
    plots.plot_trajectories_html(got, idx, tmp_path / "t.html", color_by="corner")
    assert_png(tmp_path / "t.png")
    assert "geodesic corner→P*" in {tr.get("name") for tr in plotly_traces((tmp_path / "t.html").read_text())}


# --------------------------------------------------------------------------------------------------
# runs placed in an atlas


def fake_placed(names, n=4, same_end=True) -> dict:
    """{name: atlas table} of runs placed in the fake embedding; with `same_end` every run ends at the
    same point, where labels at the points would overlap."""
    rng = np.random.default_rng(1)
    placed = {}
    for j, name in enumerate(names):
        xyz = rng.normal(size=(n, 3))
        if same_end:
            xyz[-1] = (2.5, 0.1, -0.1)
        table = pd.DataFrame({"step": 10 * np.arange(n), "epoch": np.arange(n, dtype=float)})
        for i in range(3):
            table[f"train_pc{i + 1}"] = xyz[:, i]
        table["train_progress"] = np.linspace(0.1, 0.8, n)
        table["nearest_configuration"] = "arch=fc"
        table["forecast_final_test_error"] = 0.1
        table["forecast_low"], table["forecast_high"] = 0.05, 0.2
        table["forecast_trusted"] = True
        placed[name] = table
    return placed


def _lab(color) -> np.ndarray:
    """CIELAB (D65) of a matplotlib colour."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def atlas_png_figure(monkeypatch, emb, index, placed, out):
    """Draw the atlas PNG and keep its figure (drawn, as saved) for inspection."""
    from matplotlib.text import Text

    kept = {}
    save = plots.atlas.save_png

    def keep(fig, path):
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        kept["legend"] = {text.get_text(): handle.get_color()
                          for text, handle in zip(legend.get_texts(), legend.legend_handles)}
        kept["lines"] = {line.get_label(): line.get_color() for line in ax.lines}
        renderer = fig.canvas.get_renderer()
        # the extent of the text itself (an annotation's own extent includes its leader line)
        kept["labels"] = {t.get_text(): (t.get_color(), Text.get_window_extent(t, renderer)) for t in ax.texts}
        save(fig, path)

    monkeypatch.setattr(plots.atlas, "save_png", keep)
    plots.plot_atlas_png(emb, index, placed, out)
    assert_png(out)
    return kept


def test_atlas_placed_runs_have_one_colour_each_in_png_and_html_and_none_of_a_reference_family(
        data, tmp_path, monkeypatch):
    """Issue 29: a placed run had the blue of "atlas: fc" (PNG) or the orange of another family (HTML),
    and not the same colour in both. Now one function colours them, from a palette of its own."""
    from matplotlib.colors import to_hex

    from inpca.figures import arch_colors

    emb, index = data
    names = [f"placed-{j}" for j in range(len(plots.PLACED_COLORS) + 2)]
    placed = fake_placed(names)
    png = atlas_png_figure(monkeypatch, emb, index, placed, tmp_path / "atlas.png")
    plots.plot_atlas_html(emb, index, placed, tmp_path / "atlas.html")
    traces = {tr["name"]: tr for tr in plotly_traces((tmp_path / "atlas.html").read_text())}

    families = {name: to_hex(color) for name, color in png["legend"].items() if name.startswith("atlas: ")}
    assert sorted(families) == ["atlas: fc", "atlas: resnet"]
    expected = arch_colors(["fc", "resnet"])  # reference families keep their colours, in both figures
    for family, color in families.items():
        assert color == expected[family.removeprefix("atlas: ")] == to_hex(traces[family]["line"]["color"])

    styles = plots.placed_styles(names)
    for name in names:
        color = styles[name].color
        assert to_hex(png["legend"][name]) == to_hex(color)
        assert to_hex(traces[name]["line"]["color"]) == to_hex(traces[name]["marker"]["color"]) == to_hex(color)
        assert to_hex(png["labels"][name][0]) == to_hex(color)
    first = [styles[name].color for name in names[:len(plots.PLACED_COLORS)]]
    assert len(set(first)) == len(first)  # one colour per run up to the palette's length ...
    later = [styles[name] for name in names[len(plots.PLACED_COLORS):]]
    assert all(s.marker != "o" for s in later)  # ... then the colours again, with another marker

    # no placed colour is, or is near, a colour any reference family can have (or the geodesic's)
    from inpca.config import ARCHITECTURES

    every_family = list(ARCHITECTURES) + [f"imported-{i}" for i in range(20)]  # the whole palette, spares too
    reference = set(arch_colors(every_family).values()) | set(families.values()) | {"#9e9e9e", "#000000"}
    assert not reference & {to_hex(c) for c in plots.PLACED_COLORS}
    for color in plots.PLACED_COLORS:
        distance = min(np.linalg.norm(_lab(color) - _lab(ref)) for ref in reference)
        assert distance >= 25, (color, distance)


def test_atlas_png_labels_of_placed_runs_do_not_overlap(data, tmp_path, monkeypatch):
    emb, index = data
    names = ["sgd-lr0.1-seed0", "adam-lr0.001-seed1", "fc-wide"]
    png = atlas_png_figure(monkeypatch, emb, index, fake_placed(names), tmp_path / "atlas.png")
    boxes = [png["labels"][name][1] for name in names]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (names[i], names[j])


def test_stacked_keeps_order_and_gap():
    got = plots_atlas._stacked([5.0, 5.0, 30.0, 5.5], gap=10.0)
    assert got[0] < got[1] < got[3] and np.all(np.diff(np.sort(got)) >= 10.0 - 1e-9)
    assert np.allclose(plots_atlas._stacked([0.0, 50.0], gap=10.0), [0.0, 50.0])  # apart already: not moved
