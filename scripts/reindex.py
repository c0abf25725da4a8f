"""Rule reindex: how every run of one store block is reindexed at equal index values (a plan, and the
loss and error of each model there) -> results/trajectories/{block}.h5.

Settings it reads: as params (a change reruns the job) analysis.index, analysis.points; the job's
threads (how, not what).
"""

from inpca.logs import run_script


def main(smk):
    from inpca.trajectory_files import plan_block

    plan_block(smk.input.block, smk.input.reference, smk.output[0], index=smk.params.index, points=smk.params.points,
               threads=smk.threads)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
