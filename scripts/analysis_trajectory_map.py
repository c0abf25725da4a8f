"""Rule analysis_trajectory_map: the map of whole trajectories (InPCA of the mean distances at equal
progress, one point per kept trajectory and the geodesic) and its figures; see
inpca.analysis.steps.write_trajectory_map.

Settings it reads: as params (a change reruns the job) analysis.max_final_train_error,
analysis.map_geodesic_weight, embedding.n_components, plots.color_by.
"""

from inpca.logs import run_script


def main(smk):
    from inpca.analysis.steps import write_trajectory_map

    write_trajectory_map(smk.input.equal_progress, smk.input.trajectories, smk.wildcards.split, smk.output.h5,
                         smk.output.png, smk.output.html, max_final_train_error=smk.params.max_final_train_error,
                         color_by=smk.params.color_by, geodesic_weight=smk.params.geodesic_weight,
                         n_components=smk.params.n_components)


if __name__ == "__main__":
    run_script(main, snakemake)  # noqa: F821 (injected by Snakemake)
