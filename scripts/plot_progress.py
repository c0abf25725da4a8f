"""Rule plot_progress: progress along the geodesic and distance to truth against epochs, per run.

Settings it reads: as params (a change reruns the job) plots.color_by.
"""

from inpca.logs import run_script


def main(smk):
    from inpca import plots

    emb, index = plots.load(smk.input.embedding, smk.input.index)
    plots.plot_progress(emb, index, smk.output[0], color_by=smk.params.color_by)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
