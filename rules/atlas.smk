# Stage 8 (a study with `atlas: {path: ...}`): every run placed in another, finished study used as an
# atlas, checkpoint by checkpoint, with the forecast of its end; and the figure of the runs over it.


rule atlas_place:
    input:
        run="<results>/runs/{run}.h5",
        atlas=get_atlas_files(),
    output:
        "<results>/atlas/{run}.atlas.tsv",
    log:
        "<logs>/atlas_place/{run}.log",
    benchmark:
        "<logs>/benchmarks/atlas_place/{run}.tsv"
    params:
        atlas=ATLAS.get("path"),
        split=ATLAS.get("split"),
        k=ATLAS.get("k"),
        version=RESULTS_VERSION["atlas"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/atlas_place.py"


rule atlas_figure:
    input:
        placements=get_atlas_placements(),
        atlas=get_atlas_files(),
    output:
        png=report(
            "<results>/atlas/atlas-{split}.png",
            caption="../report/atlas.rst",
            category="Atlas",
            labels={"split": "{split}", "figure": "runs placed in the atlas (PNG)"},
        ),
        html=report(
            "<results>/atlas/atlas-{split}.html",
            caption="../report/atlas.rst",
            category="Atlas",
            labels={"split": "{split}", "figure": "runs placed in the atlas (interactive)"},
        ),
    log:
        "<logs>/atlas_figure/{split}.log",
    params:
        atlas=ATLAS.get("path"),
        version=RESULTS_VERSION["atlas"],
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/atlas_figure.py"
