"""What every figure shares (inpca.figures): colours per architecture, atomic PNG and HTML saves."""

import pytest

from inpca import figures
from inpca.config import ARCHITECTURES


def test_every_schema_architecture_has_its_own_fixed_colour_in_every_study():
    everything = figures.arch_colors(ARCHITECTURES)
    assert len(set(everything[a] for a in ARCHITECTURES)) == len(ARCHITECTURES)
    assert figures.arch_colors(["vit"])["vit"] == everything["vit"]
    mixed = figures.arch_colors(["resnet10", "fc", "geodesic"])
    assert mixed["fc"] == everything["fc"] and mixed["geodesic"] == "black"
    assert mixed["resnet10"] not in {everything[a] for a in ARCHITECTURES}


def test_a_png_that_fails_half_way_leaves_no_file_that_looks_complete(tmp_path):
    plt = figures.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    real_savefig = fig.savefig

    def savefig_then_die(target, **kwargs):
        real_savefig(target, **kwargs)  # the bytes are on disk under the temporary name...
        raise KeyboardInterrupt  # ...when the job is killed

    fig.savefig = savefig_then_die
    with pytest.raises(KeyboardInterrupt):
        figures.save_png(fig, tmp_path / "plot.png")
    assert list(tmp_path.iterdir()) == []
    fig2, ax2 = plt.subplots()
    ax2.plot([0, 1], [1, 0])
    figures.save_png(fig2, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_same_plotly_figure_is_the_same_html_bytes_and_written_atomically(tmp_path):
    import plotly.graph_objects as go

    def draw(path):
        figures.save_html(go.Figure(go.Scatter3d(x=[0, 1], y=[0, 1], z=[1, 0])), path)
        return path.read_bytes()

    first, second = draw(tmp_path / "a.html"), draw(tmp_path / "b.html")
    assert first == second and b'id="inpca-figure"' in first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "b.html"]  # no .tmp left
