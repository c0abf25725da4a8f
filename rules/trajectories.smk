# Stage 6: how every run is reindexed at equal progress (a plan: two checkpoints and a fraction per
# t_k), one job per store block, and the distances between trajectories at equal progress, one job per
# pair of blocks, computed from the store and the plans (no reindexed copy), assembled per split.


rule reindex:
    input:
        block="<results>/store/{store_block}.h5",
        reference="<results>/store/ref.h5",
    output:
        "<results>/trajectories/{store_block}.h5",
    log:
        "<logs>/reindex/{store_block}.log",
    benchmark:
        "<logs>/benchmarks/reindex/{store_block}.tsv"
    params:
        index=config["analysis"]["index"],
        points=config["analysis"]["points"],
        version=RESULTS_VERSION["trajectories"],
    resources:
        mem_mb=reindex_mem_mb,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/reindex.py"


rule trajectory_index:
    input:
        blocks=get_trajectory_blocks(),
        store_index="<results>/store/index.tsv",
    output:
        "<results>/trajectories/index.tsv",
    log:
        "<logs>/trajectory_index.log",
    benchmark:
        "<logs>/benchmarks/trajectory_index.tsv",
    params:
        blocks=STUDY.trajectory_blocks,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/trajectory_index.py"


rule equal_progress_tile:
    input:
        a="<results>/store/{a}.h5",
        b="<results>/store/{b}.h5",
        plan_a="<results>/trajectories/{a}.h5",
        plan_b="<results>/trajectories/{b}.h5",
        reference="<results>/store/ref.h5",
    output:
        "<results>/analysis/{split}/tiles/{a}-{b}.h5",
    log:
        "<logs>/equal_progress_tile/{split}/{a}-{b}.log",
    benchmark:
        "<logs>/benchmarks/equal_progress_tile/{split}/{a}-{b}.tsv"
    params:
        metric=config["distance"]["metric"],
        dtype=config["distance"]["dtype"],
        sum_tolerance=config["store"]["sum_tolerance"],
        version=RESULTS_VERSION["trajectories"],
    threads: config["distance"]["threads"]
    resources:
        gpu=gpu_count,
        mem_mb=trajectory_tile_mem_mb,
        runtime=trajectory_tile_runtime,
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/equal_progress_tile.py"


rule assemble_equal_progress:
    input:
        unpack(get_equal_progress_tiles),
        index="<results>/trajectories/index.tsv",
    output:
        "<results>/analysis/{split}/equal_progress.h5",
    log:
        "<logs>/assemble_equal_progress/{split}.log",
    benchmark:
        "<logs>/benchmarks/assemble_equal_progress/{split}.tsv",
    conda:
        "../envs/inpca.yaml"
    script:
        "../scripts/assemble_distances.py"
