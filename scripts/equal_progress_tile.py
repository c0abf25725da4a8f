"""Rule equal_progress_tile: the distances between the trajectories of two store blocks at each t_k of
their plans, computed from the store -> results/analysis/{split}/tiles/{a}-{b}.h5.

Settings it reads: as params (a change reruns the job) distance.metric, distance.dtype, store.sum_tolerance;
from the config (how, not what: a change reruns nothing) device, distance.chunk_samples, distance.threads
(threads:).
"""

from inpca.logs import run_script


def main(smk):
    from inpca.trajectory_files import equal_progress_tile

    equal_progress_tile(smk.input.a, smk.input.plan_a, smk.input.b, smk.input.plan_b, smk.input.reference,
                        smk.wildcards.split, smk.output[0], metric=smk.params.metric, device=smk.config["device"],
                        chunk_samples=smk.config["distance"]["chunk_samples"], threads=smk.threads,
                        sum_tolerance=smk.params.sum_tolerance, dtype=smk.params.dtype)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
