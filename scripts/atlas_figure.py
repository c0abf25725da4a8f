"""Rule atlas_figure: the atlas' trajectories with the study's runs drawn over them -> results/atlas/atlas-{split}.png, .html.

Settings it reads: as params (a change reruns the job) atlas.path.
"""

from inpca.logs import run_script


def main(smk):
    from pathlib import Path

    from inpca.files import read_table
    from inpca.plots import load, plot_atlas_html, plot_atlas_png

    atlas, split = Path(smk.params.atlas), smk.wildcards.split
    tables = {Path(path).name[:-len(".atlas.tsv")]: read_table(path) for path in smk.input.placements}
    emb, index = load(atlas / "embedding" / f"{split}.h5", atlas / "store" / "index.tsv")
    plot_atlas_png(emb, index, tables, smk.output.png, split=split)
    plot_atlas_html(emb, index, tables, smk.output.html, split=split)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
