"""Rule plot_spectrum: signed eigenvalues and explained stress of one split's embedding.

Settings it reads: as params (a change reruns the job) none.
"""

from inpca.logs import run_script


def main(smk):
    from inpca import plots

    emb, _ = plots.load(smk.input.embedding, None)
    plots.plot_spectrum(emb, smk.output[0])


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
