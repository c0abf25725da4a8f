"""Rule store_index: one row per point of every block, in matrix order -> results/store/index.tsv.

Settings it reads: as params (a change reruns the job) the blocks.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.store import write_index

    write_index(smk.output[0], dict(zip(smk.params.blocks, smk.input.blocks)))


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
