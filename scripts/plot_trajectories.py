"""Rule plot_trajectories: 3-D trajectories in the top InPCA components, PNG and interactive HTML.

Settings it reads: as params (a change reruns the job) plots.color_by.
"""

from inpca.logs import run_script


def main(smk):
    from inpca import plots

    emb, index = plots.load(smk.input.embedding, smk.input.index)
    plots.plot_trajectories_png(emb, index, smk.output.png, color_by=smk.params.color_by)
    plots.plot_trajectories_html(emb, index, smk.output.html, color_by=smk.params.color_by)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
