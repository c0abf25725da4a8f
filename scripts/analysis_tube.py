"""Rule analysis_tube: see inpca.analysis.steps.write_tube_width.

Settings it reads: as params (a change reruns the job) distance.metric, analysis.max_final_train_error.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.analysis.steps import write_tube_width

    write_tube_width(dict(zip(smk.params.blocks, smk.input.store_blocks)),
                     dict(zip(smk.params.blocks, smk.input.plans)), smk.input.reference, smk.input.trajectories,
                     smk.wildcards.split, smk.output.tsv, smk.output.png,
                     max_final_train_error=smk.params.max_final_train_error, metric=smk.params.metric,
                     threads=smk.threads)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
