"""Rules analysis_configurations, analysis_factors and analysis_geodesic: one table and one figure
from a split's equal-progress distances (see inpca.analysis.steps).

Settings it reads: as params (a change reruns the job) analysis.max_final_train_error.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.analysis import steps as analysis_steps

    step = {"analysis_configurations": analysis_steps.write_configurations,
            "analysis_factors": analysis_steps.write_factors,
            "analysis_geodesic": analysis_steps.write_distance_to_geodesic}[smk.rule]
    step(smk.input.equal_progress, smk.input.trajectories, smk.output.tsv, smk.output.png,
         max_final_train_error=smk.params.max_final_train_error)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
