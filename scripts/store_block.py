"""Rule store_block: the checkpoints of one block of runs -> results/store/{block}.h5.

Settings it reads: as params (a change reruns the job) store.layout, store.sum_tolerance, progress.mode.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.store import build_block

    build_block(smk.output[0], list(smk.input.runs), smk.input.reference, smk.params.sum_tolerance,
                progress_mode=smk.params.progress_mode, layout=smk.params.layout)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
