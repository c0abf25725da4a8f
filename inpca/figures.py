"""What every figure of the project shares: the matplotlib set-up, the resolution, the colours of
the architectures and of the geodesic, and the one way a figure is saved.

- :func:`pyplot`: matplotlib's pyplot on the Agg backend (no display needed; imported only when a
  figure is drawn, never when Snakemake parses the workflow).
- :func:`arch_colors`: one colour per architecture name, the same in every figure of every study
  (the schema's architectures first, in its order; other names, e.g. of imported runs, after them).
- :func:`save_png`, :func:`save_html`: a matplotlib figure as PNG, a plotly figure as one
  self-contained HTML file (plotly.js inline, so it opens offline), each written under a temporary
  name and renamed (:func:`inpca.files.atomic_path`): a killed plot job leaves no figure that looks
  complete. The HTML gets a fixed element id, so the same figure gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from .config import ARCHITECTURES
from .files import atomic_path
from .study import GEODESIC

#: Resolution of every PNG.
DPI = 150
#: The P0 -> P* geodesic in every figure.
GEODESIC_COLOR = "black"
#: Runs or configurations a figure shows but the analysis leaves out.
EXCLUDED_COLOR = "#9e9e9e"


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def arch_colors(archs) -> dict[str, str]:
    """Colour of each architecture name: fixed for the schema's architectures (tab10 in the schema's
    order), the colours after those for other names in sorted order, black for 'geodesic'."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    palette = [to_hex(c) for c in colormaps["tab10"].colors]
    palette += [to_hex(c) for c in colormaps["Dark2"].colors]
    names = sorted({str(a) for a in archs} - {GEODESIC})
    colors = {name: palette[ARCHITECTURES.index(name)] for name in names if name in ARCHITECTURES}
    spare = palette[len(ARCHITECTURES):]  # never a schema architecture's colour, even where it is absent
    for i, name in enumerate(n for n in names if n not in colors):
        colors[name] = spare[i % len(spare)]
    colors[GEODESIC] = GEODESIC_COLOR
    return colors


def save_png(fig, path) -> None:
    """Write a matplotlib figure as a PNG at DPI, atomically, and close it."""
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    pyplot().close(fig)


def save_html(fig, path, div_id: str = "inpca-figure") -> None:
    """Write a plotly figure as one self-contained HTML file (plotly.js inline), atomically. The fixed
    `div_id` replaces plotly's random one, so identical figures are identical files."""
    with atomic_path(Path(path)) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True, div_id=div_id)
