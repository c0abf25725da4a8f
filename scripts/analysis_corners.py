"""Rule analysis_corners: runs from corners against default-init runs; see inpca.analysis.steps.write_corners.

Settings it reads: as params (a change reruns the job) analysis.index, analysis.max_final_train_error.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.analysis.steps import write_corners

    write_corners(smk.input.equal_progress, smk.input.trajectories, smk.output.tsv, smk.output.png,
                  max_final_train_error=smk.params.max_final_train_error, store_index_path=smk.input.store_index,
                  split=smk.wildcards.split, index=smk.params.index)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
