"""Rule analysis_speed: see inpca.analysis.steps.write_speed.

Settings it reads: as params (a change reruns the job) analysis.speed_levels, analysis.max_final_train_error.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.analysis.steps import write_speed

    write_speed(smk.input.store_index, smk.input.trajectories, smk.wildcards.split, smk.output.runs,
                smk.output.configurations, smk.output.png, max_final_train_error=smk.params.max_final_train_error,
                levels=smk.params.levels)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
