"""Rules distance_tile and equal_progress_tile: distances between the points (or the trajectories at
each t_k) of two blocks, one split."""

from inpca.logs import run_script


def main(smk):
    from inpca.tiles import compute_tile

    cfg = smk.config
    compute_tile(
        smk.input.a,
        smk.input.b,
        smk.wildcards.split,
        smk.output[0],
        metric=smk.params.metric,
        device=cfg["device"],
        chunk_samples=cfg["distance"]["chunk_samples"],
        threads=smk.threads,
        sum_tolerance=cfg["store"]["sum_tolerance"],
        dtype=smk.params.dtype,
    )


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
