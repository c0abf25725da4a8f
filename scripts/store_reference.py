"""Rule store_reference: ignorance P0, the geodesic and truth P* of the data set -> results/store/ref.h5.

Settings it reads: as params (a change reruns the job) dataset (its identity), reference.geodesic_points,
progress.mode; from the config (how, not what: a change reruns nothing) dataset (where its files are).
"""

from inpca.logs import run_script


def main(smk):
    from inpca.store import write_reference

    write_reference(smk.output[0], smk.config["dataset"], smk.params.geodesic_points,
                    progress_mode=smk.params.progress_mode, recorded_run=smk.input.get("recorded_run"))


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
