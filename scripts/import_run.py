"""Rule import_run: a recorded run file, validated, as the study's run -> results/runs/{run}.h5.

Settings it reads: as params (a change reruns the job) store.sum_tolerance.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.imports import import_run

    import_run(smk.input.source, smk.output[0], smk.wildcards.run, sum_tolerance=smk.params.sum_tolerance,
               reference=smk.input.get("reference"))


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
