# Stage 7: the paper's comparisons of whole trajectories at equal progress, per split, each a table
# and a figure under <results>/analysis/{split}/ (and in snakemake --report).


rule analysis_configurations:
    input:
        equal_progress="<results>/analysis/{split}/equal_progress.h5",
        trajectories="<results>/trajectories/index.tsv",
    output:
        tsv="<results>/analysis/{split}/configurations.tsv",
        png=report(
            "<results>/analysis/{split}/dendrogram.png",
            caption="../report/dendrogram.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "dendrogram of configurations"},
        ),
    log:
        "<logs>/analysis_configurations/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_configurations/{split}.tsv",
    params:
        max_final_train_error=config["analysis"]["max_final_train_error"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_equal_progress.py"


rule analysis_factors:
    input:
        equal_progress="<results>/analysis/{split}/equal_progress.h5",
        trajectories="<results>/trajectories/index.tsv",
    output:
        tsv="<results>/analysis/{split}/factors.tsv",
        png=report(
            "<results>/analysis/{split}/factors.png",
            caption="../report/factors.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "which factors matter"},
        ),
    log:
        "<logs>/analysis_factors/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_factors/{split}.tsv",
    params:
        max_final_train_error=config["analysis"]["max_final_train_error"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_equal_progress.py"


rule analysis_geodesic:
    input:
        equal_progress="<results>/analysis/{split}/equal_progress.h5",
        trajectories="<results>/trajectories/index.tsv",
    output:
        tsv="<results>/analysis/{split}/distance_to_geodesic.tsv",
        png=report(
            "<results>/analysis/{split}/distance_to_geodesic.png",
            caption="../report/distance_to_geodesic.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "distance to the geodesic"},
        ),
    log:
        "<logs>/analysis_geodesic/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_geodesic/{split}.tsv",
    params:
        max_final_train_error=config["analysis"]["max_final_train_error"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_equal_progress.py"


rule analysis_corners:
    input:
        equal_progress="<results>/analysis/{split}/equal_progress.h5",
        trajectories="<results>/trajectories/index.tsv",
        store_index="<results>/store/index.tsv",
    output:
        tsv="<results>/analysis/{split}/corners.tsv",
        png=report(
            "<results>/analysis/{split}/corners.png",
            caption="../report/corners.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "runs from corners"},
        ),
    log:
        "<logs>/analysis_corners/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_corners/{split}.tsv",
    params:
        max_final_train_error=config["analysis"]["max_final_train_error"],
        index=config["analysis"]["index"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_corners.py"


rule analysis_tube:
    input:
        store_blocks=[f"<results>/store/{block}.h5" for block in STUDY.trajectory_blocks],
        plans=get_trajectory_blocks(),
        reference="<results>/store/ref.h5",
        trajectories="<results>/trajectories/index.tsv",
    output:
        tsv="<results>/analysis/{split}/tube_width.tsv",
        png=report(
            "<results>/analysis/{split}/tube_width.png",
            caption="../report/tube_width.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "tube width of the seeds"},
        ),
    log:
        "<logs>/analysis_tube/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_tube/{split}.tsv",
    params:
        blocks=STUDY.trajectory_blocks,
        metric=config["distance"]["metric"],
        max_final_train_error=config["analysis"]["max_final_train_error"],
        version=RESULTS_VERSION["analysis"],
    threads: config["distance"]["threads"]
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_tube.py"


rule analysis_speed:
    input:
        store_index="<results>/store/index.tsv",
        trajectories="<results>/trajectories/index.tsv",
    output:
        runs="<results>/analysis/{split}/speed_runs.tsv",
        configurations="<results>/analysis/{split}/speed_configurations.tsv",
        png=report(
            "<results>/analysis/{split}/speed.png",
            caption="../report/speed.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "progress against epochs"},
        ),
    log:
        "<logs>/analysis_speed/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_speed/{split}.tsv",
    params:
        levels=config["analysis"]["speed_levels"],
        max_final_train_error=config["analysis"]["max_final_train_error"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_speed.py"


rule analysis_summary:
    input:
        unpack(get_summary_corners),
        trajectories="<results>/trajectories/index.tsv",
        configurations="<results>/analysis/{split}/configurations.tsv",
        factors="<results>/analysis/{split}/factors.tsv",
        tube="<results>/analysis/{split}/tube_width.tsv",
        speed="<results>/analysis/{split}/speed_configurations.tsv",
        embedding="<results>/embedding/{split}.h5",
        trajectory_map="<results>/analysis/{split}/trajectory_map.h5",
    output:
        md="<results>/analysis/{split}/summary.md",
        # the report shows the HTML page: browsers open HTML in the report, a .md only as a download
        html=report(
            "<results>/analysis/{split}/summary.html",
            caption="../report/summary.rst",
            category="Analysis",
            labels={"split": "{split}", "figure": "summary"},
        ),
    log:
        "<logs>/analysis_summary/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_summary/{split}.tsv",
    params:
        max_final_train_error=config["analysis"]["max_final_train_error"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_summary.py"


rule analysis_trajectory_map:
    input:
        equal_progress="<results>/analysis/{split}/equal_progress.h5",
        trajectories="<results>/trajectories/index.tsv",
    output:
        h5="<results>/analysis/{split}/trajectory_map.h5",
        png=report(
            "<results>/analysis/{split}/trajectory_map.png",
            caption="../report/trajectory_map.rst",
            category="Trajectories",
            labels={"split": "{split}", "figure": "map of whole trajectories (PNG)"},
        ),
        html=report(
            "<results>/analysis/{split}/trajectory_map.html",
            caption="../report/trajectory_map.rst",
            category="Trajectories",
            labels={"split": "{split}", "figure": "map of whole trajectories (interactive)"},
        ),
    log:
        "<logs>/analysis_trajectory_map/{split}.log",
    benchmark:
        "<logs>/benchmarks/analysis_trajectory_map/{split}.tsv",
    params:
        max_final_train_error=config["analysis"]["max_final_train_error"],
        geodesic_weight=config["analysis"]["map_geodesic_weight"],
        n_components=config["embedding"]["n_components"],
        color_by=config["plots"]["color_by"],
        version=RESULTS_VERSION["analysis"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/analysis_trajectory_map.py"
