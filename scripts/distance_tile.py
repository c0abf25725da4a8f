"""Rules distance_tile and landmark_tile: distances between the points (or to the landmarks) of two
store blocks, one split.

Settings it reads: as params (a change reruns the job) distance.metric, distance.dtype, store.sum_tolerance,
embedding.landmark_every (landmark_tile); from the config (how, not what: a change reruns nothing) device,
distance.chunk_samples, distance.threads (threads:).
"""

from inpca.logs import run_script


def main(smk):
    from functools import partial

    from inpca.tiles import compute_landmark_tile, compute_tile

    cfg = smk.config
    compute = partial(compute_landmark_tile, every=smk.params.every) if smk.rule == "landmark_tile" else compute_tile
    compute(
        smk.input.a,
        smk.input.b,
        smk.wildcards.split,
        smk.output[0],
        metric=smk.params.metric,
        device=cfg["device"],
        chunk_samples=cfg["distance"]["chunk_samples"],
        threads=smk.threads,
        sum_tolerance=smk.params.sum_tolerance,
        dtype=smk.params.dtype,
    )


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
