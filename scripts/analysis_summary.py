"""Rule analysis_summary: see inpca.analysis.steps.write_summary.

Settings it reads: as params (a change reruns the job) analysis.max_final_train_error.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.analysis.steps import write_summary

    write_summary(smk.wildcards.split, smk.input.trajectories, smk.input.configurations, smk.input.factors,
                  smk.input.tube, smk.input.speed, smk.input.embedding, smk.output.md,
                  max_final_train_error=smk.params.max_final_train_error, corners_tsv=smk.input.get("corners"),
                  out_html=smk.output.html, trajectory_map_path=smk.input.trajectory_map)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
