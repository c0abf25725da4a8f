"""Rule trajectory_index: one row per reindexed trajectory, in matrix order -> results/trajectories/index.tsv.

Settings it reads: as params (a change reruns the job) the blocks.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.trajectory_files import write_trajectory_index

    write_trajectory_index(smk.output[0], dict(zip(smk.params.blocks, smk.input.blocks)), smk.input.store_index)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
