"""Rule store_corners: the geodesics P0 -> corner -> P* of every corner -> results/store/corners.h5.

Settings it reads: as params (a change reruns the job) reference.geodesic_points, progress.mode,
store.sum_tolerance.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.store import write_corner_curves

    write_corner_curves(smk.output[0], dict(zip(smk.params.corners, smk.input.corners)), smk.input.reference,
                        smk.params.geodesic_points, progress_mode=smk.params.progress_mode,
                        sum_tolerance=smk.params.sum_tolerance)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
