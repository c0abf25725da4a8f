# Stage 5: figures, each marked for the report (`snakemake --report inpca-report.zip`, see README).


rule plot_trajectories:
    input:
        embedding="<results>/embedding/{split}.h5",
        index="<results>/store/index.tsv",
    output:
        png=report(
            "<results>/plots/{split}/trajectories.png",
            caption="../report/trajectories.rst",
            category="Trajectories",
            labels={"split": "{split}", "figure": "3-D (PNG)"},
        ),
        html=report(
            "<results>/plots/{split}/trajectories.html",
            caption="../report/trajectories.rst",
            category="Trajectories",
            labels={"split": "{split}", "figure": "3-D (interactive)"},
        ),
    log:
        "<logs>/plot_trajectories/{split}.log",
    params:
        color_by=config["plots"]["color_by"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/plot_trajectories.py"


rule plot_spectrum:
    input:
        embedding="<results>/embedding/{split}.h5",
    output:
        report(
            "<results>/plots/{split}/spectrum.png",
            caption="../report/spectrum.rst",
            category="Spectrum",
            labels={"split": "{split}", "figure": "eigenvalues and explained stress"},
        ),
    log:
        "<logs>/plot_spectrum/{split}.log",
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/plot_spectrum.py"


rule plot_progress:
    input:
        embedding="<results>/embedding/{split}.h5",
        index="<results>/store/index.tsv",
    output:
        report(
            "<results>/plots/{split}/progress.png",
            caption="../report/progress.rst",
            category="Progress",
            labels={"split": "{split}", "figure": "progress and distance to truth"},
        ),
    log:
        "<logs>/plot_progress/{split}.log",
    params:
        color_by=config["plots"]["color_by"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/plot_progress.py"
