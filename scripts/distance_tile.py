"""Rule distance_tile: the distances between the points of two store blocks, one split ->
results/distances/{split}/tiles/{a}-{b}.h5.

Settings it reads: as params (a change reruns the job) distance.metric, distance.dtype, store.sum_tolerance;
from the config (how, not what: a change reruns nothing) device, distance.chunk_samples, distance.threads
(threads:).
"""

from inpca.logs import run_script


def main(smk):
    from inpca.tiles import compute_tile

    compute_tile(smk.input.a, smk.input.b, smk.wildcards.split, smk.output[0], metric=smk.params.metric,
                 device=smk.config["device"], chunk_samples=smk.config["distance"]["chunk_samples"],
                 threads=smk.threads, sum_tolerance=smk.params.sum_tolerance, dtype=smk.params.dtype)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
